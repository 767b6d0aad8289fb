"""The study section of the report: which autoencoder, which settings, which method, answered from
study_analysis.json (analysis.study) only; nothing here computes a statistic or a verdict.

Every claim is printed with its evidence metric, the mean difference with its 95 % bootstrap CI
(formatting.interval, the report's one interval formatter), n, the Holm-corrected Wilcoxon p and
the size of its family, and the verdict of analysis.study_tests ("better"/"worse" only when the
CI excludes 0 and Holm p < alpha; "n too small"; objectives.NOT_JUDGED on an uncalibrated
network). Gains are oriented: > 0 is an improvement (for a ↓ metric, a decrease). Rendered with
``templates/study.md.j2`` into one Markdown string the report places as is.
"""

from __future__ import annotations

from collections.abc import Mapping

from latentopt.analysis.statistics import MIN_N_INTERVAL
from latentopt.report.rendering import render_template
from latentopt.report.formatting import _finite, fmt, fmt_p, interval, metric_label, table
from latentopt.workflow.objectives import NOT_JUDGED

TEMPLATE = "study.md.j2"
CLAIM_HEADER = ["comparison (first − second)", "evidence metric", "difference, > 0: first better [95 % CI]", "n", "Holm p (family m)", "verdict"]


def effect(t: Mapping, metric: str) -> str:
    """Mean oriented difference and its CI; "CI: n too small" below MIN_N_INTERVAL pairs."""
    d = fmt(t.get("mean_diff"), metric, True)
    ci = interval(t.get("ci95_low"), t.get("ci95_high"), metric, True)
    return f"{d} {ci}" if ci else f"{d} (CI: n too small, n = {t.get('n', 0)} < {MIN_N_INTERVAL})"


def p_text(t: Mapping) -> str:
    if t.get("verdict") == NOT_JUDGED:
        return "not tested (outside the family)"
    return f"{fmt_p(t.get('p_holm'))} (m = {t.get('m_tests')})"


def verdict_text(t: Mapping, alpha: float) -> str:
    v = t.get("verdict")
    if v == "n too small":
        if t.get("ci95_low") is None:
            return f"n too small (CI needs n ≥ {MIN_N_INTERVAL})"
        return f"n too small (smallest attainable Holm p {fmt_p(t.get('p_holm_min'))} ≥ α = {alpha})"
    return {"better": "**better**", "worse": "**worse**"}.get(v, v or "n/a")


def claim_row(what: str, metric: str, t: Mapping, alpha: float) -> list[str]:
    return [what, metric_label(metric), effect(t, metric), str(t.get("n", 0)), p_text(t), verdict_text(t, alpha)]


def claim(what: str, metric: str, t: Mapping, alpha: float) -> str:
    """One sentence: what, evidence metric, difference [CI], n, Holm p over m, verdict."""
    _, label, eff, n, p, v = claim_row(what, metric, t, alpha)
    return f"{what}, {label}: {eff}, n = {n}, Holm p = {p}: {v}"


def claims_table(entries, alpha: float) -> dict | None:
    """``entries``: (comparison text, {metric: test}) pairs; one row per test."""
    rows = [claim_row(what, m, t, alpha) for what, tests in entries for m, t in tests.items()]
    return table(CLAIM_HEADER, rows, ["l", "l", "r", "r", "r", "l"]) if rows else None


def shown(entries, alpha: float) -> list[str]:
    """The claims whose verdict is better/worse (the rest stay in the tables)."""
    return [claim(what, m, t, alpha) for what, tests in entries for m, t in tests.items() if t.get("verdict") in ("better", "worse")]


def model_name(name: str, models: Mapping) -> str:
    d = models.get(name) or {}
    return f"{name} (demo/synthetic)" if d.get("synthetic") else name


