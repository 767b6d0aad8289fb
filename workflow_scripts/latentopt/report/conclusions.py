"""Every decision rule of the report: the success-criteria table and the recommendations.

Nothing here computes a statistic: verdicts come from ``statistical_analysis.json``
(analysis.criteria.success_criteria), tests and intervals from its ``tests``/``fid_differences``, costs
from ``performance_summary.json``. What is decided here is which of those numbers a sentence
rests on:

* the evidence metric of a recommendation is a held-out metric (one that no loss arm optimized)
  where the purpose has one; otherwise the purpose's metric, marked as the own objective of the
  arms that optimized it;
* when the purpose's objective metric and the held-out metric name different best losses, the
  sentence says so first;
* "use X" only when X beats the baseline on the evidence metric with Holm-corrected Wilcoxon
  p < alpha (FID: the paired-bootstrap CI of the difference excludes 0); when the test family
  cannot reach alpha at this n the sentence says "n too small";
* a cost ranking only when analysis.performance.cost_comparisons claims it (difference beyond the
  batch-to-batch noise).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from latentopt.workflow.metric_specs import HIGHER_IS_BETTER
from latentopt.workflow.layout import BASELINE
from latentopt.analysis.statistics import MIN_N_INTERVAL
from latentopt.report.formatting import _finite, fmt, fmt_p, fmt_p_boot, interval, metric_label, table
from latentopt.report.inputs import _get, _pair_row, oriented

# What the recommendations are about: (purpose, candidate metrics); the first present candidate
# is the purpose's objective metric, the first one no arm optimized is its held-out metric.
PURPOSES = (
    ("pixel fidelity", ("psnr", "mae")),
    ("structural similarity", ("ssim",)),
    ("perceptual quality", ("lpips_alex", "lpips_vgg")),
    ("distribution-level fidelity", ("fid",)),
)
CRITERIA = (
    ("success_rate", "success rate", lambda t: f"≥ {100 * t:.1f} %"),
    ("fid_improvement", "FID improvement vs baseline", lambda t: f"CI ≥ {100 * t:.1f} %"),
    ("significance", "significantly better than baseline on a metric it did not optimize", lambda t: f"Holm p < {t}"),
    ("time_budget", "projected full-plan time (h)", lambda t: f"CI ≤ {t}"),
)
VERDICT_TEXT = {"pass": "PASS", "fail": "**FAIL**", "not shown": "not shown", "n too small": "n too small"}


def _pct(v) -> str:
    return f"{100 * v:+.1f} %" if _finite(v) else "n/a"


def _criterion_cell(key: str, e: Mapping) -> str:
    v = VERDICT_TEXT.get(e.get("verdict"), "PASS" if e.get("pass") else "**FAIL**")
    if key == "success_rate":
        return f"{v}: {100 * e['value']:.1f} % of {e.get('n', 'n/a')}"
    if key == "fid_improvement":
        ci = f" [{_pct(e.get('ci95_low'))}, {_pct(e.get('ci95_high'))}]" if _finite(e.get("ci95_low")) else ""
        p = fmt_p_boot(e.get("p_boot"), e.get("n_boot"))
        return f"{v}: {_pct(e.get('value'))}{ci} (n = {e.get('n')}, bootstrap p {p if p.startswith('<') else '= ' + p})"
    if key == "significance":
        text = f"{v}: {', '.join(metric_label(m, False) for m in e.get('value') or []) or 'none'}"
        if e.get("own_objective_better"):
            text += f"; own objective only: {', '.join(metric_label(m, False) for m in e['own_objective_better'])}"
        text += f"; significantly worse on: {', '.join(metric_label(m, False) for m in e.get('deteriorations') or []) or 'none'}"
        nonzero = f", fewest nonzero differences {e['n_nonzero']}" if e.get("n_nonzero") is not None and e["n_nonzero"] != e.get("n") else ""
        return text + f" (n = {e.get('n')}{nonzero}, Holm over {e.get('m_tests')} metrics, smallest attainable p = {fmt_p(e.get('p_holm_min'))})"
    if key == "time_budget":
        if not _finite(e.get("value")):
            return f"{v}: {e.get('basis', 'n/a')}"
        if e.get("verdict") == "n too small":
            return f"{v} ({e.get('n_batches')} batches < {MIN_N_INTERVAL}; projection to {e.get('full_plan_images')} images not quoted)"
        ci = f" [{e['ci95_low']:.3g}, {e['ci95_high']:.3g}]" if _finite(e.get("ci95_low")) else ""
        return f"{v}: {e['value']:.3g}{ci} ({e.get('n_batches')} batches, {e.get('full_plan_images')} images)"
    return v


def success_table(stats: Mapping) -> dict | None:
    """One row per loss arm, one column per criterion: verdict (PASS / FAIL / not shown /
    n too small), the measured value with its uncertainty and n; 'all' is PASS only when every
    criterion is PASS."""
    crit = stats.get("success_criteria") or {}
    if not crit:
        return None
    first = next(iter(crit.values()))
    rows = []
    for arm, entry in crit.items():
        row = [arm]
        for key, _, _ in CRITERIA:
            e = entry.get(key)
            row.append("not evaluated" if e is None else _criterion_cell(key, e))
        row.append("PASS" if all_pass(entry) else "not met")
        rows.append(row)
    header = ["loss"] + [f"{label} ({thr(first[key]['threshold'])})" if first.get(key) else label for key, label, thr in CRITERIA] + ["all"]
    return table(header, rows, ["l"] * (len(CRITERIA) + 2))


def all_pass(entry: Mapping) -> bool:
    return all(v.get("pass") is True for v in entry.values() if isinstance(v, Mapping))


def criteria_rules(stats: Mapping) -> list[str]:
    """The decision rule of each criterion, and the time budget's projection basis per arm."""
    crit = stats.get("success_criteria") or {}
    if not crit:
        return []
    first = next(iter(crit.values()))
    out = [f"{label}: {first[key]['rule']}" for key, label, _ in CRITERIA if first.get(key, {}).get("rule")]
    for arm, e in crit.items():
        if e.get("time_budget", {}).get("basis"):
            out.append(f"time budget basis, {arm}: {e['time_budget']['basis']}")
    return out


