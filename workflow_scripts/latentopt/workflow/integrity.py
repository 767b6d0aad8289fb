"""What a results folder already holds is taken as done only if it still verifies.

Checked before planning (the Snakefile calls :func:`verify_results` in the driver, before the DAG is
built; dry runs and ``--summary`` included, nothing is written but the hash cache):

  * each source image, by content: its sha256 against the ``source_sha256`` of its preparation
    record (always hashed in full: a copy with preserved times, a restored backup or ``rsync -t``
    keeps the modification time while the content changed);
  * each prepared reference PNG against the record's ``sha256``;
  * each per-image record: its JSON parses and has a status, its ``.pt`` matches ``pt_sha256``;
  * each per-loss dataset: its ``.pt`` and every PNG of its tree against the dataset manifest
    (``<arm>_dataset/manifest.json``, see latentopt.data.datasets), and no PNG is missing or extra.

Outputs (not sources) are hashed in full only when their size, mtime or ctime differ from the hash
cache ``results_dir/.integrity/hash_cache.json``; ``LATENTOPT_VERIFY=full`` hashes everything
(a bit flip that leaves size and times unchanged, e.g. silent disk corruption, is only seen then).

A file that does not verify is reported and its job is rerun (as ``--forcerun`` would); Snakemake
then reruns what depends on it. Nothing else is redone.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from latentopt.workflow import layout
from latentopt.core.fileio import read_json, sha256_file, write_json
from latentopt.workflow.sources import source_sha256

CACHE_NAME = Path(".integrity") / "hash_cache.json"
FULL_ENV = "LATENTOPT_VERIFY"


@dataclass(frozen=True)
class Finding:
    """A declared output whose job must run again, and why."""

    output: Path
    reason: str


class HashCache:
    """sha256 of files under ``root``, trusted while (size, mtime, ctime) are unchanged."""

    def __init__(self, root: str | Path, full: bool = False):
        self.root = Path(root)
        self.path = self.root / CACHE_NAME
        self.full = full
        self.hashed = 0
        self.entries: dict[str, list] = {}
        if not full:
            try:
                self.entries = dict(read_json(self.path).get("files", {}))
            except (OSError, ValueError, AttributeError):
                self.entries = {}

    def _key(self, path: Path) -> str:
        try:
            return str(path.relative_to(self.root))
        except ValueError:
            return str(path)

    def sha256(self, path: str | Path) -> str:
        """The file's sha256 (raises OSError when it cannot be read)."""
        path = Path(path)
        st = os.stat(path)
        stamp = [st.st_size, st.st_mtime_ns, st.st_ctime_ns]
        key = self._key(path)
        cached = self.entries.get(key)
        if cached and cached[:3] == stamp:
            return cached[3]
        digest = sha256_file(path)
        self.hashed += 1
        self.entries[key] = [*stamp, digest]
        return digest

    def save(self) -> bool:
        """Write the cache; False where the folder cannot be written (a read-only results folder)."""
        if not self.root.is_dir():
            return False
        try:
            write_json(self.path, {"format": "latentopt-hash-cache/1", "files": self.entries})
            return True
        except OSError:
            return False


def _record(path: Path, required: str = "status") -> tuple[dict | None, str | None]:
    try:
        record = read_json(path)
    except (OSError, ValueError) as exc:
        return None, f"{path} cannot be read ({exc})"
    if not isinstance(record, dict) or required not in record:
        return None, f"{path} is not a complete record"
    return record, None


def _matches(cache: HashCache, path: Path, expected: str | None, what: str) -> str | None:
    try:
        digest = cache.sha256(path)
    except OSError as exc:
        return f"{what} {path} cannot be read ({exc.strerror or exc})"
    if digest != expected:
        return f"{what} {path} does not match its recorded checksum"
    return None


def check_prepared(results: Path, entry, cache: HashCache) -> str | None:
    """Why the preparation of ``entry`` must be redone, or None when it verifies."""
    path = layout.prepared_record(results, entry.split, entry.image_id)
    record, problem = _record(path)
    if problem:
        return problem
    if record.get("source_sha256") != source_sha256(entry.path):
        return f"source {entry.path} changed since it was prepared (sha256 differs)"
    if record["status"] == "ok":
        return _matches(cache, layout.original_png(results, entry.split, entry.image_id), record.get("sha256"), "reference")
    return None


def check_per_image(results: Path, arm: str, entry, cache: HashCache) -> str | None:
    """Why the per-image outputs of ``entry`` in ``arm`` must be redone, or None."""
    json_path = layout.per_image(results, arm, entry.split, entry.image_id, "json")
    record, problem = _record(json_path)
    if problem:
        return problem
    return _matches(cache, layout.per_image(results, arm, entry.split, entry.image_id, "pt"), record.get("pt_sha256"), "per-image file")


def check_dataset(results: Path, arm: str, cache: HashCache) -> str | None:
    """Why the dataset of ``arm`` must be rebuilt (a file missing, changed or extra), or None."""
    manifest_path = layout.dataset_manifest(results, arm)
    manifest, problem = _record(manifest_path, required="files")
    if problem:
        return problem
    root = layout.arm_dir(results, arm)
    files = manifest.get("files", {})
    for rel, digest in files.items():
        problem = _matches(cache, root / rel, digest, "dataset file")
        if problem:
            return problem
    png_dir = layout.dataset_png_dir(results, arm)
    present = {p.relative_to(root).as_posix() for p in png_dir.rglob("*.png")} if png_dir.is_dir() else set()
    extra = sorted(present - set(files))
    if extra:
        return f"dataset {arm}: {root / extra[0]} is not in {manifest_path.name}"
    return None


def verify_results(config: dict, plan, log: Callable[[str], None] = print, full: bool | None = None) -> list[Finding]:
    """Check everything a run holds (see the module docstring); return the outputs to redo."""
    results = Path(config["results_dir"])
    if not results.is_dir():
        return []
    full = os.environ.get(FULL_ENV, "").lower() == "full" if full is None else full
    cache = HashCache(results, full=full)
    findings: list[Finding] = []
    entries = [e for split_entries in plan.splits.values() for e in split_entries]
    redone: set[tuple[str, str]] = set()
    for entry in entries:
        if layout.prepared_record(results, entry.split, entry.image_id).exists():
            problem = check_prepared(results, entry, cache)
            if problem:
                findings.append(Finding(layout.prepared_record(results, entry.split, entry.image_id), problem))
                redone.add((entry.split, entry.image_id))  # its jobs rerun downstream anyway
    for arm in plan.arms:
        for entry in entries:
            json_path = layout.per_image(results, arm, entry.split, entry.image_id, "json")
            if (entry.split, entry.image_id) in redone or not json_path.exists():
                continue
            problem = check_per_image(results, arm, entry, cache)
            if problem:
                findings.append(Finding(json_path, problem))
        if layout.dataset_manifest(results, arm).exists():
            problem = check_dataset(results, arm, cache)
            if problem:
                findings.append(Finding(layout.dataset_manifest(results, arm), problem))
    cache.save()
    for f in findings:
        log(f"integrity: redoing the job of {f.output}: {f.reason}")
    return findings
