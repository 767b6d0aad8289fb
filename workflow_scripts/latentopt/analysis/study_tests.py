"""The building blocks of the study analysis: per-image oriented values, paired comparisons on
the same images, Holm families and the one verdict rule (study.py assembles them).

Orientation
    Every metric is turned so that larger is better: value x sign, sign = +1 when higher is
    better (workflow.metric_specs.HIGHER_IS_BETTER), -1 otherwise. A *gain* is then
    oriented(arm) - oriented(baseline) per image, > 0 meaning the arm is better.

Pairing
    Two per-image series are compared only on the images present (status ok, finite value) in
    both: an inner join on (split, image_id), sorted by that key so that the bootstrap draws
    the same images in every comparison of the same images (analysis.statistics). The
    statistics are analysis.statistics.paired_comparison's, unchanged.

Families
    Holm-Bonferroni over the tests of one comparison (one pair of compared datasets, over the
    held-out metrics that are calibrated): ``p_holm``, ``m_tests``, ``p_holm_min`` =
    min(1, m x smallest attainable Wilcoxon p at that test's nonzero differences).

Verdict (VERDICTS)
    A metric from an uncalibrated network: objectives.NOT_JUDGED (outside every family).
    Otherwise "n too small" when the 95 % CI cannot be computed (n < MIN_N_INTERVAL) or the
    family cannot reach alpha (n_too_small(n_nonzero, alpha, m)); "not shown" when the CI spans 0
    or the Holm p is >= alpha; "better" / "worse" only when the CI excludes 0 AND Holm p < alpha
    (the sign of the mean difference names which). A difference whose CI spans 0 is never
    called a difference.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import pandas as pd

from latentopt.analysis.statistics import holm, n_too_small, paired_comparison
from latentopt.workflow.metric_specs import EVALUATED_METRICS, HIGHER_IS_BETTER
from latentopt.workflow.objectives import NETWORK_METRICS, NOT_JUDGED, RELATED_METRICS, with_relatives

KEY = ["split", "image_id"]
TOO_SMALL = "n too small"
VERDICTS = ("better", "worse", "not shown", TOO_SMALL, NOT_JUDGED)


def uncalibrated(calibrated: Mapping) -> set[str]:
    """Metrics from a network flagged uncalibrated (``calibrated`` as in analysis.summarize:
    {"lpips": bool, "inception": bool | None}; False = random network)."""
    out: set[str] = set()
    for net, metrics in NETWORK_METRICS.items():
        if (calibrated or {}).get(net) is False:
            out |= set(metrics)
    return out


def held_out(columns: Iterable[str], objectives: Iterable[str]) -> list[str]:
    """Per-image metrics with a direction that are neither an objective of the arm nor a
    declared relative of one (objectives.with_relatives), in EVALUATED_METRICS order."""
    taken = with_relatives(set(objectives))
    cols = set(columns)
    return [m for m in EVALUATED_METRICS if m in HIGHER_IS_BETTER and m in cols and m not in taken]


def oriented(table: pd.DataFrame, arm: str, metric: str) -> pd.Series:
    """The ok rows of ``arm``: metric x sign (larger is better), indexed by (split, image_id)."""
    rows = table[(table["dataset"] == arm) & (table["status"] == "ok")]
    s = rows.set_index(KEY)[metric].astype(float)
    s = s[s.notna() & (s.abs() != float("inf"))]
    return s * (1.0 if HIGHER_IS_BETTER[metric] else -1.0)


def gain(table: pd.DataFrame, arm: str, metric: str, baseline: str = "baseline") -> pd.Series:
    """Per-image oriented(arm) - oriented(baseline) on the images ok in both."""
    a, b = align(oriented(table, arm, metric), oriented(table, baseline, metric))
    return a - b


def align(a: pd.Series, b: pd.Series) -> tuple[pd.Series, pd.Series]:
    """``a`` and ``b`` on their common keys, sorted by key."""
    keys = a.index.intersection(b.index).sort_values()
    return a.loc[keys], b.loc[keys]


def compare(a: pd.Series, b: pd.Series, evaluation: Mapping) -> dict:
    """paired_comparison(a, b) on the common images (d = a - b, oriented: > 0 means a better)."""
    a, b = align(a, b)
    out = paired_comparison(a.to_numpy(), b.to_numpy(), n_boot=evaluation["n_boot"], seed=evaluation["seed"])
    out["n_nonzero"] = out["n"] - out["n_zero"]
    return out


def family(tests: Mapping[str, dict], alpha: float, uncal: set[str]) -> dict[str, dict]:
    """Holm over the calibrated tests of one comparison; every test gets its verdict."""
    judged = [m for m in tests if m not in uncal]
    adjusted = holm([tests[m]["p_wilcoxon"] for m in judged])
    m = len(judged)
    out = {}
    for metric, p in zip(judged, adjusted):
        t = tests[metric]
        out[metric] = {**t, "p_holm": p, "m_tests": m, "p_holm_min": min(1.0, m * t["p_wilcoxon_min"])}
        out[metric]["verdict"] = verdict(out[metric], alpha)
    for metric in tests:
        if metric in uncal:
            out[metric] = {**tests[metric], "p_holm": None, "m_tests": m, "verdict": NOT_JUDGED}
    return {metric: out[metric] for metric in tests}


def ci_spans_zero(t: Mapping) -> bool:
    lo, hi = t.get("ci95_low"), t.get("ci95_high")
    return lo is None or hi is None or lo <= 0.0 <= hi


def verdict(t: Mapping, alpha: float) -> str:
    """The module docstring's verdict rule for one test of a Holm family."""
    if t.get("ci95_low") is None or n_too_small(t["n_nonzero"], alpha, t["m_tests"]):
        return TOO_SMALL
    if ci_spans_zero(t) or not (t["p_holm"] < alpha):
        return "not shown"
    return "better" if t["mean_diff"] > 0 else "worse"


