"""study_analysis.json: one study = several autoencoders ("models"), each with its own complete
results tree (baseline + loss arms); this compares them. Nothing new is computed statistically:
per-image comparisons are analysis.statistics.paired_comparison with Holm families and one
verdict rule (analysis.study_tests), costs are counted work (analysis.study_costs: TFLOP per
image; measured device time as context only), frontiers and recommendations follow
analysis.frontier, and a comparison is drawn only between matched arms (analysis.study_matching:
settings identical but for the compared factor; otherwise the differing keys are recorded and no
test is run).

Sections (every test is on held-out metrics: neither the arm's objective nor a declared
relative, objectives.RELATED_METRICS, except the sweeps' ``objective`` purposes, marked so;
metrics of an uncalibrated network are objectives.NOT_JUDGED, outside every family):

* ``settings[model][arm]``: each arm's settings record (study_matching.arm_settings).
* ``costs[model][arm]``: counted TFLOP per image, its multiple of the plain decode, device time.
* ``gains[model][arm]``: each loss arm vs *its own model's* baseline, paired per image, on its
  held-out metrics (``tests``) and on its objective family (``objective_tests``, descriptive).
* ``quality[metric]``: absolute mean quality of every (model, dataset) on the images ok in all of
  them, with the frontier over counted work (the study figure; points of an arm whose objective
  family holds the metric are drawn but not on the frontier).
* ``baseline_differences``: every pair of models' plain reconstructions, on the same images.
* ``model_differences``: the same arm in two models (matched settings), absolute values, paired.
* ``gain_differences``: gain in model a minus gain in model b for a matched shared arm.
* ``smaller_vs_larger``: each loss arm of a model with fewer decoder parameters vs a larger
  model's baseline (paired per image), with both costs.
* ``sweeps[model][base]``: points, frontier, runner-up tests and recommendation per purpose.
* ``methods[model]``: every pair of arms of different methods: tests only when matched.
* ``metadata``: models, alpha, bootstrap settings, uncalibrated metrics, gate images, the cost
  axis, and ``tests``: how many tests the study ran. Every calibrated test also carries
  ``p_study`` and ``verdict_study``: Holm over ALL the study's tests (study_tests.study_wide);
  recommendations and the verdict lines (analysis.study_verdicts) use those.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from latentopt.core.numbers import is_finite
from latentopt.analysis import frontier as fr
from latentopt.analysis import study_costs as sc
from latentopt.analysis import study_matching as sm
from latentopt.analysis import study_tests as st
from latentopt.analysis.statistics import summarize
from latentopt.analysis.study_verdicts import verdict_lines
from latentopt.core.fileio import as_json, read_json
from latentopt.workflow.layout import BASELINE
from latentopt.workflow.objectives import with_relatives


def study_analysis(tables: Mapping[str, pd.DataFrame], performance: Mapping[str, dict], models: Mapping[str, dict], sweeps: Mapping[str, Mapping[str, dict]], *, objectives: Mapping[str, set], evaluation: Mapping, calibrated: Mapping, settings: Mapping[str, Mapping[str, dict]] | None = None, gate_images: set | None = None) -> dict:
    """The study analysis (module docstring), JSON-ready. ``tables``: {model: its
    per_image_metrics.csv}; ``performance``: {model: its performance_summary.json};
    ``objectives``: {arm: metrics its loss optimizes} (objectives.arm_objectives);
    ``evaluation``: the config's evaluation block (n_boot, seed, success_criteria.alpha);
    ``sweeps``: {base: {arm: {swept key: value}}}; ``settings``: {model: {arm: settings record}}
    (study_matching.arm_settings; without it no comparison is known to be matched)."""
    ctx = {"ev": evaluation, "alpha": evaluation["success_criteria"]["alpha"], "uncal": st.uncalibrated(calibrated), "objectives": objectives}
    settings = {m: dict((settings or {}).get(m) or {}) for m in tables}
    costs = {m: {a: sc.cost_entry(performance.get(m), a) for a in arms_of(t, True)} for m, t in tables.items()}
    gains = {m: model_gains(t, ctx) for m, t in tables.items()}
    out = {
        "metadata": metadata(models, ctx, gate_images, costs),
        "settings": settings,
        "costs": costs,
        "gains": gains,
        "quality": quality(tables, costs, ctx),
        "baseline_differences": baseline_differences(tables, ctx),
        "model_differences": model_differences(tables, settings, ctx),
        "gain_differences": gain_differences(tables, settings, ctx),
        "smaller_vs_larger": smaller_vs_larger(tables, costs, models, ctx),
        "sweeps": {m: {base: sweep_entry(tables[m], gains[m], costs[m], arms, settings[m], ctx) for base, arms in sweeps.items() if set(arms) & set(gains[m])} for m in tables},
        "methods": {m: method_comparisons(tables[m], costs[m], settings[m], ctx) for m in tables},
    }
    out["metadata"]["tests"] = st.study_wide(out, ctx["alpha"])
    for m, model_sweeps in out["sweeps"].items():
        for sweep in model_sweeps.values():
            sweep["recommendation"] = recommendations(sweep, gains[m], ctx)
    out["verdicts"] = verdict_lines(out)
    return as_json(out)


def metadata(models: Mapping, ctx: Mapping, gate_images, costs: Mapping) -> dict:
    gate = sorted(tuple(k) for k in gate_images or ())
    counted = all(c["tflop_per_image"] is not None for arms in costs.values() for c in arms.values())
    return {
        "models": dict(models), "alpha": ctx["alpha"], "n_boot": ctx["ev"]["n_boot"], "seed": ctx["ev"]["seed"],
        "uncalibrated": sorted(ctx["uncal"]),
        "gate_images": {"n": len(gate), "images": [list(k) for k in gate], "in_evidence": True},
        "cost_axis": sc.COUNTED if counted else None,
        "rules": {"tests": st.__doc__, "frontier": fr.__doc__, "costs": sc.__doc__, "matching": sm.__doc__},
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


def objective_for(table: pd.DataFrame, ctx: Mapping, arm: str) -> list[str]:
    """The arm's objective family (its objectives and their declared relatives) among the
    directional metrics the table holds."""
    family = with_relatives(ctx["objectives"].get(arm, set()))
    return [m for m in st.held_out(present_metrics(table), ()) if m in family]


def values(table: pd.DataFrame, arm: str, metrics) -> dict[str, pd.Series]:
    return {m: st.oriented(table, arm, m) for m in metrics}


def _compare(table_a, arm_a, table_b, arm_b, metrics, ctx) -> dict:
    return st.comparison(values(table_a, arm_a, metrics), values(table_b, arm_b, metrics), ctx["ev"], ctx["alpha"], ctx["uncal"])


def model_gains(table: pd.DataFrame, ctx: Mapping) -> dict:
    """Each loss arm vs the model's own baseline on the arm's held-out metrics and, apart, on
    its objective family."""
    out = {}
    for arm in arms_of(table):
        metrics, objective = held_out_for(table, ctx, arm), objective_for(table, ctx, arm)
        out[arm] = {"held_out": metrics, "tests": _compare(table, arm, table, BASELINE, metrics, ctx),
                    "objective": objective, "objective_tests": _compare(table, arm, table, BASELINE, objective, ctx)}
    return out


def common_images(tables: Mapping[str, pd.DataFrame], metric: str) -> pd.Index:
    """The (split, image_id) keys ok with a finite ``metric`` in every dataset of every model."""
    keys = None
    for t in tables.values():
        for arm in arms_of(t, True):
            k = st.oriented(t, arm, metric).index
            keys = k if keys is None else keys.intersection(k)
    return keys.sort_values() if keys is not None else pd.Index([])


def quality(tables: Mapping[str, pd.DataFrame], costs: Mapping, ctx: Mapping) -> dict:
    """Absolute mean quality per (model, dataset) on common images, and its counted-work frontier."""
    metrics = [m for m in st.held_out(set().union(*(present_metrics(t) for t in tables.values())), ()) if all(m in present_metrics(t) for t in tables.values())]
    out = {}
    for metric in metrics:
        keys = common_images(tables, metric)
        points = []
        for model, t in tables.items():
            for arm in arms_of(t, True):
                raw = st.oriented(t, arm, metric).loc[keys] * (1.0 if st.HIGHER_IS_BETTER[metric] else -1.0)
                s = summarize(raw.to_numpy())
                points.append({"model": model, "arm": arm, "mean": s["mean"], "ci95_low": s["ci95_low"], "ci95_high": s["ci95_high"], "n": int(s["n"]),
                               "objective": arm != BASELINE and metric in with_relatives(ctx["objectives"].get(arm, set())),
                               "tflop_per_image": costs[model][arm]["tflop_per_image"]})
        eligible = {f"{p['model']}/{p['arm']}": (p["tflop_per_image"], p["mean"] * (1.0 if st.HIGHER_IS_BETTER[metric] else -1.0)) for p in points if not p["objective"] and is_finite(p["mean"])}
        cheaper = sc.cheaper_by_work({k: v[0] for k, v in eligible.items()})
        out[metric] = {"n_images": len(keys), "higher_is_better": st.HIGHER_IS_BETTER[metric], "not_judged": metric in ctx["uncal"],
                       "points": points, "frontier": fr.pareto_front(eligible, cheaper)}
    return out


def baseline_differences(tables: Mapping[str, pd.DataFrame], ctx: Mapping) -> list[dict]:
    out = []
    for a, b in itertools.combinations(tables, 2):
        metrics = [m for m in held_out_for(tables[a], ctx) if m in held_out_for(tables[b], ctx)]
        out.append({"model_a": a, "model_b": b, "tests": _compare(tables[a], BASELINE, tables[b], BASELINE, metrics, ctx)})
    return out


def _shared_arms(tables, settings, a, b):
    """(arm, confounds) for every loss arm both models ran (confounds: study_matching.confounds)."""
    for arm in [x for x in arms_of(tables[a]) if x in arms_of(tables[b])]:
        yield arm, sm.confounds(settings[a].get(arm), settings[b].get(arm), ())


def model_differences(tables: Mapping[str, pd.DataFrame], settings: Mapping, ctx: Mapping) -> list[dict]:
    """The same arm in two models, absolute oriented values paired per image (matched arms only)."""
    out = []
    for a, b in itertools.combinations(tables, 2):
        for arm, conf in _shared_arms(tables, settings, a, b):
            metrics = [m for m in held_out_for(tables[a], ctx, arm) if m in held_out_for(tables[b], ctx, arm)]
            tests = _compare(tables[a], arm, tables[b], arm, metrics, ctx) if conf == [] else {}
            out.append({"arm": arm, "model_a": a, "model_b": b, "confounds": conf, "tests": tests})
    return out


def gain_differences(tables: Mapping[str, pd.DataFrame], settings: Mapping, ctx: Mapping) -> list[dict]:
    """Gain(model a) - gain(model b) per image, for every matched arm the two models share."""
    out = []
    for a, b in itertools.combinations(tables, 2):
        for arm, conf in _shared_arms(tables, settings, a, b):
            metrics = [m for m in held_out_for(tables[a], ctx, arm) if m in held_out_for(tables[b], ctx, arm)]
            tests = {}
            if conf == []:
                ga = {m: st.gain(tables[a], arm, m) for m in metrics}
                gb = {m: st.gain(tables[b], arm, m) for m in metrics}
                tests = st.comparison(ga, gb, ctx["ev"], ctx["alpha"], ctx["uncal"])
            out.append({"arm": arm, "model_a": a, "model_b": b, "confounds": conf, "tests": tests})
    return out


def smaller_vs_larger(tables: Mapping[str, pd.DataFrame], costs: Mapping, models: Mapping, ctx: Mapping) -> list[dict]:
    """Each loss arm of a model with fewer decoder parameters vs a larger model's baseline."""
    out = []
    for small, large in itertools.permutations(tables, 2):
        ps, pl = (models.get(x, {}).get("decoder_parameters") for x in (small, large))
        if ps is None or pl is None or not ps < pl:
            continue
        for arm in arms_of(tables[small]):
            metrics = [m for m in held_out_for(tables[small], ctx, arm) if m in present_metrics(tables[large])]
            out.append({"small": small, "arm": arm, "large": large, "decoder_parameters": [ps, pl],
                        "tests": _compare(tables[small], arm, tables[large], BASELINE, metrics, ctx),
                        "cost": cost_pair(costs[small][arm], costs[large][BASELINE])})
    return out


