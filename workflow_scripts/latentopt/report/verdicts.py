"""The verdicts on top of the report: at most one line per purpose (conclusions.PURPOSES, one per
monotone family of metrics: PSNR, MSE and MAE are one), each "Use X for Y" or an honest "no
setting shown better", plus one line naming the purposes left unjudged.

Nothing is computed here: every number is a field of ``statistical_analysis.json`` (the paired
test of the arm against the baseline on the purpose's evidence metric: mean difference, its
bootstrap 95 % CI, n, the Holm-corrected Wilcoxon p and the size of its Holm family; FID: the
paired-bootstrap difference, Holm over the FID pairs) or of ``performance_summary.json`` (the
arm's counted work, ``counted_work.tflop_per_image``, and the same for the baseline; where work was
not counted, the measured compute per image on the device clock, labelled as such).

The rule: "Use X for Y" when at least one arm beats the baseline on Y's evidence metric (a held-out
metric where Y has one, else Y's metric, then marked as X's own objective) with corrected p < α;
X is the one of those with the largest mean gain; when another of them is not shown worse than X,
the line says so. Otherwise the line says that no setting was shown better and why (the best arm's
numbers, and whether the test could reach α at this n at all).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from latentopt.workflow.layout import BASELINE
from latentopt.workflow.metric_specs import HIGHER_IS_BETTER
from latentopt.workflow.objectives import with_relatives
from latentopt.report.conclusions import PURPOSES, _evidence_metric, _fid_holm, _vs_baseline
from latentopt.core.numbers import is_finite
from latentopt.report.formatting import TOO_SMALL, fmt, fmt_p, metric_label
from latentopt.report.inputs import _get, _pair_row, oriented

MAX_LINES = 5
UNIT = {"psnr": " dB"}


@dataclass(frozen=True)
class Verdict:
    """One verdict line and the numbers it quotes (tests re-derive them from the JSON)."""

    purpose: str
    metric: str | None
    arm: str | None  # the arm recommended ("Use X"), None for "no setting shown better"
    tested_arm: str | None  # the arm whose test the line quotes
    diff: float | None
    ci95_low: float | None
    ci95_high: float | None
    n: int | None
    p: float | None
    text: str


def _gain(d, metric: str):
    """A difference arm − baseline signed so that positive is better."""
    return d if HIGHER_IS_BETTER.get(metric, True) else -d


def _evidence_note(metric: str, optimized: Mapping[str, set]) -> str:
    owners = sorted(a for a, ms in optimized.items() if metric in ms)
    relatives = sorted(a for a, ms in optimized.items() if metric not in ms and metric in with_relatives(ms))
    if owners:
        return f"the own objective of {', '.join(owners)}, not independent evidence"
    if relatives:
        return f"a monotone relative of the objective of {', '.join(relatives)}, not independent evidence"
    return "held out: no arm optimized it"


def cost_text(perf: Mapping, arm: str) -> str:
    """"costs Z TFLOP/image (k× the baseline's encode + decode)" from the counted work; where no
    work was counted, the measured compute on the device clock, named as such."""
    work = _get(perf, "datasets", arm, "counted_work", "tflop_per_image", "mean")
    base = _get(perf, "datasets", BASELINE, "counted_work", "tflop_per_image", "mean")
    if is_finite(work):
        ratio = f"{work / base:.3g}× the baseline's plain decode" if is_finite(base) and base > 0 else "the baseline's work not counted"
        return f"costs {work:.3g} TFLOP/image ({ratio})"
    compute = _get(perf, "datasets", arm, "batch_costs", "compute_per_image_s", "mean")
    base_c = _get(perf, "datasets", BASELINE, "batch_costs", "compute_per_image_s", "mean")
    if not is_finite(compute):
        return "cost: work not counted, no time recorded"
    clock = ", ".join(_get(perf, "datasets", arm, "batch_costs", "clock", default=[]) or []) or "device clock"
    ratio = f", {compute / base_c:.3g}× the baseline's" if is_finite(base_c) and base_c > 0 else ""
    return f"cost not counted in FLOPs; measured {compute:.3g} s/image of {clock}{ratio} (depends on the machine)"


def family_labels(metrics: Sequence[str]) -> str:
    """Metrics as one item per monotone family (objectives.RELATED_METRICS): "PSNR (dB)/MSE/MAE,
    ΔE00 (CIEDE2000)"."""
    items: list[list[str]] = []
    for m in metrics:
        group = next((it for it in items if m in with_relatives(it)), None)
        if group is None:
            items.append([m])
        else:
            group.append(m)
    return ", ".join("/".join(metric_label(m, False) for m in it) for it in items)


def _pair_text(stats: Mapping, a: str, b: str, metric: str) -> tuple[float | None, str]:
    """(corrected p, "Δ [CI], Holm p") of the paired test a − b."""
    if metric == "fid":
        row = _pair_row(_get(stats, "fid_differences", "all", default=[]), a, b)
        if not row:
            return None, ""
        d, lo, hi = oriented(row, a, "diff")
        p = _fid_holm(stats).get(frozenset((a, b)))
    else:
        row = _pair_row(_get(stats, "tests", metric, "all", default=[]), a, b)
        if not row:
            return None, ""
        d, lo, hi = oriented(row, a)
        p = row.get("p_wilcoxon_holm")
    unit = UNIT.get(metric, "")
    ci = f"[{fmt(lo, metric, True)}, {fmt(hi, metric, True)}]" if is_finite(lo) and is_finite(hi) else f"(CI: {TOO_SMALL})"
    return p, f"{fmt(d, metric, True)}{unit} {ci}, Holm p = {fmt_p(p)}"


