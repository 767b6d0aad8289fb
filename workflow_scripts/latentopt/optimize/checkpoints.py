"""Resumable state of one optimization job, kept outside Snakemake's declared outputs.

Snakemake deletes the declared outputs of a job before it (re)runs, so a job killed half-way would
lose the images it had already finished. The store keeps, under results/.checkpoints/<arm>/<split>/:
  batch-<key>.pt      the optimizer state of a running batch, saved every checkpoint_interval steps;
  done/<image>.{pt,json}  hard links to the per-image outputs already written by this job.
Everything is tagged with the job's fingerprint (settings, model weights, reference checksum,
library version): state written under other settings is ignored, never mixed in. When the job
ends successfully the store is emptied, so a later deletion of an output recomputes that image.
"""

from __future__ import annotations

import contextlib
import hashlib
from pathlib import Path

import torch

from latentopt.core.fileio import atomic_path, link_or_copy, read_json, sha256_file


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
        self._batch_path(image_ids).unlink(missing_ok=True)

    # -- images finished by this job ------------------------------------------------------------
    def _done(self, image_id: str, ext: str) -> Path:
        return self.folder / "done" / f"{image_id}.{ext}"

    def keep_done(self, image_id: str, pt_path: Path, json_path: Path) -> None:
        link_or_copy(pt_path, self._done(image_id, "pt"))
        link_or_copy(json_path, self._done(image_id, "json"))

    def restore_done(self, image_id: str, pt_path: Path, json_path: Path) -> bool:
        """Put a finished image back in place if its record matches this job and verifies."""
        pt, js = self._done(image_id, "pt"), self._done(image_id, "json")
        if not (pt.is_file() and js.is_file()):
            return False
        try:
            record = read_json(js)
            ok = record.get("fingerprint") == self.fingerprint and record.get("pt_sha256") == sha256_file(pt)
        except (OSError, ValueError):
            ok = False
        if not ok or record.get("status") != "ok":
            return False
        link_or_copy(pt, pt_path)
        link_or_copy(js, json_path)
        return True

    def clear(self, image_ids: list[str]) -> None:
        for image_id in image_ids:
            for ext in ("pt", "json"):
                self._done(image_id, ext).unlink(missing_ok=True)
        for path in (self.folder / "done", self.folder):
            with contextlib.suppress(OSError):
                path.rmdir()