def cost_text(c: Mapping | None) -> str:
    """Mean compute per image on the device clock [t-interval] (batches, clock)."""
    if not c or not _finite(c.get("mean")):
        return "no batch times recorded"
    clock = ", ".join(c.get("clock") or []) or "clock not recorded"
    if c.get("n_too_small"):
        return f"{fmt(c['mean'])} s/image (n too small: {c['n_batches']} batches < {MIN_N_INTERVAL}; {clock})"
    return f"{fmt(c['mean'])} s/image {interval(c.get('ci95_low'), c.get('ci95_high'))} ({c['n_batches']} batches; {clock})"


def cost_comparison_text(pair: Mapping) -> str:
    row = pair.get("comparison")
    if not row:
        return "no cost comparison (batch times missing)"
    if not pair.get("same_clock"):
        return "not compared: different clocks"
    if row.get("ci95_low") is None:
        return f"n too small ({row['n_a']} and {row['n_b']} batches; {MIN_N_INTERVAL} needed)"
    word = "claimed" if row.get("claimed") else "not claimed (within noise or CI spans 0)"
    return f"difference {fmt(row['mean_diff'], '', True)} s/image {interval(row['ci95_low'], row['ci95_high'], '', True)} (Welch, batches): {word}"


def models_table(models: Mapping, analysis: Mapping) -> dict:
    rows = []
    for name, d in models.items():
        params = d.get("decoder_parameters")
        base = cost_text(analysis.get("costs", {}).get(name, {}).get("baseline"))
        rows.append([name, d.get("label", name), f"{params:,}" if isinstance(params, int) else "unknown", "demo/synthetic: not research results" if d.get("synthetic") else "pretrained", base])
    return table(["model", "description", "decoder parameters", "kind", "baseline compute (device clock)"], rows, ["l", "l", "r", "l", "l"])


def autoencoder_context(a: Mapping, models: Mapping, alpha: float) -> dict:
    base = [(f"{model_name(r['model_a'], models)} − {model_name(r['model_b'], models)}, plain reconstruction", r["tests"]) for r in a.get("baseline_differences", [])]
    gains = [(f"{model_name(m, models)}: {arm} − baseline", g["tests"]) for m, arms in a.get("gains", {}).items() for arm, g in arms.items()]
    diffs = [(f"{r['arm']}: gain in {model_name(r['model_a'], models)} − gain in {model_name(r['model_b'], models)}", r["tests"]) for r in a.get("gain_differences", [])]
    small = [(f"{model_name(r['small'], models)}/{r['arm']} − {model_name(r['large'], models)}/baseline", r["tests"]) for r in a.get("smaller_vs_larger", [])]
    costs = [[f"{r['small']}/{r['arm']} vs {r['large']}/baseline", cost_text(r["cost"]["a"]), cost_text(r["cost"]["b"]), cost_comparison_text(r["cost"])] for r in a.get("smaller_vs_larger", [])]
    return {
        "baseline": claims_table(base, alpha), "gains": claims_table(gains, alpha), "differences": claims_table(diffs, alpha),
        "smaller": claims_table(small, alpha),
        "smaller_costs": table(["comparison", "compute, optimized smaller", "compute, larger baseline", "cost difference"], costs, ["l"] * 4) if costs else None,
        "shown": shown(base + diffs + small, alpha),
    }


def setting_text(arm: str, settings: Mapping) -> str:
    s = settings.get(arm) or {}
    return f"{arm} (" + ", ".join(f"{k} {v}" for k, v in s.items()) + ")" if s else arm


def recommendation_line(model: str, base: str, metric: str, sweep: Mapping, gains: Mapping, costs: Mapping, alpha: float) -> str:
    rec = sweep["recommendation"][metric]
    head = f"{model}, sweep {base}, for {metric_label(metric, False)}"
    front = ", ".join(sweep["frontier"].get(metric, [])) or "empty"
    if rec["verdict"] == NOT_JUDGED:
        return f"{head}: {NOT_JUDGED} (frontier listed only: {front})."
    best, runner = rec.get("candidate"), rec.get("runner_up")
    parts = []
    if best and metric in gains.get(best, {}).get("tests", {}):
        parts.append(claim(f"{best} − baseline", metric, gains[best]["tests"][metric], alpha))
    if best and runner and metric in sweep.get("vs_runner_up", {}):
        parts.append(claim(f"{best} − runner-up {runner}", metric, sweep["vs_runner_up"][metric], alpha))
    if best:
        parts.append(f"compute of {best}: {cost_text(costs.get(best))}")
    evidence = "; ".join(parts)
    if rec["verdict"] == "recommended":
        return f"{head}: use **{setting_text(best, sweep['settings'])}** (on the frontier: {front}); {evidence}."
    return f"{head}: {rec['verdict']} ({rec['reason']}; frontier: {front})" + (f"; {evidence}." if evidence else ".")


