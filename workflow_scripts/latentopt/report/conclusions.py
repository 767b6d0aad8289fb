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
* a cost ranking only when analysis.performance.cost_comparisons claims it, on counted work (arms
  with identical counted work are never ranked); measured time is quoted beside it only where it
  clears the batch-to-batch noise and agrees with counted work.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from latentopt.workflow.metric_specs import HIGHER_IS_BETTER
from latentopt.workflow.layout import BASELINE
from latentopt.workflow.objectives import NOT_JUDGED, with_relatives
from latentopt.analysis.statistics import holm, MIN_N_INTERVAL, n_too_small
from latentopt.core.numbers import is_finite
from latentopt.report.formatting import FAMILY_MARK, fmt, fmt_p, fmt_p_boot, interval, metric_label, pct, pct_interval, table
from latentopt.report.inputs import _get, _pair_row, oriented

# What the recommendations are about: (purpose, candidate metrics); the first present candidate
# is the purpose's objective metric, the first one no arm optimized is its held-out metric.
PURPOSES = (
    ("pixel fidelity", ("psnr", "mae")),
    ("structural similarity", ("ssim", "gmsd")),
    ("colour fidelity", ("delta_e00",)),
    ("perceptual quality", ("lpips_alex", "lpips_vgg")),
    ("distribution-level fidelity", ("fid",)),
)
CRITERIA = (
    ("success_rate", "success rate", lambda t: f"≥ {100 * t:.1f} %"),
    ("fid_improvement", "FID improvement vs baseline", lambda t: f"CI ≥ {100 * t:.1f} %"),
    ("significance", "significantly better than baseline on a metric it did not optimize", lambda t: f"Holm p < {t}"),
    ("time_budget", "projected full-plan time (h)", lambda t: f"CI ≤ {t}"),
)
VERDICT_TEXT = {"pass": "PASS", "fail": "**FAIL**", "not shown": "not shown", "n too small": "n too small", "not judged": NOT_JUDGED}
# The network each criterion rests on (a criterion on an uncalibrated network is not judged).
CRITERION_METRICS = {"fid_improvement": ("fid",)}
_pct = pct


def not_judged(key: str, e: Mapping, uncalibrated) -> bool:
    """Whether criterion ``key`` rests on an uncalibrated network (or the JSON says so)."""
    return e.get("verdict") == "not judged" or any(m in uncalibrated for m in CRITERION_METRICS.get(key, ()))


def _with_matrix(metric: str, e: Mapping, tests: Mapping | None, arm: str | None) -> str:
    """A metric the significance criterion found significant, with FAMILY_MARK and the
    significance matrix's p where that family (the dataset pairs of the metric) does not."""

    label = metric_label(metric, False)
    row = _pair_row(_get(tests, metric, "all", default=[]), arm, BASELINE) if arm else None
    p = row.get("p_wilcoxon_holm") if row else None
    if row is None or (is_finite(p) and p < e.get("threshold", 0.05)):
        return label
    return f"{label} {FAMILY_MARK} (significance matrix, Holm over the dataset pairs of {label}: p={fmt_p(p)}, not significant)"


