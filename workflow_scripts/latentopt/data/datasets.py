"""Per-loss datasets: one PyTorch file plus a PNG tree, assembled from the per-image outputs.

``<arm>_dataset/pytorch/bsds500_optimized_<arm>.pt`` (``bsds500_baseline.pt`` for the baseline) is a
dict saved with torch.save:

    {"format": "latentopt-dataset/1",
     "metadata": {experiment_id, arm, settings, model (kind, source, weights_sha256, latent
                  convention), synthetic (list of random components; empty for real models),
                  versions, created_at, n_images, n_ok, failed: [{split, image_id, reason}]},
     "samples": [{"name", "split", "initial_latent", "optimized_latent" (CPU float32 tensors
                  [C,h,w]), "metrics": {"initial": {...}, "final": {...}}, "iterations",
                  "converged_at", "stop_reason", "time_s", "loss_history"}]}

Only images with status "ok" are samples; failed ones are listed in metadata["failed"].
Read it back with :func:`load_dataset`.

``<arm>_dataset/manifest.json`` (the rule's declared output, written last) holds the sha256 of the
``.pt`` and of every PNG, relative to ``<arm>_dataset/``. Only per-image files that match their
recorded checksum are read; an error names the file. The new ``.pt`` and PNG tree are written beside
the previous ones and swapped in only when complete, so a failed build leaves the previous dataset
as it was (Snakemake deletes only the manifest, and the next run rebuilds).
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import torch

from latentopt.core.fileio import atomic_path, read_json, sha256_file, write_json
from latentopt.data.images import write_png
from latentopt.core.provenance import versions
from latentopt.workflow.config import describe_synthetic

FORMAT = "latentopt-dataset/1"
MANIFEST_FORMAT = "latentopt-manifest/1"


class DatasetInputError(ValueError):
    """A per-image file that cannot be aggregated; the message names it."""


def read_verified(json_path: Path, pt_path: Path) -> tuple[dict, dict | None]:
    """A per-image record and, for a finished image, its payload, after checking the .pt against
    the record's pt_sha256. Raises DatasetInputError naming the file that does not verify."""
    try:
        record = read_json(json_path)
        status = record["status"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DatasetInputError(f"{json_path}: not a readable per-image record ({exc})") from exc
    if status != "ok":
        return record, None
    try:
        digest = sha256_file(pt_path)
    except OSError as exc:
        raise DatasetInputError(f"{pt_path}: cannot be read ({exc.strerror or exc})") from exc
    if digest != record.get("pt_sha256"):
        raise DatasetInputError(f"{pt_path}: does not match the checksum recorded in {json_path}; rerun the pipeline to redo this image")
    try:
        return record, torch.load(pt_path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch signals bad files with many types
        raise DatasetInputError(f"{pt_path}: cannot be loaded ({type(exc).__name__}: {exc})") from exc


def _swap_in(new: Path, target: Path) -> None:
    """Replace ``target`` (a folder) by ``new``: the old tree stays until the new one is in place."""
    old = target.with_name(f".{target.name}.old-{os.getpid()}")
    if target.exists():
        os.replace(target, old)
    os.replace(new, target)
    shutil.rmtree(old, ignore_errors=True)


def build_dataset(arm: str, records: list[Path], pts: list[Path], png_dir: Path, out_file: Path, manifest: Path | None = None,
                  *, settings: dict, experiment_id: str, synthetic: dict) -> dict:
    """Write the dataset file and PNG tree of ``arm``, then (if given) its manifest. ``settings``:
    what the arm's optimization depended on (latentopt.workflow.config.arm_settings), ``synthetic``:
    which models are random or demo-only (latentopt.workflow.config.synthetic_spec, described
    here: after the demo model's training); both go into the dataset's metadata with
    ``experiment_id``."""
    provenance = {"experiment_id": experiment_id, "settings": settings, "synthetic": describe_synthetic(synthetic)}
    staging = png_dir.with_name(f".{png_dir.name}.new-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        metadata = _build(provenance, arm, records, pts, staging, out_file)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    staging.mkdir(parents=True, exist_ok=True)
    _swap_in(staging, png_dir)
    if manifest is not None:
        root = manifest.parent
        files = [out_file, *sorted(png_dir.rglob("*.png"))]
        write_json(manifest, {"format": MANIFEST_FORMAT, "arm": arm,
                              "files": {f.relative_to(root).as_posix(): sha256_file(f) for f in files}})
    return metadata


def _build(provenance: dict, arm: str, records: list[Path], pts: list[Path], png_dir: Path, out_file: Path) -> dict:
    samples, failed, model_info = [], [], None
    for json_path, pt_path in zip(records, pts):
        record, payload = read_verified(json_path, pt_path)
        if payload is None:
            failed.append({"split": record["split"], "image_id": record["image_id"], "reason": record.get("reason")})
            continue
        model_info = model_info or record.get("model")
        write_png(png_dir / record["split"] / f"{record['image_id']}.png", payload["decoded"].numpy())
        samples.append(
            {
                "name": record["image_id"],
                "split": record["split"],
                "initial_latent": payload["z0"].float(),
                "optimized_latent": payload["z"].float(),
                "loss_history": payload["loss_history"],
                "metrics": {"initial": record["initial"], "final": record["final"]},
                **{k: record.get(k) for k in ("iterations", "converged_at", "stop_reason", "time_s")},
            }
        )
    metadata = {
        "experiment_id": provenance["experiment_id"],
        "arm": arm,
        "settings": provenance["settings"],
        "model": model_info,
        "synthetic": provenance["synthetic"],
        "versions": versions(),
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "n_images": len(records),
        "n_ok": len(samples),
        "failed": failed,
    }
    with atomic_path(out_file) as tmp:
        torch.save({"format": FORMAT, "metadata": metadata, "samples": samples}, tmp)
    return metadata


def load_dataset(path: str | Path) -> dict:
    """Load a per-loss dataset written by :func:`build_dataset` (tensors on the CPU).

    >>> ds = load_dataset("results/psnr_dataset/pytorch/bsds500_optimized_psnr.pt")
    >>> ds["metadata"]["synthetic"], len(ds["samples"]), ds["samples"][0]["optimized_latent"].shape
    """
    data = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"{path} is not a {FORMAT} file")
    return data

