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
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from .config import arm_settings, synthetic_parts
from .fileio import atomic_path, read_json
from .images import write_png
from .provenance import versions

FORMAT = "latentopt-dataset/1"


def build_dataset(config: dict, arm: str, records: list[Path], pts: list[Path], png_dir: Path, out_file: Path) -> dict:
    samples, failed, model_info = [], [], None
    for json_path, pt_path in zip(records, pts):
        record = read_json(json_path)
        if record["status"] != "ok":
            failed.append({"split": record["split"], "image_id": record["image_id"], "reason": record.get("reason")})
            continue
        payload = torch.load(pt_path, map_location="cpu", weights_only=True)
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
        "experiment_id": config["experiment_id"],
        "arm": arm,
        "settings": arm_settings(config, arm),
        "model": model_info,
        "synthetic": synthetic_parts(config),
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