def _criterion_cell(key: str, e: Mapping, uncalibrated=frozenset(), tests: Mapping | None = None, arm: str | None = None) -> str:
    v = VERDICT_TEXT.get(e.get("verdict"), "PASS" if e.get("pass") else "**FAIL**")
    if not_judged(key, e, uncalibrated):
        v = NOT_JUDGED
    if key == "success_rate":
        return f"{v}: {100 * e['value']:.1f} % of {e.get('n', 'n/a')}"
    if key == "fid_improvement":
        ci = f" {pct_interval(e.get('ci95_low'), e.get('ci95_high'))}" if is_finite(e.get("ci95_low")) else ""
        p = fmt_p_boot(e.get("p_boot"), e.get("n_boot"))
        listed = " (value listed only)" if v == NOT_JUDGED else ""
        return f"{v}{listed}: {_pct(e.get('value'))}{ci} (n = {e.get('n')}, bootstrap p {p if p.startswith('<') else '= ' + p})"
    if key == "significance":
        text = f"{v}: {', '.join(_with_matrix(m, e, tests, arm) for m in e.get('value') or []) or 'none'}"
        # an own objective from an uncalibrated network is no statement the report may make
        own = [m for m in e.get("own_objective_better") or [] if m not in uncalibrated and m not in (e.get("not_judged") or [])]
        if own:
            # "own" = the objective or a declared relative of it (MAE ~ MSE ~ PSNR): never counted
            text += f"; own objective or its relative only (not counted): {', '.join(metric_label(m, False) for m in own)}"
        text += f"; significantly worse on: {', '.join(metric_label(m, False) for m in e.get('deteriorations') or []) or 'none'}"
        nonzero = f", fewest nonzero differences {e['n_nonzero']}" if e.get("n_nonzero") is not None and e["n_nonzero"] != e.get("n") else ""
        return text + f" (n = {e.get('n')}{nonzero}, Holm over {e.get('m_tests')} metrics, smallest attainable p = {fmt_p(e.get('p_holm_min'))})"
    if key == "time_budget":
        if not is_finite(e.get("value")):
            return f"{v}: {e.get('basis', 'n/a')}"
        if e.get("verdict") == "n too small":
            return f"{v} ({e.get('n_batches')} batches < {MIN_N_INTERVAL}; projection to {e.get('full_plan_images')} images not quoted)"
        ci = f" [{e['ci95_low']:.3g}, {e['ci95_high']:.3g}]" if is_finite(e.get("ci95_low")) else ""
        pixels = f" x {e['pixel_scale']:.3g} for pixels" if is_finite(e.get("pixel_scale")) and e["pixel_scale"] != 1 else ""
        return f"{v}: {e['value']:.3g}{ci} ({e.get('n_batches')} batches, {e.get('full_plan_images')} images{pixels})"
    return v


def success_table(stats: Mapping, uncalibrated=frozenset(), order: Sequence[str] | None = None) -> dict | None:
    """One row per loss arm, one column per criterion: verdict (PASS / FAIL / not shown /
    n too small / not judged: uncalibrated network), the measured value with its uncertainty and
    n; 'all' is PASS only when every criterion is PASS, "not judged" when none failed but one
    rests on an uncalibrated network."""
    crit = stats.get("success_criteria") or {}
    if not crit:
        return None
    first = next(iter(crit.values()))
    rows = []
    for arm in _ordered(crit, order):
        entry = crit[arm]
        row = [arm]
        for key, _, _ in CRITERIA:
            e = entry.get(key)
            row.append("not evaluated" if e is None else _criterion_cell(key, e, uncalibrated, stats.get("tests"), arm))
        row.append(overall(entry, uncalibrated))
        rows.append(row)
    header = ["loss"] + [f"{label} ({thr(first[key]['threshold'])})" if first.get(key) else label for key, label, thr in CRITERIA] + ["all"]
    return table(header, rows, ["l"] * (len(CRITERIA) + 2))


def _ordered(names, order: Sequence[str] | None) -> list[str]:
    """``names`` in the report's arm order (report.arms.arm_order), unknown names last."""
    names = list(names)
    if not order:
        return names
    return [a for a in order if a in names] + [a for a in names if a not in order]