# ---------------------------------------------------------------------------------------------
# recommendations


def _evidence_metric(candidates: Sequence[str], present: Sequence[str], optimized: Mapping[str, set]) -> tuple[str | None, str | None]:
    """(objective metric, evidence metric) of a purpose: the first present candidate, and the
    first present candidate that no arm optimized (else the objective metric itself)."""
    avail = [m for m in candidates if m in present]
    if not avail:
        return None, None
    objective = avail[0]
    taken = set().union(*optimized.values()) if optimized else set()
    held = next((m for m in avail if m not in taken), None)
    return objective, held or objective


def _ranking(cross: Mapping, arms: Sequence[str], metric: str) -> list[str]:
    key = "fid" if metric == "fid" else "mean"
    finite = {a: v for a in arms if _finite(v := _get(cross["datasets"], a, "all", metric, key))}
    return sorted(finite, key=lambda a: finite[a], reverse=HIGHER_IS_BETTER[metric])


def _own_text(metric: str, optimized: Mapping[str, set]) -> str:
    owners = sorted(a for a, ms in optimized.items() if metric in ms)
    label = metric_label(metric, False)
    if owners:
        return f"{label}, own objective of {', '.join(owners)} (not independent evidence for {'it' if len(owners) == 1 else 'them'})"
    return f"{label}, held out (no loss optimized it)"


