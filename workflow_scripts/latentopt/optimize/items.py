"""The images of an optimization job: each prepared reference read and verified (an :class:`Item`),
or a failure recorded without optimization (preparation failed, reference changed since planning)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from latentopt.core.fileio import read_json
from latentopt.data.images import Region, model_input, read_rgb
from latentopt.workflow import layout
from latentopt.workflow.integrity import reference_problem


@dataclass
class Item:
    image_id: str
    split: str
    reference: np.ndarray  # uint8 HxWx3, the evaluation reference
    model_input: np.ndarray  # uint8, what the encoder sees (padded for reflect_pad)
    region: Region
    record: dict


def failure(item: Item, reason: str, tb: str | None = None) -> dict:
    """The result of an image that could not be optimized (written like any other)."""
    return {"item": item, "status": "failed", "reason": reason, "traceback": tb}


def load_items(prepared: list[str | Path], split: str, image_ids: list[str], preprocess: dict,
               results_dir: str | Path, log) -> tuple[list[Item], list[dict]]:
    """Read each image's prepared record (``prepared``, the job's inputs, in the order of
    ``image_ids``) and its reference, verifying the reference's checksum (the check planning runs,
    :func:`latentopt.workflow.integrity.reference_problem`, under ``results_dir``); return the items
    and the failures. ``preprocess``: the arm's preprocess settings (mode, multiple)."""
    items, failures = [], []
    for image_id, record_path in zip(image_ids, prepared, strict=True):
        record = read_json(record_path)
        stub = Item(image_id, split, None, None, None, record)
        if record["status"] != "ok":
            failures.append({**failure(stub, f"preparation failed: {record['reason']}"), "failure_kind": "input"})
            continue
        png = layout.original_png(results_dir, split, image_id)
        data = {}  # read once: the bytes checked are the bytes decoded

        def digest(path):
            data["png"] = Path(path).read_bytes()
            return hashlib.sha256(data["png"]).hexdigest()

        problem = reference_problem(results_dir, split, image_id, record, sha256=digest)
        if problem:  # changed after planning: this image fails, its chunk-mates finish
            failures.append(failure(stub, f"{problem} (it changed after planning); the next run's check before "
                                          "planning moves it to quarantine and prepares it again"))
            continue
        reference = read_rgb(png, data=data["png"])
        inp, region = model_input(reference, preprocess["mode"], preprocess["multiple"])
        items.append(Item(image_id, split, reference, inp, region, record))
    return items, failures


def group_by_shape(items: list[Item]) -> list[list[Item]]:
    groups: dict[tuple, list[Item]] = {}
    for item in items:
        groups.setdefault(item.model_input.shape, []).append(item)
    return list(groups.values())