def _purpose_verdict(purpose: str, metric: str, arms: Sequence[str], stats: Mapping, perf: Mapping, optimized: Mapping[str, set], alpha: float) -> Verdict:
    tests = stats.get("tests") or {}
    label, unit = metric_label(metric), UNIT.get(metric, "")
    cmps = {a: c for a in arms if (c := _vs_baseline(stats, tests, a, metric, alpha)) is not None and is_finite(c["diff"])}
    shown = sorted((a for a, c in cmps.items() if c["better"] and c["significant"]), key=lambda a: (-_gain(cmps[a]["diff"], metric), arms.index(a)))
    if not cmps:
        return Verdict(purpose, metric, None, None, None, None, None, None, None, f"No setting shown better for {purpose} ({label}): no arm has a paired comparison with the baseline.")
    pick = shown[0] if shown else max(cmps, key=lambda a: (_gain(cmps[a]["diff"], metric), -arms.index(a)))
    c = cmps[pick]
    row = _pair_row(_get(stats, "fid_differences", "all", default=[]) if metric == "fid" else _get(tests, metric, "all", default=[]), pick, BASELINE) or {}
    d, lo, hi = oriented(row, pick, "diff" if metric == "fid" else "mean_diff")
    p = _fid_holm(stats).get(frozenset((pick, BASELINE))) if metric == "fid" else row.get("p_wilcoxon_holm")
    m = len(_fid_holm(stats)) if metric == "fid" else row.get("m_tests")
    ci = f"[95 % CI {fmt(lo, metric, True)}, {fmt(hi, metric, True)}]" if is_finite(lo) and is_finite(hi) else f"(CI: {TOO_SMALL})"
    numbers = f"{fmt(d, metric, True)}{unit} {ci} on {metric_label(metric)} ({_evidence_note(metric, optimized)}), n = {c['n']}, Holm p = {fmt_p(p)} over {m} {'FID pairs' if metric == 'fid' else 'pairs'}"
    if shown:
        worse = _get(stats, "success_criteria", pick, "significance", "deteriorations", default=[]) or []
        trade = f"; but significantly worse on {family_labels(worse)} (Holm over its held-out metrics)" if worse else ""
        rivals = [b for b in shown[1:] if not (is_finite(q := _pair_text(stats, pick, b, metric)[0]) and q < alpha)]
        tie = ("; not shown better than " + ", ".join(f"{b} ({_pair_text(stats, pick, b, metric)[1]})" for b in rivals)) if rivals else ""
        text = f"**Use {pick} for {purpose}**: {numbers}{tie}; {cost_text(perf, pick)}{trade}."
        return Verdict(purpose, metric, pick, pick, d, lo, hi, c["n"], p, text)
    if c["too_small"]:
        why = f"n too small: {c['why_small']}"
    elif c["better"]:
        why = f"not significant at α = {alpha}"
    else:
        why = "every arm is worse than the plain decode"
    text = f"**No setting shown better for {purpose}** ({why}): the best arm, {pick}, is {numbers}."
    return Verdict(purpose, metric, None, pick, d, lo, hi, c["n"], p, text)


def verdicts(cross: Mapping, stats: Mapping, perf: Mapping, datasets: Sequence[str], optimized: Mapping[str, set], alpha: float, *, uncalibrated=frozenset()) -> list[Verdict]:
    """The verdict lines (at most MAX_LINES): one per purpose with a calibrated evidence metric,
    then one line naming the purposes whose evidence metric comes from an uncalibrated network."""
    arms = [d for d in datasets if d != BASELINE]
    present = list(cross.get("metrics", []))
    out, unjudged = [], []
    for purpose, candidates in PURPOSES:
        _, evidence = _evidence_metric(candidates, present, optimized)
        if evidence is None:
            continue
        if evidence in uncalibrated:
            unjudged.append(f"{purpose} ({metric_label(evidence, False)})")
            continue
        out.append(_purpose_verdict(purpose, evidence, arms, stats, perf, optimized, alpha))
    if unjudged:
        text = f"**No verdict** on {' or '.join(unjudged) if len(unjudged) < 3 else ', '.join(unjudged)}: the metric comes from a randomly initialised network (values listed, never judged)."
        out.append(Verdict("; ".join(unjudged), None, None, None, None, None, None, None, None, text))
    if len(out) > MAX_LINES:
        raise ValueError(f"{len(out)} verdict lines; PURPOSES may hold at most {MAX_LINES} (one per monotone family)")
    return out


def verdicts_lead(alpha: float, synthetic: bool) -> str:
    """The sentence above the verdict lines: what each number is."""
    text = (f"One line per purpose (PSNR, MSE and MAE are one monotone family). Each line: the arm's mean "
            f"paired difference from the baseline (the plain encode → decode) on the purpose's evidence "
            f"metric, a metric no arm optimized where one exists, [bootstrap 95 % CI], n images, the "
            f"Wilcoxon p Holm-corrected over the metric's dataset pairs (α = {alpha}), and the arm's cost. "
            f"Details and runner-ups: Recommendations.")
    if synthetic:
        text += " Synthetic components (see the warning): these lines show what the pipeline would conclude, not research results."
    return text