def comparison(a_by_metric: Mapping[str, pd.Series], b_by_metric: Mapping[str, pd.Series], evaluation: Mapping, alpha: float, uncal: set[str]) -> dict[str, dict]:
    """One comparison (a vs b over the metrics both give), Holm-corrected as one family."""
    tests = {m: compare(a_by_metric[m], b_by_metric[m], evaluation) for m in a_by_metric if m in b_by_metric}
    return family(tests, alpha, uncal)


# Where study_analysis.json keeps its tests: (section name, function yielding {metric: test} dicts).
def _sections(a: Mapping):
    yield "gains", [g["tests"] for arms in a["gains"].values() for g in arms.values()]
    yield "objective gains", [g["objective_tests"] for arms in a["gains"].values() for g in arms.values()]
    yield "plain decodes across models", [r["tests"] for r in a["baseline_differences"]]
    yield "same arm across models", [r["tests"] for r in a["model_differences"]]
    yield "gain differences", [r["tests"] for r in a["gain_differences"]]
    yield "optimized smaller vs larger plain decode", [r["tests"] for r in a["smaller_vs_larger"]]
    yield "sweep runner-ups", [s["vs_runner_up"] for sweeps in a["sweeps"].values() for s in sweeps.values()]
    yield "methods", [r["tests"] for rows in a["methods"].values() for r in rows]


def study_wide(analysis: Mapping, alpha: float) -> dict:
    """Holm over every calibrated test of the study (all sections, all families): each gets
    ``p_study`` (NaN p counted as 1), ``m_study``, ``p_study_min`` (the smallest attainable) and
    ``verdict_study`` (the verdict rule with the study-wide p and m). Returns the count."""
    found = [(name, t) for name, fams in _sections(analysis) for tests in fams for t in tests.values() if t.get("verdict") != NOT_JUDGED]
    p = [t["p_wilcoxon"] if t.get("p_wilcoxon") == t.get("p_wilcoxon") and t.get("p_wilcoxon") is not None else 1.0 for _, t in found]
    m = len(found)
    for (_, t), adj in zip(found, holm(p) if p else []):
        t["p_study"], t["m_study"], t["p_study_min"] = float(adj), m, min(1.0, m * t["p_wilcoxon_min"])
        t["verdict_study"] = verdict({**t, "p_holm": t["p_study"], "m_tests": m}, alpha)
    by = {}
    for name, _ in found:
        by[name] = by.get(name, 0) + 1
    return {"n": m, "by_section": by, "correction": "Holm over every calibrated test of the study", "alpha": alpha}


def study_view(t: Mapping | None) -> dict | None:
    """A test with its study-wide verdict as ``verdict`` (what recommendations and verdict lines read)."""
    if t is None:
        return None
    return {**t, "verdict": t.get("verdict_study", t.get("verdict"))}


def finding_metrics(metrics: Iterable[str]) -> list[str]:
    """One metric per monotone family (objectives.RELATED_METRICS: PSNR, MSE and MAE are one
    finding), the family's first in the given order; other metrics as they are."""
    out, seen = [], set()
    for m in metrics:
        group = next((g for g in RELATED_METRICS if m in g), frozenset({m}))
        if not group & seen:
            out.append(m)
        seen |= group
    return out
