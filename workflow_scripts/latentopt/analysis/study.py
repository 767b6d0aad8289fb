"""study_analysis.json: one study = several autoencoders ("models"), each with its own complete
results tree (baseline + loss arms); this compares them. Nothing new is computed statistically:
per-image comparisons are analysis.statistics.paired_comparison with Holm families and one
verdict rule (analysis.study_tests), costs are performance_summary.json's batch costs
(analysis.performance: compute per image on the device clock, the batch the unit), frontiers and
recommendations follow analysis.frontier.

Sections (every test is on held-out metrics: neither the arm's objective nor a declared
relative, objectives.RELATED_METRICS; metrics of an uncalibrated network are listed as
objectives.NOT_JUDGED, outside every family):

* ``gains[model][arm]``: each loss arm vs *its own model's* baseline, paired per image.
* ``baseline_differences``: every pair of models' plain reconstructions (baseline vs baseline),
  on every directional metric, on the images ok in both.
* ``gain_differences``: for each arm present in two models, gain in model a minus gain in model
  b, paired per image on the images ok in the arm and the baseline of both models.
* ``smaller_vs_larger``: for each model pair with known decoder parameters (a has fewer), each
  loss arm of a vs b's baseline (paired per image, the same images), with both compute costs and
  their Welch comparison (analysis.performance.cost_comparisons; not claimed across clocks).
* ``frontiers[model][metric]``: the frontier over all of a model's loss arms holding the metric
  out (the study figure's line; frontier.py).
* ``sweeps[model][base]``: the frontier and recommendation per held-out metric (frontier.py).
* ``methods[model]``: every pair of arms of different optimization methods, on the metrics held
  out for both, with both costs.
* ``costs[model][arm]``: mean compute per image (device clock) with its 95 % t-interval over
  batches; ``n_too_small`` below MIN_N_INTERVAL batches.
* ``metadata``: models, alpha, bootstrap settings, the uncalibrated metrics, the quality gate's
  images (INCLUDED in the evidence, declared, as report.conclusions does) and the rules.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from pathlib import Path

import pandas as pd

from latentopt.analysis import frontier as fr
from latentopt.analysis import study_tests as st
from latentopt.analysis.performance import cost_comparisons
from latentopt.analysis.statistics import n_too_small
from latentopt.core.fileio import as_json, read_json
from latentopt.workflow.layout import BASELINE


def study_analysis(tables: Mapping[str, pd.DataFrame], performance: Mapping[str, dict], models: Mapping[str, dict], sweeps: Mapping[str, Mapping[str, dict]], *, objectives: Mapping[str, set], evaluation: Mapping, calibrated: Mapping, gate_images: set | None = None, methods: Mapping[str, str] | None = None, losses: Mapping[str, dict] | None = None) -> dict:
    """The study analysis (module docstring), JSON-ready. ``tables``: {model: its
    per_image_metrics.csv}; ``performance``: {model: its performance_summary.json};
    ``objectives``: {arm: metrics its loss optimizes} (objectives.arm_objectives);
    ``evaluation``: the config's evaluation block (n_boot, seed, success_criteria.alpha);
    ``sweeps``: {base: {arm: {"lr", "iterations"}}}; ``methods``: {arm: method}; ``losses``:
    {arm: loss spec} (method comparisons only between arms of the same loss)."""
    ctx = {"ev": evaluation, "alpha": evaluation["success_criteria"]["alpha"], "uncal": st.uncalibrated(calibrated), "objectives": objectives}
    costs = {m: {a: cost_entry(performance.get(m), a) for a in arms_of(t, True)} for m, t in tables.items()}
    gains = {m: model_gains(t, ctx) for m, t in tables.items()}
    return as_json({
        "metadata": metadata(models, ctx, gate_images),
        "costs": costs,
        "gains": gains,
        "baseline_differences": baseline_differences(tables, ctx),
        "gain_differences": gain_differences(tables, ctx),
        "smaller_vs_larger": smaller_vs_larger(tables, performance, models, ctx),
        "frontiers": {m: model_frontiers(gains[m], costs[m], performance.get(m)) for m in tables},
        "sweeps": {m: {base: sweep_entry(tables[m], gains[m], costs[m], arms, ctx, performance.get(m)) for base, arms in sweeps.items() if set(arms) & set(gains[m])} for m in tables},
        "methods": {m: method_comparisons(tables[m], performance.get(m), methods, ctx, losses) for m in tables} if methods else {},
    })


def metadata(models: Mapping, ctx: Mapping, gate_images) -> dict:
    gate = sorted(tuple(k) for k in gate_images or ())
    return {
        "models": dict(models), "alpha": ctx["alpha"], "n_boot": ctx["ev"]["n_boot"], "seed": ctx["ev"]["seed"],
        "uncalibrated": sorted(ctx["uncal"]),
        "gate_images": {"n": len(gate), "images": [list(k) for k in gate], "in_evidence": True},
        "rules": {"tests": st.__doc__, "frontier": fr.__doc__},
    }


def arms_of(table: pd.DataFrame, with_baseline: bool = False) -> list[str]:
    names = list(dict.fromkeys(table["dataset"]))
    return [a for a in names if with_baseline or a != BASELINE]


def present_metrics(table: pd.DataFrame) -> list[str]:
    """Columns that hold at least one finite value."""
    return [c for c in table.columns if pd.api.types.is_numeric_dtype(table[c]) and table[c].notna().any()]


def held_out_for(table: pd.DataFrame, ctx: Mapping, *arms: str) -> list[str]:
    objs = set().union(*(ctx["objectives"].get(a, set()) for a in arms)) if arms else set()
    return st.held_out(present_metrics(table), objs)


def values(table: pd.DataFrame, arm: str, metrics) -> dict[str, pd.Series]:
    return {m: st.oriented(table, arm, m) for m in metrics}


def model_gains(table: pd.DataFrame, ctx: Mapping) -> dict:
    """Each loss arm vs the model's own baseline on the arm's held-out metrics."""
    out = {}
    for arm in arms_of(table):
        metrics = held_out_for(table, ctx, arm)
        out[arm] = {"held_out": metrics, "tests": st.comparison(values(table, arm, metrics), values(table, BASELINE, metrics), ctx["ev"], ctx["alpha"], ctx["uncal"])}
    return out


def baseline_differences(tables: Mapping[str, pd.DataFrame], ctx: Mapping) -> list[dict]:
    out = []
    for a, b in itertools.combinations(tables, 2):
        metrics = [m for m in held_out_for(tables[a], ctx) if m in held_out_for(tables[b], ctx)]
        out.append({"model_a": a, "model_b": b, "tests": st.comparison(values(tables[a], BASELINE, metrics), values(tables[b], BASELINE, metrics), ctx["ev"], ctx["alpha"], ctx["uncal"])})
    return out


def gain_differences(tables: Mapping[str, pd.DataFrame], ctx: Mapping) -> list[dict]:
    """Gain(model a) - gain(model b) per image, for every arm the two models share."""
    out = []
    for a, b in itertools.combinations(tables, 2):
        for arm in [x for x in arms_of(tables[a]) if x in arms_of(tables[b])]:
            metrics = [m for m in held_out_for(tables[a], ctx, arm) if m in held_out_for(tables[b], ctx, arm)]
            ga = {m: st.gain(tables[a], arm, m) for m in metrics}
            gb = {m: st.gain(tables[b], arm, m) for m in metrics}
            out.append({"arm": arm, "model_a": a, "model_b": b, "tests": st.comparison(ga, gb, ctx["ev"], ctx["alpha"], ctx["uncal"])})
    return out


def smaller_vs_larger(tables: Mapping[str, pd.DataFrame], performance: Mapping, models: Mapping, ctx: Mapping) -> list[dict]:
    """Each loss arm of a model with fewer decoder parameters vs a larger model's baseline."""
    out = []
    for small, large in itertools.permutations(tables, 2):
        ps, pl = (models.get(x, {}).get("decoder_parameters") for x in (small, large))
        if ps is None or pl is None or not ps < pl:
            continue
        for arm in arms_of(tables[small]):
            metrics = [m for m in held_out_for(tables[small], ctx, arm) if m in present_metrics(tables[large])]
            tests = st.comparison(values(tables[small], arm, metrics), values(tables[large], BASELINE, metrics), ctx["ev"], ctx["alpha"], ctx["uncal"])
            out.append({"small": small, "arm": arm, "large": large, "decoder_parameters": [ps, pl], "tests": tests, "cost": cost_pair(performance.get(small), arm, performance.get(large), BASELINE)})
    return out


