"""Number and table formatting of the report: labels, display precision, "n/a" for missing
values, Markdown-safe table dicts for the template's ``md_table`` macro."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from ..evaluation import HIGHER_IS_BETTER

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
}
# Display precision per metric (the JSON files keep full precision).
FORMATS = {"psnr": ".2f", "ssim": ".4f", "lpips_alex": ".4f", "lpips_vgg": ".4f", "mse": ".3e", "mae": ".4f", "time_s": ".2f", "fid": ".2f", "kid": ".4f"}
# What the recommendations are about: (purpose, metric), first present metric of each is used.
OPTIMIZED_MARK = "†"


def metric_label(metric: str, arrow: bool = True) -> str:
    label = METRIC_LABELS.get(metric, metric)
    if arrow and metric in HIGHER_IS_BETTER:
        label += " ↑" if HIGHER_IS_BETTER[metric] else " ↓"
    return label



def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def fmt(v: Any, metric: str = "", signed: bool = False) -> str:
    if not _finite(v):
        return "n/a"
    spec = FORMATS.get(metric, ".4g")
    return format(v, ("+" if signed else "") + spec)


def fmt_p(p: Any) -> str:
    if not _finite(p):
        return "n/a"
    if p < 0.001:
        return f"{p:.1e}"
    return f"{p:.3f}" if p < 0.1 else f"{p:.2f}"


def mean_ci(cell: Mapping | None, metric: str) -> str:
    """'mean ± half-width of the 95 % t-interval' (the interval is symmetric)."""
    if not cell or not _finite(cell.get("mean")):
        return "n/a"
    lo, hi = cell.get("ci95_low"), cell.get("ci95_high")
    if _finite(lo) and _finite(hi):
        return f"{fmt(cell['mean'], metric)} ± {fmt((hi - lo) / 2, metric)}"
    return fmt(cell["mean"], metric)


def interval(lo: Any, hi: Any, metric: str = "", signed: bool = False) -> str:
    if not (_finite(lo) and _finite(hi)):
        return ""
    return f"[{fmt(lo, metric, signed)}, {fmt(hi, metric, signed)}]"


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

