"""Resumable state of a running batch, kept outside Snakemake's declared outputs.

Under results/.checkpoints/<arm>/<split>/: batch-<key>.pt, the optimizer state of a running batch,
saved every checkpoint_interval steps and tagged with the job's fingerprint (settings, model weights,
library version): state written under other settings is ignored, never mixed in; dropped once the
batch is written. The images a job finished need no store: they are not declared outputs (the
chunk's manifest is, latentopt.workflow.chunks), so Snakemake never deletes them, and a rerun job
restores each one in place (latentopt.optimize.records.restorable).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from latentopt.core.fileio import atomic_path, remove_with_record


class CheckpointStore:
    def __init__(self, folder: str | Path, fingerprint: str):
        self.folder = Path(folder)
        self.fingerprint = fingerprint

    # -- optimizer state of a running batch -------------------------------------------------
    def _batch_path(self, image_ids: list[str]) -> Path:
        key = hashlib.sha256(("|".join(image_ids) + self.fingerprint).encode()).hexdigest()[:20]
        return self.folder / f"batch-{key}.pt"

    def save_batch(self, image_ids: list[str], state: dict) -> None:
        with atomic_path(self._batch_path(image_ids)) as tmp:
            torch.save({"fingerprint": self.fingerprint, "image_ids": image_ids, "state": state}, tmp)

    def load_batch(self, image_ids: list[str]) -> dict | None:
        path = self._batch_path(image_ids)
        if not path.is_file():
            return None
        try:
            saved = torch.load(path, map_location="cpu", weights_only=False)
        except Exception:  # a checkpoint that cannot be read is discarded, never trusted
            path.unlink(missing_ok=True)
            return None
        if saved.get("fingerprint") != self.fingerprint or saved.get("image_ids") != image_ids:
            return None
        return saved["state"]

    def drop_batch(self, image_ids: list[str]) -> None:
        remove_with_record(self._batch_path(image_ids))
