"""Number and table formatting of the report: labels, display precision, "n/a" for missing
values, Markdown-safe table dicts for the template's ``md_table`` macro."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from latentopt.core.numbers import is_finite
from latentopt.workflow.metric_specs import HIGHER_IS_BETTER, METRIC_RANGES
from latentopt.analysis.statistics import MIN_N_INTERVAL, n_too_small

METRIC_LABELS = {
    "psnr": "PSNR (dB)",
    "ssim": "SSIM",
    "lpips_alex": "LPIPS-alex",
    "lpips_vgg": "LPIPS-vgg",
    "mse": "MSE",
    "mae": "MAE",
    "time_s": "time/image (s)",
    "fid": "FID",
    "kid": "KID",
    "gmsd": "GMSD",
    "delta_e00": "ΔE00 (CIEDE2000)",
    "sharpness_ratio": "sharpness ratio",
}
# Display precision per metric (the JSON files keep full precision).
FORMATS = {"psnr": ".2f", "ssim": ".4f", "lpips_alex": ".4f", "lpips_vgg": ".4f", "mse": ".3e", "mae": ".4f", "time_s": ".2f", "time_ms": ".1f", "fid": ".2f", "kid": ".4f", "gmsd": ".4f", "delta_e00": ".2f", "sharpness_ratio": ".3f"}
OPTIMIZED_MARK = "†"
FAMILY_MARK = "§"  # a cell whose verdict differs between two test families (see tables.significance_matrix)
# Marks a 95 % interval with a bound outside the metric's possible range (printed unclipped).
RANGE_MARK = "‡"
TOO_SMALL = "n too small"


def metric_label(metric: str, arrow: bool = True) -> str:
    label = METRIC_LABELS.get(metric, metric)
    if arrow and metric in HIGHER_IS_BETTER:
        label += " ↑" if HIGHER_IS_BETTER[metric] else " ↓"
    return label



def fmt(v: Any, metric: str = "", signed: bool = False) -> str:
    if not is_finite(v):
        return "n/a"
    if metric == "time_iter":  # seconds shown as milliseconds
        v, metric = 1000.0 * v, "time_ms"
    spec = FORMATS.get(metric, ".4g")
    return format(v, ("+" if signed else "") + spec)


def fmt_p(p: Any) -> str:
    if not is_finite(p):
        return "n/a"
    if p < 0.001:
        return f"{p:.1e}"
    return f"{p:.3f}" if p < 0.1 else f"{p:.2f}"


def fmt_p_boot(p: Any, n_boot: Any) -> str:
    """A bootstrap p: below its resolution (p = 0 with n_boot replicates) it is "< 1/n_boot"."""
    if is_finite(p) and p == 0 and is_finite(n_boot) and n_boot > 0:
        return f"< 1/{int(n_boot)}"
    return fmt_p(p)


def outside_range(lo: Any, hi: Any, metric: str) -> bool:
    """Whether an interval [lo, hi] of ``metric`` extends beyond the metric's possible range."""
    low, high = METRIC_RANGES.get(metric, (-math.inf, math.inf))
    return (is_finite(lo) and lo < low) or (is_finite(hi) and hi > high)


def too_small(n: Any, n_min: int = MIN_N_INTERVAL) -> str:
    return f"{TOO_SMALL} (n = {n if n is not None else 0} < {n_min})"


def mean_only(v: Any, metric: str, n: Any, n_min: int = MIN_N_INTERVAL) -> str:
    """A value whose n is below the minimum for an interval: the value itself, labelled
    "CI: n too small" (never bold, never 'best')."""
    if not is_finite(v):
        return too_small(n, n_min)
    return f"{fmt(v, metric)} (CI: {TOO_SMALL}, n = {n if n is not None else 0} < {n_min})"


def mean_ci(cell: Mapping | None, metric: str) -> str:
    """'mean ± half-width of the 95 % t-interval' (the interval is symmetric); "n too small"
    below MIN_N_INTERVAL values; RANGE_MARK when the interval leaves the metric's range."""
    if not cell or not is_finite(cell.get("mean")):
        return "n/a"
    if n_too_small(cell.get("n") or 0):
        return mean_only(cell["mean"], metric, cell.get("n"))
    lo, hi = cell.get("ci95_low"), cell.get("ci95_high")
    if is_finite(lo) and is_finite(hi):
        mark = f" {RANGE_MARK}" if outside_range(lo, hi, metric) else ""
        return f"{fmt(cell['mean'], metric)} ± {fmt((hi - lo) / 2, metric)}{mark}"
    return fmt(cell["mean"], metric)


def interval(lo: Any, hi: Any, metric: str = "", signed: bool = False, *, difference: bool | None = None) -> str:
    """THE interval formatter of the report: "[lo, hi]", followed by RANGE_MARK when a bound
    lies outside the quantity's possible range (a value of ``metric``: METRIC_RANGES; a
    difference, the default when ``signed``: never marked, its range is the span of two values).
    Every section prints an interval through this function, so one interval prints identically
    everywhere."""
    if not (is_finite(lo) and is_finite(hi)):
        return ""
    text = f"[{fmt(lo, metric, signed)}, {fmt(hi, metric, signed)}]"
    is_diff = signed if difference is None else difference
    if not is_diff and outside_range(lo, hi, metric):
        text += f" {RANGE_MARK}"
    return text


# A relative improvement (value_base - value_arm) / value_base of a quantity >= 0 cannot exceed 100 %.
RELATIVE_MAX = 1.0


def pct(v: Any) -> str:
    return f"{100 * v:+.1f} %" if is_finite(v) else "n/a"


def pct_interval(lo: Any, hi: Any) -> str:
    """A relative improvement's interval in %, marked when a bound exceeds +100 % (impossible
    for a quantity that cannot go below 0, such as FID)."""
    if not (is_finite(lo) and is_finite(hi)):
        return ""
    mark = f" {RANGE_MARK}" if hi > RELATIVE_MAX or lo > RELATIVE_MAX else ""
    return f"[{pct(lo)}, {pct(hi)}]{mark}"


def fid_interval(cell: Mapping | None) -> str:
    """The FID interval of a cross-evaluation cell, the re-centred lower bound printed unclipped
    (and so marked when below 0): used by every section that prints a FID interval."""
    if not cell:
        return ""
    lo = cell.get("ci95_low_unclipped", cell.get("ci95_low"))
    return interval(lo, cell.get("ci95_high"), "fid")


def _cell(text: Any) -> str:
    """A Markdown table cell: no pipes or newlines."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def table(header: Sequence[str], rows: Sequence[Sequence[Any]], align: Sequence[str] | None = None) -> dict:
    """{"header", "rows", "align"} for the template's table macro; align entries 'l' or 'r'."""
    align = list(align or ["l"] + ["r"] * (len(header) - 1))
    return {
        "header": [_cell(h) for h in header],
        "rows": [[_cell(c) for c in row] for row in rows],
        "align": [":---" if a == "l" else "---:" for a in align],
    }



def retried_text(counts) -> str:
    """'retried: 2 × 300' (or '1 × 300, 1 × 280') for the iteration counts of retried images."""
    if not counts:
        return ""
    return "retried: " + ", ".join(f"{k} × {v}" for v, k in sorted(Counter(counts).items()))
