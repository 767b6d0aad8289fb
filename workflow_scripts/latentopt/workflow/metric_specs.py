"""The one registry of metric names, directions and ranges (pure Python).

The evaluation scores every per-image metric of :data:`EVALUATED_METRICS` (definitions:
:mod:`latentopt.metrics.image_metrics` and :mod:`latentopt.metrics.visual_quality`) and FID/KID per
dataset (:mod:`latentopt.metrics.fid`). :data:`HIGHER_IS_BETTER` gives the direction of "better" of
those that have one (``sharpness_ratio`` has none: its target is 1, :data:`TARGET_VALUE`);
:data:`METRIC_RANGES` the range a value can take (a CI bound outside it is marked in the report,
never clipped silently).
"""

from __future__ import annotations

METRICS = ("psnr", "ssim", "lpips_alex", "lpips_vgg", "mse", "mae")
VISUAL_METRICS = ("gmsd", "delta_e00", "sharpness_ratio")
# Every per-image metric summarised and tested (the visual-quality ones after the seed's).
EVALUATED_METRICS = (*METRICS, *VISUAL_METRICS)
HIGHER_IS_BETTER = {
    "psnr": True,
    "ssim": True,
    "lpips_alex": False,
    "lpips_vgg": False,
    "mse": False,
    "mae": False,
    "time_s": False,
    "fid": False,
    "kid": False,
    "gmsd": False,
    "delta_e00": False,
}
TARGET_VALUE = {"sharpness_ratio": 1.0}
METRIC_RANGES = {
    "psnr": (0.0, float("inf")),
    "ssim": (-1.0, 1.0),
    "lpips_alex": (0.0, float("inf")),
    "lpips_vgg": (0.0, float("inf")),
    "mse": (0.0, 1.0),
    "mae": (0.0, 1.0),
    "time_s": (0.0, float("inf")),
    "fid": (0.0, float("inf")),
    "kid": (float("-inf"), float("inf")),
}
# The evaluation SSIM's Gaussian window (taps, sigma): metrics.image_metrics scores with it, and an SSIM
# loss counts as optimizing the evaluation SSIM only with this window (workflow.objectives).
SSIM_WINDOW = (11, 1.5)
# Per-image metrics with a direction, LPIPS apart (which LPIPS nets are scored is a config choice).
DIRECTIONAL_METRICS = tuple(m for m in EVALUATED_METRICS if m in HIGHER_IS_BETTER and not m.startswith("lpips_"))
