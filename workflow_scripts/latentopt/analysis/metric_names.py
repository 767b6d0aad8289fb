"""The evaluated metric names, their directions and ranges (one place; the report and the
analyses read them from here)."""

from __future__ import annotations

from latentopt.metrics.visual_quality import HIGHER_IS_BETTER as _VISUAL_HIGHER_IS_BETTER
from latentopt.metrics.visual_quality import VISUAL_METRICS

METRICS = ("psnr", "ssim", "lpips_alex", "lpips_vgg", "mse", "mae")
# Every per-image metric summarised and tested (the visual-quality ones after the seed's).
EVALUATED_METRICS = (*METRICS, *VISUAL_METRICS)
# sharpness_ratio has no "better" direction (its target is 1) and is therefore not listed.
HIGHER_IS_BETTER = {"psnr": True, "ssim": True, "lpips_alex": False, "lpips_vgg": False, "mse": False, "mae": False, "time_s": False, "fid": False, "kid": False, **_VISUAL_HIGHER_IS_BETTER}
# Range of each metric (a CI bound outside it is marked in the report, never clipped silently).
METRIC_RANGES = {"psnr": (0.0, float("inf")), "ssim": (-1.0, 1.0), "lpips_alex": (0.0, float("inf")), "lpips_vgg": (0.0, float("inf")), "mse": (0.0, 1.0), "mae": (0.0, 1.0), "time_s": (0.0, float("inf")), "fid": (0.0, float("inf")), "kid": (float("-inf"), float("inf"))}