def cost_pair(a: Mapping, b: Mapping) -> dict:
    """Both cost entries and their order on counted work (study_costs.cost_order)."""
    return {"a": a, "b": b, **sc.cost_order(a, b)}


def sweep_entry(table: pd.DataFrame, gains: Mapping, costs: Mapping, swept: Mapping[str, dict], settings: Mapping, ctx: Mapping) -> dict:
    """Points, frontier and the candidate-vs-runner-up tests per purpose of one sweep of one
    model. Purposes: the arms' held-out metrics and their objective family (``objective``). The
    runner-up test is run only when the two arms' settings differ in the swept keys alone."""
    arms = [a for a in swept if a in gains]
    keys = sorted({k for a in arms for k in swept[a]})
    held, objective = gains[arms[0]]["held_out"], gains[arms[0]]["objective"]
    tflop = {a: costs.get(a, {}).get("tflop_per_image") for a in arms}
    cheaper = sc.cheaper_by_work(tflop)
    points = {m: gain_points(gains, costs, arms, m, "tests" if m in held else "objective_tests") for m in [*held, *objective]}
    picks = {m: fr.candidate(points[m], cheaper) for m in points}
    confounds = {m: sm.confounds(settings.get(b), settings.get(r), keys) for m, (b, r) in picks.items() if b and r}
    runner = {m: st.compare(st.oriented(table, b, m), st.oriented(table, r, m), ctx["ev"]) for m, (b, r) in picks.items() if b and r and confounds[m] == []}
    runner = {**st.family({m: t for m, t in runner.items() if m in held}, ctx["alpha"], ctx["uncal"]),
              **st.family({m: t for m, t in runner.items() if m in objective}, ctx["alpha"], ctx["uncal"])}
    return {
        "settings": {a: dict(swept[a]) for a in arms}, "swept_keys": keys, "held_out": held, "objective": objective,
        "points": {m: [{"arm": a, "tflop_per_image": c, "gain": g} for a, (c, g) in p.items()] for m, p in points.items()},
        "frontier": {m: fr.pareto_front(p, cheaper) for m, p in points.items()},
        "picks": {m: {"candidate": b, "runner_up": r} for m, (b, r) in picks.items()},
        "confounds": confounds, "vs_runner_up": runner,
    }