def points_table(sweep: Mapping, gains: Mapping, costs: Mapping, alpha: float) -> dict:
    metrics = sweep["held_out"]
    rows = []
    for arm in sweep["settings"]:
        row = [setting_text(arm, sweep["settings"]), cost_text(costs.get(arm))]
        for m in metrics:
            t = gains.get(arm, {}).get("tests", {}).get(m)
            mark = " ◆" if arm in sweep["frontier"].get(m, []) else ""
            row.append(f"{effect(t, m)}, n = {t.get('n', 0)}, {verdict_text(t, alpha)}{mark}" if t else "n/a")
        rows.append(row)
    return table(["setting", "compute (device clock)", *[f"gain {metric_label(m)}" for m in metrics]], rows, ["l"] * (2 + len(metrics)))


def settings_context(a: Mapping, models: Mapping, alpha: float) -> list[dict]:
    out = []
    for model, sweeps in a.get("sweeps", {}).items():
        for base, sweep in sweeps.items():
            gains, costs = a["gains"][model], a["costs"][model]
            out.append({"model": model_name(model, models), "base": base, "table": points_table(sweep, gains, costs, alpha),
                        "lines": [recommendation_line(model_name(model, models), base, m, sweep, gains, costs, alpha) for m in sweep["held_out"]]})
    return out


def method_context(a: Mapping, models: Mapping, alpha: float) -> dict:
    entries = [(f"{model_name(m, models)}: {r['a']} ({r['method_a']}) − {r['b']} ({r['method_b']})", r["tests"]) for m, rows in a.get("methods", {}).items() for r in rows]
    costs = [[f"{model_name(m, models)}: {r['a']} vs {r['b']}", cost_text(r["cost"]["a"]), cost_text(r["cost"]["b"]), cost_comparison_text(r["cost"])] for m, rows in a.get("methods", {}).items() for r in rows]
    return {"table": claims_table(entries, alpha), "costs": table(["comparison", "compute a", "compute b", "cost difference"], costs, ["l"] * 4) if costs else None, "shown": shown(entries, alpha)}


def gate_text(meta: Mapping) -> str:
    g = meta.get("gate_images") or {}
    if not g.get("n"):
        return ""
    return f"Evidence pool: every test includes the {g['n']} image(s) the quality gate ran first (the gate judged only each loss's own objective on them; they are otherwise ordinary images)."


def study_context(analysis: Mapping, figures: Mapping | None = None) -> dict:
    meta = analysis["metadata"]
    models, alpha = meta["models"], meta["alpha"]
    return {
        "alpha": alpha, "min_n": MIN_N_INTERVAL, "not_judged": NOT_JUDGED, "uncalibrated": [metric_label(m, False) for m in meta.get("uncalibrated", [])],
        "synthetic": [m for m, d in models.items() if d.get("synthetic")], "models": models_table(models, analysis),
        "q1": autoencoder_context(analysis, models, alpha), "q2": settings_context(analysis, models, alpha), "q3": method_context(analysis, models, alpha),
        "gate": gate_text(meta), "figures": dict(figures or {}),
    }


def render_study(analysis: Mapping, figures: Mapping | None = None) -> str:
    """The study section as Markdown (``figures``: study_figures.study_figures's paths)."""
    return render_template(TEMPLATE, study_context(analysis, figures))