def overall(entry: Mapping, uncalibrated=frozenset()) -> str:
    """'PASS' when every criterion is PASS; 'not judged' when every judged criterion is PASS but
    one rests on an uncalibrated network; 'not met' otherwise."""
    judged = {k: v for k, v in entry.items() if isinstance(v, Mapping) and not not_judged(k, v, uncalibrated)}
    if all(v.get("pass") is True for v in judged.values()):
        return "PASS" if len(judged) == sum(isinstance(v, Mapping) for v in entry.values()) else "not judged"
    return "not met"


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
    first present candidate that is held out for every arm, i.e. neither an arm's objective nor
    a declared relative of one (objectives.RELATED_METRICS; else the objective metric itself)."""
    avail = [m for m in candidates if m in present]
    if not avail:
        return None, None
    objective = avail[0]
    taken = set().union(*(with_relatives(ms) for ms in optimized.values())) if optimized else set()
    held = next((m for m in avail if m not in taken), None)
    return objective, held or objective


def _value(cross: Mapping, arm: str, metric: str):
    return _get(cross["datasets"], arm, "all", metric, "fid" if metric == "fid" else "mean")


def _ranking(cross: Mapping, arms: Sequence[str], metric: str) -> list[str]:
    finite = {a: v for a in arms if is_finite(v := _value(cross, a, metric))}
    return sorted(finite, key=lambda a: finite[a], reverse=HIGHER_IS_BETTER[metric])


def _own_text(metric: str, optimized: Mapping[str, set]) -> str:
    owners = sorted(a for a, ms in optimized.items() if metric in ms)
    relatives = sorted(a for a, ms in optimized.items() if metric not in ms and metric in with_relatives(ms))
    label = metric_label(metric, False)
    parts = []
    if owners:
        parts.append(f"own objective of {', '.join(owners)}")
    if relatives:
        parts.append(f"a monotone or near-monotone relative of the objective of {', '.join(relatives)}")
    if parts:
        who = owners + relatives
        return f"{label}, {' and '.join(parts)} (not independent evidence for {'it' if len(who) == 1 else 'them'})"
    return f"{label}, held out (no loss optimized it)"


def recommendations(cross: Mapping, stats: Mapping, perf: Mapping, datasets: Sequence[str], optimized: Mapping[str, set], alpha: float, *, uncalibrated=frozenset(), gate_images: str | None = None) -> list[str]:
    """One sentence per purpose, decided on the evidence metric (see the module docstring), then
    the cost line, the success-criteria line and what images the evidence pools. A purpose whose
    evidence metric comes from an uncalibrated network is not judged. ``gate_images``: the images
    the gate really ran (report.gate.gate_images_phrase), e.g. "the first 2 images"."""
    arms = [d for d in datasets if d != BASELINE]
    present = list(cross.get("metrics", []))
    tests = stats.get("tests") or {}
    out = []
    for purpose, candidates in PURPOSES:
        objective, evidence = _evidence_metric(candidates, present, optimized)
        if evidence is None:
            continue
        label = metric_label(evidence, False)
        if evidence in uncalibrated:
            out.append(f"For {purpose} ({label}): {NOT_JUDGED} ({label} comes from a randomly initialised network; its values are listed, labelled, in the tables but no loss is named best on it).")
            continue
        ranked = _ranking(cross, arms, evidence)
        if not ranked:
            out.append(f"For {purpose} ({label}): no loss arm has a value; nothing to recommend.")
            continue
        best = ranked[0]
        lead = ""
        if objective != evidence and objective not in uncalibrated:
            ranked_obj = _ranking(cross, arms, objective)
            if ranked_obj and ranked_obj[0] != best and fmt(_value(cross, ranked_obj[0], objective), objective) != fmt(_value(cross, best, objective), objective):
                lead = (f"For {purpose}, the objective metric {_own_text(objective, optimized)} and the held-out {label} disagree: "
                        f"{ranked_obj[0]} is best on {metric_label(objective, False)}, {best} on {label}; the decision follows {label}. Decision: ")
        out.append(lead + _decision(purpose, best, evidence, ranked, cross, stats, tests, optimized, alpha, objective if objective not in uncalibrated else evidence, bool(lead)))
    out.extend(_cost_lines(perf, arms))
    crit = stats.get("success_criteria") or {}
    if crit:
        passing = [a for a in _ordered(crit, arms) if overall(crit[a], uncalibrated) == "PASS"]
        # a criterion on an uncalibrated network is neither met nor "not met": it is listed apart,
        # as the success table's "all" column says "not judged" (never "not met") for such a loss
        entries = [(a, crit[a]) for a in _ordered(crit, arms)]
        unmet = {a: [f"{k} ({e[k].get('verdict', 'fail')})" for k in e if isinstance(e[k], Mapping) and e[k].get("pass") is not True and not not_judged(k, e[k], uncalibrated)] for a, e in entries}
        unmet = {a: f for a, f in unmet.items() if f}
        unjudged = {a: [k for k in e if isinstance(e[k], Mapping) and not_judged(k, e[k], uncalibrated)] for a, e in entries}
        unjudged = {a: f for a, f in unjudged.items() if f}
        line = f"Losses meeting every success criterion (each judged with its uncertainty, see Success criteria): {', '.join(passing) if passing else 'none'}"
        if unmet:
            line += "; not met: " + "; ".join(f"{a}: {', '.join(f)}" for a, f in unmet.items())
        if unjudged:
            line += f"; {NOT_JUDGED} (neither met nor failed): " + "; ".join(f"{a}: {', '.join(f)}" for a, f in unjudged.items())
        out.append(line + ".")
    if gate_images:
        out.append(f"Evidence pool: every test above uses all images that succeeded in every dataset, INCLUDING {gate_images} of each loss, which the quality gate ran first (the gate judged only each loss's own objective on them; they are otherwise ordinary images of the plan).")
    return out


def _fid_holm(stats: Mapping) -> dict[frozenset, float]:
    """Holm-corrected bootstrap p of every paired FID difference (the family: all pairs). A
    bootstrap p of 0 (below its resolution) enters as its bound 1/n_boot, so the corrected value
    is an upper bound then (printed "≤", see _fid_p_text)."""
    rows = [r for r in (_get(stats, "fid_differences", "all", default=[]) or []) if is_finite(r.get("p_boot"))]
    ps = [max(float(r["p_boot"]), 1.0 / r["n_boot"]) if is_finite(r.get("n_boot")) and r["n_boot"] else float(r["p_boot"]) for r in rows]
    return {frozenset((r["a"], r["b"])): float(p) for r, p in zip(rows, holm(ps))}


def _fid_p_text(stats: Mapping, a: str, b: str) -> str:
    row = _pair_row(_get(stats, "fid_differences", "all", default=[]), a, b) or {}
    p = _fid_holm(stats).get(frozenset((a, b)))
    bound = "≤ " if row.get("p_boot") == 0 else "= "
    return f"bootstrap p Holm-corrected over the FID pairs {bound}{fmt_p(p)}"


def _decision(purpose: str, best: str, metric: str, ranked: Sequence[str], cross: Mapping, stats: Mapping, tests: Mapping, optimized: Mapping[str, set], alpha: float, objective: str, disagreed: bool) -> str:
    label = metric_label(metric, False)
    unit = " dB" if metric == "psnr" else ""
    cmp = _vs_baseline(stats, tests, best, metric, alpha)
    head = "" if disagreed else f"For {purpose}, "
    evidence = f"evidence metric: {_own_text(metric, optimized)}"
    shown = fmt(_value(cross, best, metric), metric)
    tied = [a for a in ranked[1:] if fmt(_value(cross, a, metric), metric) == shown]
    best_text = f"best {label} among the losses" + (f" (tied at the printed precision, {shown}, with {', '.join(tied)})" if tied else "")
    if cmp is None:
        text = f"{head}no paired comparison with the baseline is available for **{best}**, the {best_text} (too few images succeeded in every dataset); {evidence}"
    else:
        numbers = f"{fmt(cmp['diff'], metric, True)}{unit} vs. baseline (95% CI {cmp['ci'] or 'n/a'}, {cmp['p_text']}, n = {cmp['n']})"
        if cmp["too_small"]:
            text = f"{head}n is too small to show whether a loss beats the baseline on {label}: the {best_text}, **{best}**, is {numbers}; {cmp['why_small']}; {evidence}"
        elif cmp["better"] and cmp["significant"]:
            text = f"{head}use **{best}**: {best_text}, {numbers}; {evidence}"
        elif cmp["better"]:
            text = f"{head}no loss is shown to beat the baseline on {label}: the {best_text}, **{best}**, is {numbers}, not significant at α = {alpha}; {evidence}"
        else:
            text = f"{head}keep the **baseline**: no loss improves {label}; the {best_text}, {best}, is {numbers}; {evidence}"
    if len(ranked) > 1 and metric != "fid":
        row2 = _pair_row(_get(tests, metric, "all", default=[]), best, ranked[1])
        if row2 and is_finite(row2.get("ci95_low")):
            d, lo, hi = oriented(row2, best)
            p = row2.get("p_wilcoxon_holm")
            reach = is_finite(row2.get("p_wilcoxon_holm_min")) and row2["p_wilcoxon_holm_min"] < alpha
            text += f"; vs. the runner-up {ranked[1]}{_worse_than_baseline(stats, tests, ranked[1], metric, alpha)}: {fmt(d, metric, True)}{unit} {interval(lo, hi, metric, True)}, Holm p = {fmt_p(p)}"
            if not reach:
                text += " (n too small for the test to reach α)"
            elif not (is_finite(p) and p < alpha):
                text += " (not significant)"
    elif len(ranked) > 1:
        row2 = _pair_row(_get(stats, "fid_differences", "all", default=[]), best, ranked[1])
        if row2 and is_finite(row2.get("ci95_low")):
            d, lo, hi = oriented(row2, best, "diff")
            p = _fid_holm(stats).get(frozenset((best, ranked[1])))
            text += f"; vs. the runner-up {ranked[1]}{_worse_than_baseline(stats, tests, ranked[1], metric, alpha)}: {fmt(d, metric, True)} {interval(lo, hi, metric, True)}, {_fid_p_text(stats, best, ranked[1])}"
            if not (is_finite(p) and p < alpha):
                text += " (not significant)"
        elif row2 and row2.get("n_too_small"):
            text += f"; vs. the runner-up {ranked[1]}: n too small for the FID bootstrap"
    if metric == "fid":
        flagged = sorted(a for a, r in (_get(stats, "fid_kid_agreement", default={}) or {}).items() if _disagree_shown(r))
        if flagged:
            text += f"; FID and paired KID disagree in direction vs the baseline for {', '.join(flagged)}"
    if objective != metric and not disagreed:
        text += f"; {metric_label(objective, False)}, the objective metric, names the same best loss"
    return text + "."


def _worse_than_baseline(stats: Mapping, tests: Mapping, arm: str, metric: str, alpha: float) -> str:
    """" (itself worse than the baseline: Δ [CI], p)" for a runner-up whose mean is worse than the
    baseline's, else "": a runner-up is the second-best loss, not a second option to use."""
    cmp = _vs_baseline(stats, tests, arm, metric, alpha)
    if cmp is None or cmp["better"] or not is_finite(cmp["diff"]) or float(fmt(cmp["diff"], metric, True)) == 0:
        return ""
    unit = " dB" if metric == "psnr" else ""
    shown = "significantly " if cmp["significant"] else ""
    return f" (itself {shown}worse than the baseline: {fmt(cmp['diff'], metric, True)}{unit} {cmp['ci'] or ''}, {cmp['p_text']})"