def recommendations(cross: Mapping, stats: Mapping, perf: Mapping, datasets: Sequence[str], optimized: Mapping[str, set], alpha: float) -> list[str]:
    """One sentence per purpose, decided on the evidence metric (see the module docstring), then
    the cost line and the success-criteria line."""
    arms = [d for d in datasets if d != BASELINE]
    present = list(cross.get("metrics", []))
    tests = stats.get("tests") or {}
    out = []
    for purpose, candidates in PURPOSES:
        objective, evidence = _evidence_metric(candidates, present, optimized)
        if evidence is None:
            continue
        ranked = _ranking(cross, arms, evidence)
        label = metric_label(evidence, False)
        if not ranked:
            out.append(f"For {purpose} ({label}): no loss arm has a value; nothing to recommend.")
            continue
        best = ranked[0]
        lead = ""
        if objective != evidence:
            ranked_obj = _ranking(cross, arms, objective)
            if ranked_obj and ranked_obj[0] != best:
                lead = (f"For {purpose}, the objective metric {_own_text(objective, optimized)} and the held-out {label} disagree: "
                        f"{ranked_obj[0]} is best on {metric_label(objective, False)}, {best} on {label}; the decision follows {label}. Decision: ")
        out.append(lead + _decision(purpose, best, evidence, ranked, stats, tests, optimized, alpha, objective, bool(lead)))
    out.extend(_cost_lines(perf, arms))
    crit = stats.get("success_criteria") or {}
    if crit:
        passing = [a for a, e in crit.items() if all_pass(e)]
        unmet = {a: [f"{k} ({e[k].get('verdict', 'fail')})" for k in e if isinstance(e[k], Mapping) and e[k].get("pass") is not True] for a, e in crit.items()}
        unmet = {a: f for a, f in unmet.items() if f}
        line = f"Losses meeting every success criterion (each judged with its uncertainty, see Success criteria): {', '.join(passing) if passing else 'none'}"
        if unmet:
            line += "; not met: " + "; ".join(f"{a}: {', '.join(f)}" for a, f in unmet.items())
        out.append(line + ".")
    return out


def _decision(purpose: str, best: str, metric: str, ranked: Sequence[str], stats: Mapping, tests: Mapping, optimized: Mapping[str, set], alpha: float, objective: str, disagreed: bool) -> str:
    label = metric_label(metric, False)
    unit = " dB" if metric == "psnr" else ""
    cmp = _vs_baseline(stats, tests, best, metric, alpha)
    head = "" if disagreed else f"For {purpose}, "
    evidence = f"evidence metric: {_own_text(metric, optimized)}"
    if cmp is None:
        text = f"{head}no paired comparison with the baseline is available for **{best}**, the best loss on {label} (too few images succeeded in every dataset); {evidence}"
    else:
        numbers = f"{fmt(cmp['diff'], metric, True)}{unit} vs. baseline (95% CI {cmp['ci'] or 'n/a'}, {cmp['p_text']}, n = {cmp['n']})"
        if cmp["too_small"]:
            text = f"{head}n is too small to show whether a loss beats the baseline on {label}: the best loss, **{best}**, is {numbers}; {cmp['why_small']}; {evidence}"
        elif cmp["better"] and cmp["significant"]:
            text = f"{head}use **{best}**: best {label} among the losses, {numbers}; {evidence}"
        elif cmp["better"]:
            text = f"{head}no loss is shown to beat the baseline on {label}: the best loss, **{best}**, is {numbers}, not significant at α = {alpha}; {evidence}"
        else:
            text = f"{head}keep the **baseline**: no loss improves {label}; the best loss, {best}, is {numbers}; {evidence}"
    if len(ranked) > 1 and metric != "fid":
        row2 = _pair_row(_get(tests, metric, "all", default=[]), best, ranked[1])
        if row2 and _finite(row2.get("ci95_low")):
            d, lo, hi = oriented(row2, best)
            p = row2.get("p_wilcoxon_holm")
            reach = _finite(row2.get("p_wilcoxon_holm_min")) and row2["p_wilcoxon_holm_min"] < alpha
            text += f"; vs. the runner-up {ranked[1]}: {fmt(d, metric, True)}{unit} {interval(lo, hi, metric, True)}, Holm p = {fmt_p(p)}"
            if not reach:
                text += " (n too small for the test to reach α)"
            elif not (_finite(p) and p < alpha):
                text += " (not significant)"
    if metric == "fid":
        flagged = sorted(a for a, r in (_get(stats, "fid_kid_agreement", default={}) or {}).items() if not r.get("agree", True))
        if flagged:
            text += f"; FID and paired KID disagree in direction vs the baseline for {', '.join(flagged)}"
    if objective != metric and not disagreed:
        text += f"; {metric_label(objective, False)}, the objective metric, names the same best loss"
    return text + "."


