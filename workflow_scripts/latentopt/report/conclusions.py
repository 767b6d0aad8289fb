"""Every decision rule of the report: the success-criteria table and the recommendations."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ..evaluation import HIGHER_IS_BETTER
from ..layout import BASELINE
from .formatting import _finite, fmt, fmt_p, interval, metric_label, table
from .inputs import _get, _pair_row, best_datasets, oriented

PURPOSES = (
    ("pixel fidelity", ("psnr", "mae")),
    ("structural similarity", ("ssim",)),
    ("perceptual quality", ("lpips_alex", "lpips_vgg")),
    ("distribution-level fidelity", ("fid",)),
)


def success_table(stats: Mapping) -> dict | None:
    crit = stats.get("success_criteria") or {}
    if not crit:
        return None
    names = [("success_rate", "success rate", lambda v: f"{100 * v:.1f} %", lambda t: f"≥ {100 * t:.1f} %"),
             ("fid_improvement", "FID improvement vs baseline", lambda v: f"{100 * v:+.1f} %", lambda t: f"≥ {100 * t:.1f} %"),
             ("significance", "significantly better than baseline on", lambda v: ", ".join(v) or "none", lambda t: f"Holm p < {t}"),
             ("time_budget", "total time (h)", lambda v: f"{v:.3f}", lambda t: f"≤ {t}")]
    rows = []
    for arm, entry in crit.items():
        row = [arm]
        all_pass = True
        for key, _, show, _ in names:
            e = entry.get(key)
            if e is None:
                row.append("not evaluated")
                continue
            value = show(e["value"]) if e.get("value") is not None else "n/a"
            verdict = "PASS" if e.get("pass") else "**FAIL**"
            all_pass &= bool(e.get("pass"))
            row.append(f"{verdict}: {value}")
        row.append("PASS" if all_pass else "**FAIL**")
        rows.append(row)
    header = ["loss"] + [f"{label} ({thr(next(iter(crit.values()))[key]['threshold'])})" if next(iter(crit.values())).get(key) else label for key, label, _, thr in names] + ["all"]
    return table(header, rows, ["l"] * (len(names) + 2))



def recommendations(cross: Mapping, stats: Mapping, perf: Mapping, datasets: Sequence[str], optimized: Mapping[str, set], alpha: float) -> list[str]:
    """One sentence per purpose (pixel fidelity, structure, perception, FID): the loss with the
    best mean on that metric, its difference to the baseline with CI and Holm-corrected Wilcoxon
    p (FID: paired-bootstrap CI and p). "Use X" only when X is better than the baseline and
    significant at ``alpha``; otherwise the sentence says that no loss is shown to beat the
    baseline. Then the runner-up margin, a caveat when the winner optimized the metric itself
    (with the best loss on an independent metric of the same purpose), cost and success-criteria
    lines."""
    arms = [d for d in datasets if d != BASELINE]
    out = []
    tests = stats.get("tests") or {}
    for purpose, candidates in PURPOSES:
        metric = next((m for m in candidates if m in cross.get("metrics", [])), None)
        if metric is None:
            continue
        key = "fid" if metric == "fid" else "mean"
        label = metric_label(metric, False)
        finite = {a: v for a in arms if _finite(v := _get(cross["datasets"], a, "all", metric, key))}
        if not finite:
            out.append(f"For {purpose} ({label}): no loss arm has a value; nothing to recommend.")
            continue
        ranked = sorted(finite, key=lambda a: finite[a], reverse=HIGHER_IS_BETTER[metric])
        best = ranked[0]
        unit = " dB" if metric == "psnr" else ""
        value = f"{label} {fmt(finite[best], metric)}{unit}"
        cmp = _vs_baseline(stats, tests, best, metric, alpha)
        if cmp is None:
            text = f"For {purpose}: **{best}** has the best {label} among the losses ({fmt(finite[best], metric)}{unit}); no paired comparison with the baseline is available (too few images succeeded in every dataset)"
        else:
            evidence = f"{fmt(cmp['diff'], metric, True)}{unit} vs. baseline (95% CI {cmp['ci'] or 'n/a'}, {cmp['p_text']})"
            if cmp["better"] and cmp["significant"]:
                text = f"For {purpose}, use **{best}**: best {label} among the losses ({fmt(finite[best], metric)}{unit}), {evidence}"
            elif cmp["better"]:
                text = f"For {purpose}, no loss is shown to beat the baseline: the best loss, **{best}** ({value}), is {evidence} — not significant at α = {alpha}"
            else:
                text = f"For {purpose}, keep the **baseline**: no loss improves {label}; the best loss, {best} ({value}), is {evidence}"
        if len(ranked) > 1 and metric != "fid":
            row2 = _pair_row(_get(tests, metric, "all", default=[]), best, ranked[1])
            if row2:
                d, lo, hi = oriented(row2, best)
                p = row2.get("p_wilcoxon_holm")
                text += f"; vs. the runner-up {ranked[1]}: {fmt(d, metric, True)}{unit} {interval(lo, hi, metric, True)}, Holm p = {fmt_p(p)}"
                if not (_finite(p) and p < alpha):
                    text += " (not significant)"
        text += "."
        if metric in optimized.get(best, set()):
            others = [m for m in candidates if m != metric and m in cross.get("metrics", []) and m not in optimized.get(best, set())]
            text += f" Caveat: {best} optimized {label} directly, so leading on it is expected"
            if others:
                m2 = others[0]
                b2 = best_datasets({a: _get(cross["datasets"], a, "all", m2, "mean") for a in arms}, m2)
                text += f"; on {metric_label(m2, False)}, which it did not optimize, the best loss is {', '.join(sorted(b2)) or 'n/a'}"
            text += "."
        out.append(text)
    out.extend(_cost_lines(perf, arms))
    crit = stats.get("success_criteria") or {}
    if crit:
        passing = [a for a, e in crit.items() if all(v.get("pass") for v in e.values() if isinstance(v, Mapping))]
        failing = {a: [k for k, v in e.items() if isinstance(v, Mapping) and not v.get("pass")] for a, e in crit.items()}
        failing = {a: f for a, f in failing.items() if f}
        line = f"Losses meeting every success criterion: {', '.join(passing) if passing else 'none'}"
        if failing:
            line += "; failing: " + "; ".join(f"{a} ({', '.join(f)})" for a, f in failing.items())
        out.append(line + ".")
    return out


def _vs_baseline(stats: Mapping, tests: Mapping, arm: str, metric: str, alpha: float) -> dict | None:
    """Difference arm − baseline with its CI, p text, whether it is an improvement and whether
    it is significant (Holm-corrected Wilcoxon p < alpha; FID: bootstrap p < alpha)."""
    if metric == "fid":
        row = _pair_row(_get(stats, "fid_differences", "all", default=[]), arm, BASELINE)
        if row is None:
            return None
        d, lo, hi = oriented(row, arm, "diff")
        p, p_text = row.get("p_boot"), f"bootstrap p = {fmt_p(row.get('p_boot'))}"
    else:
        row = _pair_row(_get(tests, metric, "all", default=[]), arm, BASELINE)
        if row is None:
            return None
        d, lo, hi = oriented(row, arm)
        p, p_text = row.get("p_wilcoxon_holm"), f"Holm p = {fmt_p(row.get('p_wilcoxon_holm'))}"
    better = _finite(d) and (d > 0 if HIGHER_IS_BETTER[metric] else d < 0)
    return {"diff": d, "ci": interval(lo, hi, metric, True), "p_text": p_text, "better": better, "significant": _finite(p) and p < alpha}


def _cost_lines(perf: Mapping, arms: Sequence[str]) -> list[str]:
    times = {a: _get(perf, "datasets", a, "time_per_image_s", "mean") for a in arms}
    times = {a: t for a, t in times.items() if _finite(t)}
    if not times:
        return []
    fastest = min(times, key=times.get)
    slowest = max(times, key=times.get)
    line = f"Cheapest loss per image: **{fastest}** ({times[fastest]:.2f} s/image on average)"
    if slowest != fastest and times[fastest] > 0:
        line += f"; the most expensive, {slowest}, takes {times[slowest] / times[fastest]:.1f}× as long ({times[slowest]:.2f} s/image)"
    return [line + "."]

