"""The study report's text: the verdicts on top, then which autoencoder, which settings, which
method, then an appendix of compact matrices, all from study_analysis.json (analysis.study) only;
nothing here computes a statistic or a verdict.

Every claim states its evidence metric, the oriented mean difference (> 0: the first-named side
better) with its 95 % bootstrap CI (formatting.interval), n and the study-wide corrected p
(``p_study``: Holm over every test the study ran, analysis.study_tests.study_wide). Costs are
counted work (TFLOP per image, analysis.study_costs); measured device time is context only.
Rendered with ``templates/study.md.j2``.
"""

from __future__ import annotations

from collections.abc import Mapping

from latentopt.analysis.study_matching import confound_text
from latentopt.analysis.study_tests import finding_metrics
from latentopt.core.numbers import is_finite
from latentopt.report.formatting import fmt, fmt_p, interval, metric_label, table
from latentopt.report.rendering import render_template
from latentopt.workflow.layout import BASELINE
from latentopt.workflow.metric_specs import EVALUATED_METRICS
from latentopt.workflow.objectives import NOT_JUDGED

TEMPLATE = "study.md.j2"
MARKS = {"better": "▲", "worse": "▼"}
OWN_OBJECTIVE = "the arm's own objective"


def effect(t: Mapping | None, metric: str) -> str:
    """Oriented mean difference and its CI ("n/a" without a test)."""
    if not t:
        return "n/a"
    ci = interval(t.get("ci95_low"), t.get("ci95_high"), metric, True)
    return f"{fmt(t.get('mean_diff'), metric, True)} {ci or '(no CI: n too small)'}"


def tflop_text(c: Mapping | None, reference: str = "the plain decode") -> str:
    if not c or c.get("tflop_per_image") is None:
        return "counted work not recorded"
    k = c.get("x_plain_decode")
    return f"{fmt(c['tflop_per_image'])} TFLOP/image" + (f" ({k:.3g}× {c.get('reference', reference)})" if is_finite(k) else "")


def device_text(c: Mapping | None) -> str:
    d = (c or {}).get("device_time") or {}
    if not is_finite(d.get("mean")):
        return "not recorded"
    return f"{fmt(d['mean'])} s ({', '.join(d.get('clock') or []) or 'clock?'}, {d.get('n_batches', 0)} batches)"


def evidence_text(line: Mapping) -> str:
    e = line["evidence"]
    own = f" ({OWN_OBJECTIVE})" if e["own_objective"] else ""
    first = line["comparison"].split(" − ")[0]
    return (f"{line['comparison']}: Δ {effect(e, e['metric'])} on {metric_label(e['metric'])}{own} (> 0: {first} better), "
            f"n = {e['n']}, corrected p = {fmt_p(e['p_study'])} (Holm over {e['m_study']} tests)")


def verdict_bullet(line: Mapping) -> str:
    """One verdict line: "Use X for Y: Δ [CI] on <metric>, n, corrected p; costs Z" or the
    honest "no setting shown better (why)" with the closest candidate's numbers."""
    cost = tflop_text(line.get("cost"))
    if line["shown"]:
        purpose = metric_label(line["evidence"]["metric"], False)
        return f"**Use {line['use']}** over {line['over']} for {purpose} ({line['about']}): {evidence_text(line)}; costs {cost}."
    if not line.get("evidence"):
        return f"**{line['about']}**: {line['why']}."
    return f"**{line['about']}**: {line['why']}. Closest: {evidence_text(line)}; costs {cost}."


def verdicts_context(a: Mapping) -> dict:
    v, tests = a["verdicts"], a["metadata"]["tests"]
    parts = ", ".join(f"{n} {name}" for name, n in tests["by_section"].items())
    axis = a["metadata"].get("cost_axis")
    return {
        "lines": [verdict_bullet(x) for x in v["lines"]], "left_off": v["left_off"],
        "tests": f"The study ran {tests['n']} tests ({parts}); every p in this report is Holm-corrected over all {tests['n']} (α = {tests['alpha']}). "
                 + (f"Costs are {axis}; device time is context only." if axis else "Counted work is not recorded for every arm: no arm is ranked by cost; device time is context only."),
    }


