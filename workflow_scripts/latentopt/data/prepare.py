"""Preparation of the evaluation references: read, convert, preprocess, write lossless PNGs.

Each record holds the source's sha256 (None when it cannot be opened at all): planning compares it
with the source as it is now (latentopt.workflow.integrity), so a source whose content changed is prepared
again whatever its modification time says. The source is read once: the checksum is of the very bytes
that were decoded, so a source replaced while it is prepared cannot leave a reference of the old
content under the new file's checksum.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

from latentopt.workflow import layout
from latentopt.core.fileio import sha256_file, stat_stamp, write_json
from latentopt.data.images import ImageReadError, preprocess, read_rgb, write_png
from latentopt.workflow.chunks import write_manifest
from latentopt.workflow.sources import ImageEntry


def prepare_image(entry: ImageEntry, pre: dict, results: str) -> dict:
    """Write <results>/original_bsds500/<split>/<id>.png preprocessed as ``pre`` (the validated
    ``preprocess`` settings) and return the preparation record. An unreadable image yields a record
    with status 'failed' and the reason (no exception)."""
    record = {"image_id": entry.image_id, "split": entry.split, "source": str(entry.path)}
    try:
        data = Path(entry.path).read_bytes()
    except OSError as exc:  # a broken link, a permission: nothing was read
        return {**record, "status": "failed", "failure_kind": "input", "reason": f"cannot read image {entry.path}: {exc}",
                "source_sha256": None}
    digest = hashlib.sha256(data).hexdigest()  # of the bytes decoded below, not of a second read
    try:
        rgb = read_rgb(entry.path, data=data)
        ref = preprocess(
            rgb,
            pre["mode"],
            multiple=pre["multiple"],
            size=pre["size"],
            crop_box=tuple(pre["crop_box"]) if pre["crop_box"] else None,
            resize_filter=pre.get("resize_filter", "bicubic"),  # absent in configs that predate it
        )
    except ImageReadError as exc:
        return {**record, "status": "failed", "failure_kind": "input", "reason": str(exc), "source_sha256": digest}
    png = layout.original_png(results, entry.split, entry.image_id)
    write_png(png, ref)
    return {
        **record,
        "status": "ok",
        "source_size": [int(rgb.shape[0]), int(rgb.shape[1])],
        "size": [int(ref.shape[0]), int(ref.shape[1])],
        "preprocess": pre,
        "png": str(png),
        "sha256": sha256_file(png),
        "source_sha256": digest,
        "written_at": time.time(),
    }


def source_stat(path) -> list[int] | None:
    """(size, mtime, ctime) of a source as it is before it is read (None when it cannot be stat'ed):
    planning hashes the source again only where these changed (latentopt.workflow.integrity)."""
    try:
        return stat_stamp(path)
    except OSError:
        return None


def prepare_chunk(entries: list[ImageEntry], preprocess: dict, results_dir: str, manifest: str | None = None,
                  log=print) -> list[dict]:
    """Prepare each entry (:func:`prepare_image`) and write its record under ``results_dir``; then,
    given ``manifest``, the chunk's manifest (latentopt.workflow.chunks), last."""
    records, sources, images = [], {}, []
    for entry in entries:
        stat = source_stat(entry.path)  # before the read: a change after it shows in the next check
        record = prepare_image(entry, preprocess, results_dir)
        files = {"record": layout.prepared_record(results_dir, entry.split, entry.image_id)}
        write_json(files["record"], record)
        if record["status"] == "ok":
            files["png"] = layout.original_png(results_dir, entry.split, entry.image_id)
        else:
            log(f"FAILED {entry.split}/{entry.image_id}: {record['reason']}")
        sources[entry.image_id] = {"sha256": record["source_sha256"], "stat": stat, "path": str(entry.path)}
        images.append((entry.image_id, files))
        records.append(record)
    if manifest is not None:
        split = entries[0].split if entries else ""
        write_manifest(manifest, "prepare", split, images, extra={"preprocess": preprocess}, sources=sources)
    return records
