"""Reading the evaluation outputs and looking things up in them (no statistic is computed here)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from latentopt.workflow.metric_specs import HIGHER_IS_BETTER
from latentopt.core.fileio import read_json
from latentopt.workflow.layout import BASELINE
from latentopt.core.numbers import is_finite
from latentopt.report.formatting import fmt


def load_inputs(cross: str | Path, stats: str | Path, performance: str | Path, table_csv: str | Path) -> dict:
    table = pd.read_csv(table_csv, dtype={"split": str, "image_id": str, "dataset": str})
    return {"cross": read_json(cross), "stats": read_json(stats), "performance": read_json(performance), "table": table}


def _datasets(cross: Mapping) -> list[str]:
    names = list(cross["datasets"])
    return [BASELINE, *[d for d in names if d != BASELINE]] if BASELINE in names else names


def _splits(cross: Mapping) -> list[str]:
    first = next(iter(cross["datasets"].values()), {})
    return [s for s in first if s != "all"]


def _get(d: Mapping | None, *keys, default=None):
    for k in keys:
        if not isinstance(d, Mapping) or k not in d or d[k] is None:
            return default
        d = d[k]
    return d


def _pair_row(rows: Sequence[Mapping], a: str, b: str) -> Mapping | None:
    for row in rows or []:
        if {row.get("a"), row.get("b")} == {a, b}:
            return row
    return None


def oriented(row: Mapping, a: str, key_diff: str = "mean_diff") -> tuple[Any, Any, Any]:
    """(diff, ci_low, ci_high) of a test row oriented as ``a`` minus the other dataset."""
    d, lo, hi = row.get(key_diff), row.get("ci95_low"), row.get("ci95_high")
    if row.get("a") == a:
        return d, lo, hi
    return (-d if is_finite(d) else d), (-hi if is_finite(hi) else None), (-lo if is_finite(lo) else None)


def best_datasets(values: Mapping[str, Any], metric: str) -> set[str]:
    """The dataset(s) with the best finite value; ties at the PRINTED precision all count (a
    reader cannot see a difference that prints identically, so no bold may single one out)."""
    finite = {d: v for d, v in values.items() if is_finite(v)}
    if not finite:
        return set()
    pick = max if HIGHER_IS_BETTER.get(metric, True) else min
    best = fmt(pick(finite.values()), metric)
    return {d for d, v in finite.items() if fmt(v, metric) == best}