def cell(t: Mapping | None, metric: str) -> str:
    """A matrix cell: Δ [CI], corrected p and ▲/▼ for a study-wide better/worse."""
    if not t:
        return ""
    if t.get("verdict") == NOT_JUDGED:
        return f"{fmt(t.get('mean_diff'), metric, True)} (not judged)"
    return f"{effect(t, metric)} p {fmt_p(t.get('p_study'))} {MARKS.get(t.get('verdict_study'), '')}".rstrip()


def matrix(rows: list[tuple[str, Mapping]], metrics: list[str], label: str) -> dict | None:
    """rows: (row label, {metric: test}); one column per metric plus n."""
    if not rows:
        return None
    body = [[name, str(max((t.get("n", 0) for t in tests.values()), default=0)), *[cell(tests.get(m), m) for m in metrics]] for name, tests in rows]
    return table([label, "n", *[metric_label(m) for m in metrics]], body, ["l", "r", *["r"] * len(metrics)])


def _metrics(groups) -> list[str]:
    seen = {m for tests in groups for m in tests}
    return [m for m in EVALUATED_METRICS if m in seen]


def models_table(a: Mapping) -> dict:
    rows = []
    for name, d in a["metadata"]["models"].items():
        p = d.get("decoder_parameters")
        base = a["costs"][name].get(BASELINE)
        rows.append([name, d.get("label", name), f"{p:,}" if isinstance(p, int) else "unknown", "demo/synthetic" if d.get("synthetic") else "pretrained", tflop_text(base and {**base, "x_plain_decode": None}), device_text(base)])
    return table(["model", "description", "decoder parameters", "kind", "plain decode, counted work", "plain decode, device time (context)"], rows, ["l", "l", "r", "l", "r", "r"])


def quality_table(a: Mapping) -> dict | None:
    """Absolute held-out quality per model on the same images: the plain decode and the best
    optimized arm holding the metric out (by mean), with its counted work."""
    q = a["quality"]
    metrics = finding_metrics([m for m in q if not q[m]["not_judged"]])
    rows = []
    for model in a["metadata"]["models"]:
        for m in metrics:
            pts = [p for p in q[m]["points"] if p["model"] == model]
            plain = next((p for p in pts if p["arm"] == BASELINE), None)
            sign = 1 if q[m]["higher_is_better"] else -1
            opt = sorted((p for p in pts if p["arm"] != BASELINE and not p["objective"] and is_finite(p["mean"])), key=lambda p: -sign * p["mean"])
            best = opt[0] if opt else None
            show = lambda p: f"{fmt(p['mean'], m)} {interval(p['ci95_low'], p['ci95_high'], m)}" if p else "n/a"  # noqa: E731
            front = " ◆" if best and f"{model}/{best['arm']}" in q[m]["frontier"] else ""
            rows.append([model, metric_label(m), str(q[m]["n_images"]), show(plain), f"{best['arm']}: {show(best)}{front}" if best else "n/a", tflop_text(a["costs"][model].get(best["arm"])) if best else ""])
    return table(["model", "metric", "images", "plain decode, mean [95 % CI]", "best optimized arm holding it out", "its counted work"], rows, ["l", "l", "r", "r", "r", "r"]) if rows else None


def model_lines(a: Mapping) -> list[str]:
    """Per model pair: the plain decodes and the optimized smaller model against the larger plain
    decode, counted as study-wide verdicts per finding metric."""
    out = []
    for r in a["baseline_differences"]:
        ms = finding_metrics([m for m, t in r["tests"].items() if t.get("verdict") != NOT_JUDGED])
        words = [f"{metric_label(m, False)} {effect(r['tests'][m], m)} ({r['tests'][m].get('verdict_study')})" for m in ms]
        out.append(f"Plain decodes, {r['model_a']} − {r['model_b']} (> 0: {r['model_a']} better): " + "; ".join(words) + ".")
    by = {}
    for r in a["smaller_vs_larger"]:
        for m, t in r["tests"].items():
            if t.get("verdict") != NOT_JUDGED:
                by.setdefault((r["small"], r["large"], m), []).append(t.get("verdict_study"))
    for (small, large, m), vs in by.items():
        if m in finding_metrics([k[2] for k in by if k[:2] == (small, large)]):
            out.append(f"{small}'s optimized arms against {large}'s plain decode on {metric_label(m, False)}: {vs.count('better')} better, {vs.count('worse')} worse, {len(vs) - vs.count('better') - vs.count('worse')} without a verdict, of {len(vs)}.")
    return out


