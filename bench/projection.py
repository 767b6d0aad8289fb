"""The full experiment projected from the measured per-loss throughput and overhead model."""

from __future__ import annotations

import math
from typing import Any

from .common import REPO
from .models import SD_VAE_SPEC


def projection(result: dict, device_type: str, mode_name: str, args) -> dict:
    import yaml

    cfg = yaml.safe_load((REPO / "config.yaml").read_text())
    per_loss = result.get("per_loss") or []
    from latentopt.analysis.criteria import BSDS500_SPLIT_SIZES

    splits = dict(BSDS500_SPLIT_SIZES)  # the full experiment, whatever subset of images this machine holds
    n_images = sum(splits.values())
    ipj = int(cfg["run"]["images_per_job"])
    out: dict[str, Any] = {"n_images": n_images, "images_per_job": ipj, "splits": splits}
    if not per_loss:
        out["note"] = "no per-loss throughput measured"
        return out
    opt_s = sum(n_images * p["experiment_iterations"] / p["image_iterations_per_s"] for p in per_loss)
    out["per_loss"] = {p["arm"]: {"iterations": p["experiment_iterations"],
                                  "image_iterations_per_s": p["image_iterations_per_s"],
                                  "optimization_s": n_images * p["experiment_iterations"] / p["image_iterations_per_s"]}
                       for p in per_loss}
    out["optimization_s"] = opt_s
    flops = result.get("flops", {}).get("per_image_iteration")
    if flops:
        out["experiment_model_pflop"] = n_images * sum(p["experiment_iterations"] for p in per_loss) * flops / 1e15
    models = result.get("orchestration", {}).get("overhead_model", {})
    m = next((models[k] for k in models if k.startswith("n_images")), None) or models.get("demo")
    chunks = sum(math.ceil(n / ipj) for n in splits.values())
    arms = 1 + len(per_loss)
    if m:
        overhead = (m["driver_s"] + m["per_prepare_job_s"] * chunks + m["optimize_job_startup_s"] * chunks * arms
                    + m["per_image_in_job_extra_s"] * n_images * arms)
        out.update(orchestration_overhead_s=overhead, overhead_model_from=m["fitted_on"],
                   prepare_jobs=chunks, optimize_jobs=chunks * arms)
    else:
        overhead = None
        out["orchestration_overhead_s"] = None
    out["total_s"] = opt_s + (overhead or 0.0)
    out["total_min"] = out["total_s"] / 60
    out["upper_bound"] = "every image runs all its iterations (per-image early stopping only shortens it)"
    setup = result.get("setup", {})
    full_size = setup.get("model", {}).get("spec", {}).get("block_out_channels") == SD_VAE_SPEC["block_out_channels"] \
        and setup.get("model", {}).get("spec", {}).get("layers_per_block") == 2
    gpu = (result.get("peak_flops") or {}).get("gpu") or ""
    size_ok = (setup.get("images", {}).get("height"), setup.get("images", {}).get("width")) == (320, 480)
    if device_type == "cuda" and full_size and size_ok and "H100" in gpu.upper():
        out["meets_15_min_on_one_h100"] = out["total_s"] <= 15 * 60 and overhead is not None
        out["claim"] = "measured on an H100 with the full-size SD-VAE at 480x320"
    else:
        out["meets_15_min_on_one_h100"] = None
        out["claim"] = ("none: this projection is for the measured device/model/size "
                        f"({device_type}, {setup.get('model', {}).get('label')}, "
                        f"{setup.get('images', {}).get('height')}x{setup.get('images', {}).get('width')}); "
                        "the <= 15 min on one H100 question needs `--device cuda --full` on an H100")
    return out