def claimed_cheaper(perf: Mapping | None) -> Callable[[str, str], bool]:
    """cheaper(a, b) for the frontier: a's compute per image is claimed lower than b's (Welch CI
    and batch-to-batch noise, the same clock: cost_pair)."""
    def cheaper(a: str, b: str) -> bool:
        row = cost_pair(perf, a, perf, b)["comparison"]
        return bool(row and row["claimed"] and row["mean_diff"] < 0)
    return cheaper


def sweep_entry(table: pd.DataFrame, gains: Mapping, costs: Mapping, settings: Mapping[str, dict], ctx: Mapping, perf: Mapping | None = None) -> dict:
    """Points, frontier and recommendation per held-out metric of one sweep of one model
    (``perf``: the model's performance summary; without it, cheaper = a lower mean)."""
    arms = [a for a in settings if a in gains]
    metrics = gains[arms[0]]["held_out"]
    points = {m: gain_points(gains, costs, arms, m) for m in metrics}
    cheaper = claimed_cheaper(perf) if perf is not None else None
    picks = {m: fr.candidate(points[m], cheaper) for m in metrics}
    runner = {m: st.compare(st.oriented(table, b, m), st.oriented(table, r, m), ctx["ev"]) for m, (b, r) in picks.items() if b and r}
    runner = st.family(runner, ctx["alpha"], ctx["uncal"])
    rec = {m: fr.decide(b, r, gains[b]["tests"].get(m) if b else None, runner.get(m), m in ctx["uncal"]) for m, (b, r) in picks.items()}
    return {
        "settings": {a: dict(settings[a]) for a in arms}, "held_out": metrics,
        "points": {m: [{"arm": a, "compute_per_image_s": c, "gain": g} for a, (c, g) in p.items()] for m, p in points.items()},
        "frontier": {m: fr.pareto_front(p, cheaper) for m, p in points.items()},
        "vs_runner_up": runner, "recommendation": rec,
    }