def sweep_context(a: Mapping) -> list[dict]:
    out = []
    for model, sweeps in a["sweeps"].items():
        gains, costs = a["gains"][model], a["costs"][model]
        for base, s in sweeps.items():
            uncal = set(a["metadata"].get("uncalibrated", []))
            purposes = [m for m in [*finding_metrics(s["objective"]), *finding_metrics(s["held_out"])] if m not in uncal]  # not judged: appendix
            rows = []
            for arm, vals in s["settings"].items():
                row = [f"{arm} ({', '.join(f'{k} {v}' for k, v in vals.items())})", tflop_text(costs.get(arm))]
                for m in purposes:
                    t = gains[arm]["objective_tests" if m in s["objective"] else "tests"].get(m)
                    row.append(cell(t, m) + (" ◆" if arm in s["frontier"].get(m, []) else ""))
                rows.append(row)
            header = ["setting", "counted work", *[f"gain {metric_label(m)}" + (" (own objective)" if m in s["objective"] else "") for m in purposes]]
            lines = []
            for m in purposes:
                r = s["recommendation"][m]
                head = f"{metric_label(m, False)}" + (f" ({OWN_OBJECTIVE})" if m in s["objective"] else "")
                if r["verdict"] == "recommended":
                    lines.append(f"{head}: use {r['recommended']}; {r['reason']}.")
                else:
                    lines.append(f"{head}: {r['verdict']} ({r['reason']}).")
            out.append({"model": model, "base": base, "swept": ", ".join(s["swept_keys"]), "table": table(header, rows, ["l"] + ["r"] * (len(header) - 1)), "lines": lines})
    return out


def method_context(a: Mapping) -> dict:
    matched, other = [], []
    for model, rows in a["methods"].items():
        for r in rows:
            name = f"{model}: {r['a']} ({r['method_a']}) − {r['b']} ({r['method_b']})"
            (matched if r["matched"] else other).append((name, r))
    uncal = set(a["metadata"].get("uncalibrated", []))
    metrics = [m for m in finding_metrics(_metrics([r["tests"] for _, r in matched])) if m not in uncal]  # not judged: appendix
    costs = [[name, tflop_text(r["cost"]["a"]), tflop_text(r["cost"]["b"]), r["cost"]["order"] + (f" (a/b = {r['cost']['ratio']:.3g})" if is_finite(r["cost"].get("ratio")) and r["cost"]["order"] != "same work" else "")] for name, r in matched]
    return {
        "matrix": matrix([(n, r["tests"]) for n, r in matched], metrics, "matched pair (first − second)"),
        "costs": table(["matched pair", "counted work, first", "counted work, second", "first is"], costs, ["l", "r", "r", "l"]) if costs else None,
        "unmatched": unmatched_summary(a),
    }


def unmatched_summary(a: Mapping) -> list[str]:
    """One line per model: how many pairs of different methods are not matched and what differs."""
    out = []
    for model, rows in a["methods"].items():
        other = [r for r in rows if not r["matched"]]
        if other:
            keys = sorted({k for r in other for k in (r["confounds"] or ["settings not recorded"])})
            out.append(f"{model}: {len(other)} pair(s) of different methods also differ in other settings ({', '.join(keys)}): no method verdict from them (each pair: appendix).")
    return out


