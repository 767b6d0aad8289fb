"""Final-quality deltas of a configuration against the fp32 reference on the same images."""

from __future__ import annotations

import statistics
from typing import Any

from .common import _mean

def quality_deltas(row: dict, ref: dict, thresholds: dict) -> dict:
    n = min(row["batch"], ref["batch"])
    out: dict[str, Any] = {"images_compared": n}
    for key in ("psnr", "ssim", "lpips"):
        a, b = row["per_image"][key], ref["per_image"][key]
        if a is None or b is None:
            out[f"delta_{key}_mean"] = out[f"delta_{key}_max_abs"] = None
            continue
        d = [a[i] - b[i] for i in range(n)]
        out[f"delta_{key}_mean"] = statistics.fmean(d)
        out[f"delta_{key}_max_abs"] = max(abs(v) for v in d)
    out["psnr_initial_mean"] = _mean(row["per_image"]["psnr_initial"][:n])
    out["psnr_final_mean"] = _mean(row["per_image"]["psnr"][:n])
    out["ssim_final_mean"] = _mean(row["per_image"]["ssim"][:n])
    out["lpips_final_mean"] = _mean((row["per_image"]["lpips"] or [])[:n])
    ok = abs(out["delta_psnr_mean"]) <= thresholds["psnr_db"]
    ok = ok and abs(out["delta_ssim_mean"]) <= thresholds["ssim"]
    if out["delta_lpips_mean"] is not None:
        ok = ok and abs(out["delta_lpips_mean"]) <= thresholds["lpips"]
    out["matches_fp32"] = bool(ok)
    return out