def gain_points(gains: Mapping, costs: Mapping, arms, metric: str) -> dict[str, tuple[float, float]]:
    """{arm: (mean compute per image, mean gain on ``metric``)} for the arms that have both."""
    out = {}
    for a in arms:
        t = gains.get(a, {}).get("tests", {}).get(metric)
        c = costs.get(a, {}).get("mean")
        if t and _finite(c) and _finite(t["mean_diff"]):
            out[a] = (c, t["mean_diff"])
    return out


def model_frontiers(gains: Mapping, costs: Mapping, perf: Mapping | None = None) -> dict[str, list[str]]:
    """Per metric, the frontier over every loss arm of one model that holds the metric out
    (what the study figure draws)."""
    metrics = list(dict.fromkeys(m for g in gains.values() for m in g["held_out"]))
    cheaper = claimed_cheaper(perf) if perf is not None else None
    return {m: fr.pareto_front(gain_points(gains, costs, gains, m), cheaper) for m in metrics}


def method_comparisons(table: pd.DataFrame, perf: Mapping | None, methods: Mapping[str, str], ctx: Mapping, losses: Mapping[str, dict] | None = None) -> list[dict]:
    """Every pair of this model's arms whose optimization methods differ and, when ``losses``
    ({arm: loss spec}) is given, whose loss is the same: the method is then all that differs
    (an lpips arm against a gradient-free psnr arm would compare losses, not methods)."""
    arms = [a for a in arms_of(table) if a in methods]
    out = []
    for a, b in itertools.combinations(arms, 2):
        if methods[a] == methods[b] or (losses is not None and losses.get(a) != losses.get(b)):
            continue
        metrics = held_out_for(table, ctx, a, b)
        tests = st.comparison(values(table, a, metrics), values(table, b, metrics), ctx["ev"], ctx["alpha"], ctx["uncal"])
        out.append({"a": a, "b": b, "method_a": methods[a], "method_b": methods[b], "tests": tests, "cost": cost_pair(perf, a, perf, b)})
    return out


def _batch_costs(perf: Mapping | None, arm: str) -> dict | None:
    return (((perf or {}).get("datasets") or {}).get(arm) or {}).get("batch_costs")


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and v == v and abs(v) != float("inf")


def cost_entry(perf: Mapping | None, arm: str) -> dict:
    """Mean compute per image on the device clock over batches (performance_summary.json)."""
    bc = _batch_costs(perf, arm)
    if not bc:
        return {"mean": None, "ci95_low": None, "ci95_high": None, "n_batches": 0, "clock": [], "n_too_small": True}
    s = bc["compute_per_image_s"]
    return {"mean": s["mean"], "ci95_low": s["ci95_low"], "ci95_high": s["ci95_high"], "n_batches": bc["n_batches"], "clock": list(bc.get("clock") or []), "n_too_small": n_too_small(bc["n_batches"])}


def cost_pair(perf_a: Mapping | None, arm_a: str, perf_b: Mapping | None, arm_b: str) -> dict:
    """Both costs and their Welch comparison (a - b); never claimed across different clocks."""
    ca, cb = _batch_costs(perf_a, arm_a), _batch_costs(perf_b, arm_b)
    out = {"a": cost_entry(perf_a, arm_a), "b": cost_entry(perf_b, arm_b), "comparison": None, "same_clock": None}
    if ca and cb:
        out["same_clock"] = sorted(ca.get("clock") or []) == sorted(cb.get("clock") or [])
        row = cost_comparisons({"a": ca, "b": cb})[0]
        row["claimed"] = bool(row["claimed"] and out["same_clock"])
        out["comparison"] = row
    return out


def load_model_outputs(tables: Mapping[str, str | Path], performance: Mapping[str, str | Path]) -> tuple[dict[str, pd.DataFrame], dict[str, dict]]:
    """({model: its per_image_metrics.csv}, {model: its performance_summary.json}) from each
    model's files (split and image id read as text, as report.inputs does, so that ids join
    across models)."""
    frames = {m: pd.read_csv(p, dtype={"split": str, "image_id": str, "dataset": str}) for m, p in tables.items()}
    return frames, {m: read_json(p) for m, p in performance.items()}