def appendix_context(a: Mapping) -> list[dict]:
    """The detail, one compact matrix (rows × metrics) per kind of comparison."""
    out = []
    gains = [(f"{m}: {arm} − baseline", g["tests"]) for m, arms in a["gains"].items() for arm, g in arms.items()]
    out.append(("Gain over the model's own baseline (held-out metrics)", matrix(gains, _metrics([t for _, t in gains]), "arm")))
    objective = [(f"{m}: {arm} − baseline", g["objective_tests"]) for m, arms in a["gains"].items() for arm, g in arms.items() if g["objective_tests"]]
    out.append((f"Gain on {OWN_OBJECTIVE} (descriptive: what the arm optimized)", matrix(objective, _metrics([t for _, t in objective]), "arm")))
    base = [(f"{r['model_a']} − {r['model_b']}", r["tests"]) for r in a["baseline_differences"]]
    same = [(f"{r['arm']}: {r['model_a']} − {r['model_b']}", r["tests"]) for r in a["model_differences"] if r["confounds"] == []]
    out.append(("The same dataset in two models (absolute values, plain decode first)", matrix(base + same, _metrics([t for _, t in base + same]), "dataset: model − model")))
    small = [(f"{r['small']}/{r['arm']} − {r['large']}/baseline", r["tests"]) for r in a["smaller_vs_larger"]]
    out.append(("An optimized smaller model against a larger model's plain decode", matrix(small, _metrics([t for _, t in small]), "comparison")))
    diffs = [(f"{r['arm']}: gain in {r['model_a']} − gain in {r['model_b']}", r["tests"]) for r in a["gain_differences"] if r["confounds"] == []]
    out.append(("Gain in one model minus gain in the other (each against its own baseline)", matrix(diffs, _metrics([t for _, t in diffs]), "arm")))
    pairs = [(f"{m}: {r['a']} ({r['method_a']}) − {r['b']} ({r['method_b']})", r["tests"]) for m, rows in a["methods"].items() for r in rows if r["matched"]]
    out.append(("Matched pairs of methods (every metric)", matrix(pairs, _metrics([t for _, t in pairs]), "matched pair")))
    cost_rows = [[m, arm, tflop_text(c), device_text(c)] for m, arms in a["costs"].items() for arm, c in arms.items()]
    out.append(("Costs: counted work and measured device time (context)", table(["model", "dataset", "counted work", "device time per image"], cost_rows, ["l", "l", "r", "r"])))
    unmatched = [f"{r['arm']} in {r['model_a']} and {r['model_b']}: {confound_text(r['confounds'])}" for r in a["model_differences"] if r["confounds"] != []]
    methods = [f"{m}: {r['a']} ({r['method_a']}) − {r['b']} ({r['method_b']}): {confound_text(r['confounds'])}: no method verdict" for m, rows in a["methods"].items() for r in rows if not r["matched"]]
    extra = [("Not compared across models (settings differ)", unmatched), ("Pairs of different methods not compared (other settings differ)", methods)]
    return [{"title": t, "table": tb, "lines": []} for t, tb in out if tb] + [{"title": t, "table": None, "lines": ls} for t, ls in extra if ls]


def gate_text(meta: Mapping) -> str:
    g = meta.get("gate_images") or {}
    if not g.get("n"):
        return ""
    return f"Every test includes the {g['n']} image(s) the quality gate ran first (the gate judged only each loss's own objective on them)."


def study_context(analysis: Mapping, figures: Mapping | None = None, own_reports: str = "") -> dict:
    meta = analysis["metadata"]
    return {
        "alpha": meta["alpha"], "uncalibrated": [metric_label(m, False) for m in meta.get("uncalibrated", [])], "not_judged": NOT_JUDGED,
        "synthetic": [m for m, d in meta["models"].items() if d.get("synthetic")], "models": models_table(analysis),
        "verdicts": verdicts_context(analysis), "own_reports": own_reports,
        "quality": quality_table(analysis), "model_lines": model_lines(analysis),
        "sweeps": sweep_context(analysis), "methods": method_context(analysis), "appendix": appendix_context(analysis),
        "gate": gate_text(meta), "figures": dict(figures or {}), "marks": MARKS,
    }


def render_study(analysis: Mapping, figures: Mapping | None = None, own_reports: str = "") -> str:
    """The study report below its title and banner, as Markdown (``figures``:
    study_figures.study_figures's paths; ``own_reports``: the line linking each model's report)."""
    return render_template(TEMPLATE, study_context(analysis, figures, own_reports))
