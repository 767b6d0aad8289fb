"""Per-image scoring: every image of a dataset against its preprocessed original.

Per image (on the published 8-bit PNGs, float64 in [0,1]): PSNR, SSIM, MSE, MAE, LPIPS-alex and
LPIPS-vgg (definitions in metrics.py), and the visual-quality metrics GMSD, mean CIEDE2000 and the
Laplacian-variance sharpness ratio (visual_quality.py), plus the job's records of the image.

The metric networks take the images in batches of up to ``batch_size`` of one shape
(:func:`shape_batches`, evaluation.batch_size): per image the numbers of one image at a time
(batch_image_metrics; float64 metrics to rounding, LPIPS to its float32 rounding). Batch 1, the
default, is image_metrics image by image; on a CPU larger batches cost more CPU time
(bench/evaluation.py, bench/README.md).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

import pandas as pd

from latentopt.compute.devices import acquire_device, torch_threads
from latentopt.workflow import layout
from latentopt.core.fileio import atomic_path, read_json
from latentopt.data.images import read_rgb
from latentopt.analysis.input_failures import failure_kind
from latentopt.metrics.image_metrics import batch_image_metrics
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


T = TypeVar("T")


def shape_batches(items: Iterable[tuple[Hashable, T]], batch_size: int, max_held: int) -> Iterator[list[T]]:
    """The items of ``(key, item)`` pairs grouped by key into batches of at most ``batch_size``,
    each key's items in their order. A batch is yielded once full; while more than ``max_held``
    (>= batch_size) items are held, the batch holding the oldest of them is yielded unfilled (many
    shapes never hold many images); what is left comes at the end, oldest first."""
    if batch_size < 1 or max_held < batch_size:
        raise ValueError(f"need 1 <= batch_size <= max_held, got {batch_size} and {max_held}")
    buckets: dict[Hashable, list[T]] = {}  # in the order of each bucket's oldest item
    held = 0
    for key, item in items:
        bucket = buckets.setdefault(key, [])
        bucket.append(item)
        held += 1
        if len(bucket) == batch_size:
            held -= batch_size
            yield buckets.pop(key)
        elif held > max_held:
            oldest = buckets.pop(next(iter(buckets)))
            held -= len(oldest)
            yield oldest
    yield from buckets.values()


def _ok_images(records: Sequence[dict], results: str | Path) -> Iterator[tuple[tuple, tuple]]:
    """(shape, (position, PNG, original)) of each ok record, read one at a time."""
    for i, record in enumerate(records):
        if record["status"] == "ok":
            arm, split, image_id = record["arm"], record["split"], record["image_id"]
            pred = read_rgb(layout.dataset_png_dir(results, arm) / split / f"{image_id}.png")
            ref = read_rgb(layout.original_png(results, split, image_id))
            yield pred.shape, (i, pred, ref)


def image_scores(records: Sequence[dict], results: str | Path, lpips_nets: Mapping, batch_size: int) -> dict[int, dict]:
    """Metrics of the PNG of each ok record vs its original by the record's position: the metric
    networks' (batch_image_metrics) on batches of up to ``batch_size`` images of one shape (at
    most 2 x batch_size images held at once), then visual_metrics of each image."""
    scores = {}
    for batch in shape_batches(_ok_images(records, results), batch_size, max_held=2 * batch_size):
        positions, preds, refs = zip(*batch)
        for i, pred, ref, metrics in zip(positions, preds, refs, batch_image_metrics(preds, refs, lpips_nets)):
            scores[i] = {**metrics, **visual_metrics(pred, ref)}
    return scores


def per_image_table(records: Sequence[str | Path], results: str | Path, lpips_nets: Mapping, *, batch_size: int = 1) -> pd.DataFrame:
    """One row per per-image record of one arm (in the order given: the plan's): status, metrics
    of its PNG vs the original, the job's records of the image. ``results``: the results folder
    that holds the arm's PNGs and the originals (layout). ``batch_size``: images of one shape the
    metric networks take at once (1: one image at a time; the rows are the same either way)."""
    loaded = [read_json(path) for path in records]
    scores = image_scores(loaded, results, lpips_nets, batch_size)
    rows = []
    for i, record in enumerate(loaded):
        row = {"dataset": record["arm"], "split": record["split"], "image_id": record["image_id"], "status": record["status"],
               "reason": record.get("reason"), "failure_kind": failure_kind(record)}
        row.update(settings_columns(record))
        if record["status"] == "ok":
            row.update(scores[i])
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
                     lpips_random_trunk: bool, batch_size: int, threads: int, device: Mapping,
                     log: Callable[[str], None] = print) -> pd.DataFrame:
    """The evaluate_dataset job: per_image_table of one arm's ``records`` written to ``out_table``
    (CSV), the metric networks taking ``batch_size`` images at once (evaluation.batch_size), torch
    on ``threads`` intra-op threads (the job's); ``device``: what acquire_device takes
    (workflow.analysis_settings.device_request)."""
    with torch_threads(threads), acquire_device(**device) as dev:
        nets = {net: lpips_network(net, random_trunk=lpips_random_trunk, device=dev) for net in lpips_nets}
        table = per_image_table(records, results, nets, batch_size=batch_size)
    with atomic_path(out_table) as tmp:
        table.to_csv(tmp, index=False)
    arm = table["dataset"].iloc[0] if len(table) else "?"
    log(f"{arm}: {int((table['status'] == 'ok').sum())}/{len(table)} images evaluated "
        f"(batches of up to {batch_size}, {threads} thread{'s' if threads != 1 else ''})")
    return table
