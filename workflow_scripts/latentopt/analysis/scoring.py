"""Per-image scoring: every image of a dataset against its preprocessed original.

Per image (on the published 8-bit PNGs, float64 in [0,1]): PSNR, SSIM, MSE, MAE, LPIPS-alex and
LPIPS-vgg (definitions in metrics.py), and the visual-quality metrics GMSD, mean CIEDE2000 and the
Laplacian-variance sharpness ratio (visual_quality.py), plus the job's records of the image.
"""

from __future__ import annotations

import pandas as pd

from latentopt.workflow import layout
from latentopt.core.fileio import read_json
from latentopt.data.images import read_rgb
from latentopt.analysis.input_failures import failure_kind
from latentopt.metrics.image_metrics import image_metrics
from latentopt.metrics.visual_quality import visual_metrics

RECORD_COLUMNS = ("time_s", "optimization_time_s", "iterations", "converged_at", "stop_reason", "peak_memory_mb", "device", "batch_size")


def per_image_table(config: dict, plan, arm: str, lpips_nets: dict) -> pd.DataFrame:
    """One row per image of ``arm``: status, metrics of its PNG vs the original, job records."""
    results = config["results_dir"]
    rows = []
    for split, entries in plan.splits.items():
        for entry in entries:
            record = read_json(layout.per_image(results, arm, split, entry.image_id, "json"))
            row = {"dataset": arm, "split": split, "image_id": entry.image_id, "status": record["status"], "reason": record.get("reason"), "failure_kind": failure_kind(record)}
            if record["status"] == "ok":
                pred = read_rgb(layout.dataset_png_dir(results, arm) / split / f"{entry.image_id}.png")
                ref = read_rgb(layout.original_png(results, split, entry.image_id))
                row.update(image_metrics(pred, ref, lpips_nets))
                row.update(visual_metrics(pred, ref))
                row.update({k: record.get(k) for k in RECORD_COLUMNS})
                row["retried"] = bool(record.get("retry"))  # the non-convergence retry ran (optimizer.optimize_with_retry)
                row.update({f"batch_{k}": v for k, v in (record.get("batch") or {}).items()})
                row["initial_psnr"] = record["initial"]["psnr"]
                row["loss_initial"] = record.get("initial_loss")
                row["loss_best"] = record.get("best_loss")
            rows.append(row)
    return pd.DataFrame(rows)


def per_image_status(config: dict, plan, arm: str) -> pd.DataFrame:
    """Status of each image of ``arm`` from its per-image record (no metrics computed)."""
    rows = []
    for split, entries in plan.splits.items():
        for e in entries:
            record = read_json(layout.per_image(config["results_dir"], arm, split, e.image_id, "json"))
            rows.append({"dataset": arm, "split": split, "image_id": e.image_id, "status": record["status"]})
    return pd.DataFrame(rows)