def recommendations(sweep: Mapping, gains: Mapping, ctx: Mapping) -> dict:
    """frontier.decide per purpose on the study-wide verdicts (``verdict_study``)."""
    out = {}
    for m, pick in sweep["picks"].items():
        best, runner = pick["candidate"], pick["runner_up"]
        where = "objective_tests" if m in sweep["objective"] else "tests"
        conf = sweep["confounds"].get(m)
        if best and runner and conf != []:
            out[m] = {"candidate": best, "runner_up": runner, "recommended": None, "verdict": fr.NONE_SHOWN,
                      "reason": f"{best} and the runner-up {runner} {sm.confound_text(conf)}: not a sweep of {', '.join(sweep['swept_keys'])} alone"}
            continue
        base_t = gains[best][where].get(m) if best else None
        out[m] = fr.decide(best, runner, st.study_view(base_t), st.study_view(sweep["vs_runner_up"].get(m)), m in ctx["uncal"])
    return out


def gain_points(gains: Mapping, costs: Mapping, arms, metric: str, where: str = "tests") -> dict[str, tuple[float | None, float]]:
    """{arm: (counted TFLOP per image or None, mean gain on ``metric``)} for the arms with a gain."""
    out = {}
    for a in arms:
        t = gains.get(a, {}).get(where, {}).get(metric)
        if t and is_finite(t["mean_diff"]):
            out[a] = (costs.get(a, {}).get("tflop_per_image"), t["mean_diff"])
    return out


