"""The quality gate's section: one row per loss from ``quality_gate/<loss>.json`` (see gate.py)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from latentopt.analysis.statistics import MIN_N_INTERVAL, n_too_small
from latentopt.core.fileio import read_json
from latentopt.optimize.gate import gate_table
from latentopt.report.formatting import TOO_SMALL, table


def load_gates(paths: Sequence[str | Path]) -> list[dict]:
    return [read_json(p) for p in paths]


def gate_section(gates: Sequence[Mapping]) -> dict | None:
    """The gate table (None when the run had no gate). A mean over fewer gate images than an
    interval needs (statistics.n_too_small) says so in its cell, as every other cell of the
    report does, instead of leaving the "(95% CI)" column's interval silently out."""
    if not gates:
        return None
    t = gate_table(gates)
    for row, g in zip(t["rows"], gates):
        n = g.get("n_measured") or 0
        if (g.get("ci95") or [None])[0] is None and g.get("mean_improvement") is not None and n_too_small(n):
            row[3] += f" (CI: {TOO_SMALL}, n = {n} < {MIN_N_INTERVAL})"
    return table(t["header"], t["rows"], ["l", "l", "r", "r", "r", "r", "l", "l"])


def gate_images_phrase(gates: Sequence[Mapping], n_run: int) -> str | None:
    """How many images the gate really ran, from its results (not the configured
    ``quality_gate.images_per_loss``, which a smaller run does not reach): "the first 2 images",
    "all 9 images" when the gate covered the whole run, per loss when the counts differ; None
    without a gate."""
    counts = {g.get("arm"): int(g.get("n_images") or 0) for g in gates}
    if not counts:
        return None
    values = set(counts.values())
    if len(values) > 1:
        return "the first " + ", ".join(f"{n} ({arm})" for arm, n in counts.items()) + " images"
    n = values.pop()
    return f"all {n} images" if n >= n_run else f"the first {n} image{'s' if n != 1 else ''}"
