"""Chunk manifests: what Snakemake tracks of a job that writes one file (or two) per image.

A preparation job and an optimization job each handle one chunk of images (latentopt.workflow.plan)
and declare ONE output, their chunk's manifest, written last:

  prepared/chunks/<chunk>.json              the chunk's prepared records and reference PNGs
  <arm>_dataset/chunks/<chunk>.json         the chunk's per-image records (.json) and results (.pt)

A manifest lists, per image, every file the job wrote for it: its path relative to the results
folder and the sha256, size and mtime its writer recorded (latentopt.core.fileio); a preparation
manifest also holds each source's sha256 and its size, mtime and ctime when it was read, and the
preprocessing. The per-image files stay where they always were (latentopt.workflow.layout); they are
verified through their manifest when planning (latentopt.workflow.integrity: by size and mtime,
hashed where those changed or with LATENTOPT_VERIFY=full), so the planning cost grows with the
number of jobs, not of images. Jobs downstream take manifests as inputs and read the files they
list (:func:`listed`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from latentopt.core.fileio import read_json, record_of, recorded, write_json

FORMAT = "latentopt-chunk/1"
KINDS = ("prepare", "optimize")
ROLES = {"prepare": ("record", "png"), "optimize": ("json", "pt")}


def results_of(manifest: str | Path) -> Path:
    """The results folder a manifest belongs to (<results>/<folder>/chunks/<chunk>.json)."""
    return Path(manifest).parents[2]


def _entry(path: Path, results: Path) -> dict:
    rec = recorded(path)  # the writer's record (its own checksum, written with the file)
    if rec is None or not rec.same_stat(path):
        rec = record_of(path)
    return {"path": path.relative_to(results).as_posix(), "sha256": rec.sha256, "size": rec.size, "mtime_ns": rec.mtime_ns}


def write_manifest(manifest: str | Path, kind: str, split: str, images: Iterable[tuple[str, dict[str, Path]]],
                   extra: dict | None = None, sources: dict[str, dict] | None = None) -> dict:
    """Write the manifest of one chunk (atomically, with its own checksum record). ``images``:
    (image id, {role: file}) in the chunk's order, every file under the manifest's results folder;
    ``sources``: per image id, what a preparation job read (sha256 and the stat it had)."""
    if kind not in KINDS:
        raise ValueError(f"unknown chunk manifest kind {kind!r}")
    manifest = Path(manifest)
    results = results_of(manifest)
    body = []
    for image_id, files in images:
        item = {"id": image_id, "files": {role: _entry(Path(p), results) for role, p in files.items()}}
        if sources is not None:
            item["source"] = sources.get(image_id)
        body.append(item)
    data = {"format": FORMAT, "kind": kind, "split": split, "chunk": manifest.stem, **(extra or {}), "images": body}
    write_json(manifest, data)
    return data


def read_manifest(manifest: str | Path) -> dict:
    """A manifest's content; ValueError naming it when it is not one."""
    data = read_json(manifest)
    if not (isinstance(data, dict) and data.get("format") == FORMAT and isinstance(data.get("images"), list)
            and all(isinstance(i, dict) and isinstance(i.get("files"), dict) for i in data["images"])):
        raise ValueError(f"{manifest} is not a {FORMAT} manifest")
    return data


@dataclass(frozen=True)
class Listed:
    """One file a manifest lists: where it is and what its writer recorded."""

    image_id: str
    role: str
    path: Path
    sha256: str
    size: int
    mtime_ns: int

    def same_stat(self) -> bool:
        st = os.stat(self.path)
        return (st.st_size, st.st_mtime_ns) == (self.size, self.mtime_ns)


def entries(manifest: str | Path, data: dict | None = None) -> list[Listed]:
    """Every file a manifest lists, in its order (images, then roles)."""
    data = read_manifest(manifest) if data is None else data
    results = results_of(manifest)
    out = []
    for item in data["images"]:
        for role, f in item["files"].items():
            out.append(Listed(str(item["id"]), role, results / f["path"], f["sha256"], int(f["size"]), int(f["mtime_ns"])))
    return out


def _many(manifests: str | Path | Iterable[str | Path]) -> list[str | Path]:
    """One manifest (a rule's single named input is a str) or several."""
    return [manifests] if isinstance(manifests, (str, Path)) else list(manifests)


def listed(manifests: str | Path | Iterable[str | Path], role: str) -> list[str]:
    """The files of ``role`` (e.g. 'json', 'pt', 'record', 'png') the manifests list, in their order:
    what a job downstream reads (its inputs are the manifests)."""
    return [str(e.path) for m in _many(manifests) for e in entries(m) if e.role == role]


def by_image(manifests: str | Path | Iterable[str | Path], role: str) -> dict[str, str]:
    """{image id: file of ``role``} over the manifests."""
    return {e.image_id: str(e.path) for m in _many(manifests) for e in entries(m) if e.role == role}