def method_comparisons(table: pd.DataFrame, costs: Mapping, settings: Mapping, ctx: Mapping) -> list[dict]:
    """Every pair of this model's arms whose methods differ (settings' ``method``): tested only
    when their settings differ in ``method`` alone; otherwise the confounds are named and no test
    is run (a schedule or lr difference is not a method difference)."""
    arms = [a for a in arms_of(table) if (settings.get(a) or {}).get("method")]
    out = []
    for a, b in itertools.combinations(arms, 2):
        ma, mb = settings[a]["method"], settings[b]["method"]
        if ma == mb:
            continue
        conf = sm.confounds(settings[a], settings[b], ("method",))
        tests = _compare(table, a, table, b, held_out_for(table, ctx, a, b), ctx) if conf == [] else {}
        out.append({"a": a, "b": b, "method_a": ma, "method_b": mb, "matched": conf == [], "confounds": conf, "tests": tests, "cost": cost_pair(costs[a], costs[b])})
    return out




def load_model_outputs(tables: Mapping[str, str | Path], performance: Mapping[str, str | Path]) -> tuple[dict[str, pd.DataFrame], dict[str, dict]]:
    """({model: its per_image_metrics.csv}, {model: its performance_summary.json}) from each
    model's files (split and image id read as text, as report.inputs does, so that ids join
    across models)."""
    frames = {m: pd.read_csv(p, dtype={"split": str, "image_id": str, "dataset": str}) for m, p in tables.items()}
    return frames, {m: read_json(p) for m, p in performance.items()}
