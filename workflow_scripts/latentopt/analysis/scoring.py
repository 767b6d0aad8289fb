"""Per-image scoring: every image of a dataset against its preprocessed original.

Per image (on the published 8-bit PNGs, float64 in [0,1]): PSNR, SSIM, MSE, MAE, LPIPS-alex and
LPIPS-vgg (definitions in metrics.py), and the visual-quality metrics GMSD, mean CIEDE2000 and the
Laplacian-variance sharpness ratio (visual_quality.py), plus the job's records of the image.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import pandas as pd

from latentopt.compute.devices import acquire_device
from latentopt.workflow import layout
from latentopt.core.fileio import atomic_path, read_json
from latentopt.data.images import read_rgb
from latentopt.analysis.input_failures import failure_kind
from latentopt.metrics.image_metrics import image_metrics
from latentopt.metrics.lpips_network import lpips_network
from latentopt.metrics.visual_quality import visual_metrics

RECORD_COLUMNS = ("time_s", "optimization_time_s", "iterations", "converged_at", "stop_reason", "peak_memory_mb", "device", "batch_size")
# the arm's settings as the record states them (optimize.records.arm_record), one column each;
# the loss spec, stop rule and a batch's image ids as compact JSON text
SETTING_COLUMNS = ("method", "loss", "lr", "iterations", "schedule", "warmup_fraction", "stopping")


def settings_columns(record: dict) -> dict:
    """``setting_<key>`` columns of a per-image record's ``settings`` (empty for a record written
    before records carried them), the counted work (``tflop``, ``tflop_per_iteration``) and the
    batch composition (``batch_image_ids``: the images optimized together)."""
    settings = record.get("settings") or {}
    out = {f"setting_{k}": _cell(settings.get(k)) for k in SETTING_COLUMNS}
    work = record.get("counted_work") or {}
    out.update(tflop=work.get("tflop"), tflop_per_iteration=work.get("tflop_per_iteration"))
    ids = (record.get("batch") or {}).get("image_ids")
    out["batch_image_ids"] = None if ids is None else " ".join(ids)
    return out


def _cell(value):
    return json.dumps(value, sort_keys=True) if isinstance(value, (dict, list)) else value


def per_image_table(records: Sequence[str | Path], results: str | Path, lpips_nets: dict) -> pd.DataFrame:
    """One row per per-image record of one arm (in the order given: the plan's): status, metrics
    of its PNG vs the original, the job's records of the image. ``results``: the results folder
    that holds the arm's PNGs and the originals (layout)."""
    rows = []
    for path in records:
        record = read_json(path)
        arm, split, image_id = record["arm"], record["split"], record["image_id"]
        row = {"dataset": arm, "split": split, "image_id": image_id, "status": record["status"], "reason": record.get("reason"), "failure_kind": failure_kind(record)}
        row.update(settings_columns(record))
        if record["status"] == "ok":
            pred = read_rgb(layout.dataset_png_dir(results, arm) / split / f"{image_id}.png")
            ref = read_rgb(layout.original_png(results, split, image_id))
            row.update(image_metrics(pred, ref, lpips_nets))
            row.update(visual_metrics(pred, ref))
            row.update({k: record.get(k) for k in RECORD_COLUMNS})
            row["retried"] = bool(record.get("retry"))  # the non-convergence retry ran (optimizer.optimize_with_retry)
            row.update({f"batch_{k}": v for k, v in (record.get("batch") or {}).items() if k != "image_ids"})
            row["initial_psnr"] = record["initial"]["psnr"]
            row["loss_initial"] = record.get("initial_loss")
            row["loss_best"] = record.get("best_loss")
        rows.append(row)
    return pd.DataFrame(rows)


def per_image_status(records: Sequence[str | Path]) -> pd.DataFrame:
    """Status of each image of one arm from its per-image records (no metrics computed)."""
    rows = []
    for path in records:
        record = read_json(path)
        rows.append({"dataset": record["arm"], "split": record["split"], "image_id": record["image_id"], "status": record["status"]})
    return pd.DataFrame(rows)


def evaluate_dataset(records: Sequence[str | Path], out_table: str | Path, *, results: str | Path, lpips_nets: Sequence[str],
                     lpips_random_trunk: bool, device: Mapping, log: Callable[[str], None] = print) -> pd.DataFrame:
    """The evaluate_dataset job: per_image_table of one arm's ``records`` written to ``out_table``
    (CSV); ``device``: what acquire_device takes (workflow.analysis_settings.device_request)."""
    with acquire_device(**device) as dev:
        nets = {net: lpips_network(net, random_trunk=lpips_random_trunk, device=dev) for net in lpips_nets}
        table = per_image_table(records, results, nets)
    with atomic_path(out_table) as tmp:
        table.to_csv(tmp, index=False)
    arm = table["dataset"].iloc[0] if len(table) else "?"
    log(f"{arm}: {int((table['status'] == 'ok').sum())}/{len(table)} images evaluated")
    return table