def _disagree_shown(r: Mapping) -> bool:
    """FID and paired KID disagree in direction AND both differences print as nonzero (a
    difference that prints as 0 is no direction)."""
    if r.get("agree", True):
        return False
    return all(is_finite(r.get(k)) and float(fmt(r[k], m, True)) != 0 for k, m in (("fid_diff", "fid"), ("kid_diff", "kid")))


def _vs_baseline(stats: Mapping, tests: Mapping, arm: str, metric: str, alpha: float) -> dict | None:
    """Difference arm − baseline with its CI, p text, n, whether it is an improvement, whether
    it is significant, and whether n is too small for the test to reach alpha."""
    if metric == "fid":
        row = _pair_row(_get(stats, "fid_differences", "all", default=[]), arm, BASELINE)
        if row is None:
            return None
        d, lo, hi = oriented(row, arm, "diff")
        p = _fid_holm(stats).get(frozenset((arm, BASELINE)))
        p_text = _fid_p_text(stats, arm, BASELINE)
        m = len(_fid_holm(stats)) or 1
        floor = m / row["n_boot"] if is_finite(row.get("n_boot")) and row["n_boot"] else None
        too_small = bool(row.get("n_too_small")) or (floor is not None and floor >= alpha)
        why = "the FID bootstrap needs more images" if row.get("n_too_small") else (f"with {row.get('n_boot')} bootstrap replicates and Holm over {m} FID pairs the smallest attainable p is {fmt_p(min(1.0, floor))} ≥ α = {alpha}" if too_small else "")
        significant = is_finite(lo) and is_finite(hi) and (lo > 0 or hi < 0) and is_finite(p) and p < alpha
    else:
        row = _pair_row(_get(tests, metric, "all", default=[]), arm, BASELINE)
        if row is None:
            return None
        d, lo, hi = oriented(row, arm)
        p = row.get("p_wilcoxon_holm")
        floor = row.get("p_wilcoxon_holm_min")
        p_text = f"Holm p = {fmt_p(p)} over {row.get('m_tests', '?')} pairs"
        too_small = is_finite(floor) and floor >= alpha
        why = f"the smallest p {row.get('m_tests', '?')} Holm-corrected Wilcoxon tests can reach at n = {row.get('n')} is {fmt_p(floor)} ≥ α = {alpha}" if too_small else ""
        significant = is_finite(p) and p < alpha
    better = is_finite(d) and (d > 0 if HIGHER_IS_BETTER[metric] else d < 0)
    return {"diff": d, "ci": interval(lo, hi, metric, True), "p_text": p_text, "n": row.get("n"), "better": better, "significant": bool(significant), "too_small": bool(too_small), "why_small": why}


