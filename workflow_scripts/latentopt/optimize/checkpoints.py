"""Resumable state of one optimization job, kept outside Snakemake's declared outputs.

Snakemake deletes the declared outputs of a job before it (re)runs, so a job killed half-way would
lose the images it had already finished. The store keeps, under results/.checkpoints/<arm>/<split>/:
  batch-<key>.pt      the optimizer state of a running batch, saved every checkpoint_interval steps;
  done/<image>.{pt,json}  hard links to the per-image outputs already written by this job,
  done/<image>.reference  the checksum of the prepared reference they were computed from.
Everything is tagged with the job's fingerprint (settings, model weights, library version) and a
finished image with its reference: state written under other settings or for another reference is
ignored, never mixed in. A job leaves its finished images in the store when it ends: a driver
stopped while the job ran (SIGINT, SIGKILL) marks the job incomplete even when it finished, and the
resume runs it again, which then restores them. The driver empties the store of a job once a run
that holds it has succeeded (latentopt.workflow.stopping.release_finished), so a later deletion or
--forcerun recomputes.
"""

from __future__ import annotations

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

    def keep_done(self, image_id: str, pt_path: Path, json_path: Path, reference_sha256: str) -> None:
        self._done(image_id, "reference").unlink(missing_ok=True)  # first: no stale pairing meanwhile
        link_or_copy(pt_path, self._done(image_id, "pt"))
        link_or_copy(json_path, self._done(image_id, "json"))
        with atomic_path(self._done(image_id, "reference")) as tmp:
            Path(tmp).write_text(reference_sha256)

    def restore_done(self, image_id: str, pt_path: Path, json_path: Path, reference_sha256: str) -> bool:
        """Put a finished image back in place if its record matches this job and this reference, and
        its .pt verifies."""
        pt, js, ref = self._done(image_id, "pt"), self._done(image_id, "json"), self._done(image_id, "reference")
        if not (pt.is_file() and js.is_file() and ref.is_file()):
            return False
        try:
            record = read_json(js)
            ok = (record.get("fingerprint") == self.fingerprint and ref.read_text() == reference_sha256
                  and record.get("pt_sha256") == sha256_file(pt))
        except (OSError, ValueError):
            ok = False
        if not ok or record.get("status") != "ok":
            return False
        link_or_copy(pt, pt_path)
        link_or_copy(js, json_path)
        return True