def _vs_baseline(stats: Mapping, tests: Mapping, arm: str, metric: str, alpha: float) -> dict | None:
    """Difference arm − baseline with its CI, p text, n, whether it is an improvement, whether
    it is significant, and whether n is too small for the test to reach alpha."""
    if metric == "fid":
        row = _pair_row(_get(stats, "fid_differences", "all", default=[]), arm, BASELINE)
        if row is None:
            return None
        d, lo, hi = oriented(row, arm, "diff")
        p = row.get("p_boot")
        p_text = "bootstrap p " + (t if (t := fmt_p_boot(p, row.get("n_boot"))).startswith("<") else f"= {t}")
        too_small = bool(row.get("n_too_small"))
        why = "the FID bootstrap needs more images" if too_small else ""
        significant = _finite(lo) and _finite(hi) and (lo > 0 or hi < 0)
    else:
        row = _pair_row(_get(tests, metric, "all", default=[]), arm, BASELINE)
        if row is None:
            return None
        d, lo, hi = oriented(row, arm)
        p = row.get("p_wilcoxon_holm")
        floor = row.get("p_wilcoxon_holm_min")
        p_text = f"Holm p = {fmt_p(p)} over {row.get('m_tests', '?')} pairs"
        too_small = _finite(floor) and floor >= alpha
        why = f"the smallest p {row.get('m_tests', '?')} Holm-corrected Wilcoxon tests can reach at n = {row.get('n')} is {fmt_p(floor)} ≥ α = {alpha}" if too_small else ""
        significant = _finite(p) and p < alpha
    better = _finite(d) and (d > 0 if HIGHER_IS_BETTER[metric] else d < 0)
    return {"diff": d, "ci": interval(lo, hi, metric, True), "p_text": p_text, "n": row.get("n"), "better": better, "significant": bool(significant), "too_small": bool(too_small), "why_small": why}


def _cost_lines(perf: Mapping, arms: Sequence[str]) -> list[str]:
    """The cost sentence: a ranking only for the pairs whose difference in compute per image
    exceeds the measured batch-to-batch noise (analysis.performance.cost_comparisons)."""
    costs = {a: _get(perf, "datasets", a, "batch_costs") for a in arms}
    costs = {a: c for a, c in costs.items() if c and _finite(_get(c, "compute_per_image_s", "mean"))}
    if not costs:
        return ["Cost: no batch times were recorded, so no cost comparison is made."]
    comps = [c for c in (perf.get("cost_comparisons") or []) if c["a"] in costs and c["b"] in costs]
    claimed = [c for c in comps if c.get("claimed")]
    clock = ", ".join(sorted({k for c in costs.values() for k in c.get("clock") or []}))
    order = sorted(costs, key=lambda a: costs[a]["compute_per_image_s"]["mean"])
    means = ", ".join(f"{a} {costs[a]['compute_per_image_s']['mean']:.3g} s ({costs[a]['n_batches']} batches)" if costs[a]["n_batches"] >= MIN_N_INTERVAL else f"{a} n too small ({costs[a]['n_batches']} batches)" for a in order)
    line = f"Cost (compute per image on the device clock, {clock}; the batch is the unit): {means}"
    if not claimed:
        return [line + ". No cost ranking is claimed: no difference exceeds the batch-to-batch noise with a 95 % Welch interval excluding 0 (needs ≥ 5 batches per loss)."]
    parts = []
    for c in claimed:
        cheap, dear = (c["a"], c["b"]) if c["mean_diff"] < 0 else (c["b"], c["a"])
        parts.append(f"{cheap} is cheaper than {dear} by {abs(c['mean_diff']):.3g} s/image (95% CI {abs(c['ci95_high'] if c['mean_diff'] < 0 else c['ci95_low']):.3g}–{abs(c['ci95_low'] if c['mean_diff'] < 0 else c['ci95_high']):.3g}; noise CV {100 * c['noise_cv']:.0f} %)")
    unclaimed = [f"{c['a']} vs {c['b']}" for c in comps if not c.get("claimed")]
    line += ". " + "; ".join(parts)
    if unclaimed:
        line += f"; not distinguishable from noise: {', '.join(unclaimed)}"
    return [line + "."]