def _cost_lines(perf: Mapping, arms: Sequence[str]) -> list[str]:
    """The cost sentence, on counted work (TFLOP per image, analysis.performance.counted_work): a
    ranking only for the pairs analysis.performance.cost_comparisons claims (arms with identical
    counted work are never ranked); measured time beside it as context, a time difference quoted
    only where it clears the batch-to-batch noise and agrees with counted work."""
    work = {a: _get(perf, "datasets", a, "counted_work") for a in arms}
    work = {a: w for a, w in work.items() if w and is_finite(_get(w, "tflop_per_image", "mean"))}
    if work:
        order = sorted(work, key=lambda a: work[a]["tflop_per_image"]["mean"])
        means = ", ".join(f"{a} {work[a]['tflop_per_image']['mean']:.3g}" for a in order)
        line = f"Cost (counted work, TFLOP per image: FLOPs counted by {work[order[0]]['counter']} over the passes each image ran): {means}"
    else:
        line = "Cost: no counted work was recorded (records written before FLOPs were counted), so no cost ranking is made"
    comps = [c for c in (perf.get("cost_comparisons") or []) if c["a"] in work and c["b"] in work]
    parts = []
    for c in (c for c in comps if c.get("claimed")):
        cheap, dear = (c["a"], c["b"]) if c["mean_diff"] < 0 else (c["b"], c["a"])
        ratio = c.get("ratio") if c["a"] == dear else (1 / c["ratio"] if c.get("ratio") else None)
        t = c.get("time") or {}
        time_note = (f"; measured time agrees ({fmt(abs(t['mean_diff']), 'time_s')} s/image, noise CV {100 * t['noise_cv']:.0f} %)" if t.get("claimed")
                     else "; measured time does not show it beyond the noise" if t else "")
        parts.append(f"{cheap} costs less than {dear} ({dear} {ratio:.2f}× {cheap}){time_note}" if ratio else f"{cheap} costs less than {dear}{time_note}")
    same = [f"{c['a']} = {c['b']}" for c in comps if c.get("identical")]
    unclear = [f"{c['a']} vs {c['b']}" for c in comps if not c.get("claimed") and not c.get("identical")]
    if parts:
        line += ". " + "; ".join(parts)
    if same:
        line += f". Identical counted work, not ranked by cost: {', '.join(same)}"
    if unclear:
        line += f". No cost ranking (images differ in both directions): {', '.join(unclear)}"
    times = {a: _get(perf, "datasets", a, "batch_costs") for a in arms}
    times = {a: c for a, c in times.items() if c and is_finite(_get(c, "compute_per_image_s", "mean"))}
    if times:
        clock = ", ".join(sorted({k for c in times.values() for k in c.get("clock") or []}))
        order = sorted(times, key=lambda a: times[a]["compute_per_image_s"]["mean"])
        measured = ", ".join(f"{a} {times[a]['compute_per_image_s']['mean']:.3g} s ({times[a]['n_batches']} batches)" if not n_too_small(times[a]["n_batches"] or 0) else f"{a} n too small ({times[a]['n_batches']} batches)" for a in order)
        line += f". Measured compute per image on the device clock ({clock}; context, not the cost axis; the batch is the unit): {measured}"
    return [line + "."]
