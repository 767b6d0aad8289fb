"""Provenance sections of the report: autoencoder identity, dataset files, the packages that
render the report (the configuration shown and the metric networks are described when the workflow
is parsed: latentopt.workflow.analysis_settings)."""

from __future__ import annotations

import importlib.metadata
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd
import torch

from latentopt.workflow import layout
from latentopt.core.fileio import read_json
from latentopt.report.formatting import table

REPORT_PACKAGES = ("matplotlib", "jinja2", "markdown", "pyyaml")


def _version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def model_provenance(results: str | Path, table_df: pd.DataFrame, datasets: Sequence[str]) -> dict:
    """Autoencoder identity per dataset from the per-image records (all distinct values): the hub
    commit its weights came from (or why there is none), their sha256, dtype and devices."""
    rows, files = [], {}
    for d in datasets:
        seen = {}
        for split, image_id in table_df.loc[table_df["dataset"] == d, ["split", "image_id"]].itertuples(index=False):
            path = layout.per_image(results, d, split, image_id, "json")
            if not path.is_file():
                continue
            rec = read_json(path)
            model = rec.get("model") or {}
            if not model:
                continue
            revision = (model.get("weights_revision") or {}).get("text", "not recorded")
            key = (model.get("kind"), model.get("source"), revision, model.get("weights_sha256"), model.get("dtype"))
            seen.setdefault(key, set()).add(rec.get("device") or model.get("device") or "?")
            files.update(model.get("weight_files") or {})
        for (kind, source, revision, sha, dtype), devices in seen.items():
            rows.append([d, kind, source, revision, f"`{sha}`" if sha else "n/a", hash_basis(sha, files), dtype,
                         ", ".join(sorted(devices))])
    return {
        "table": table(["dataset", "kind", "source", "revision (hub commit)", "weights sha256", "hash of", "dtype",
                        "devices"], rows, ["l"] * 8) if rows else None,
        "files": [{"path": p, "sha256": s} for p, s in sorted(files.items())],
    }


def hash_basis(sha: str | None, files: Mapping[str, str]) -> str:
    """What the record's ``weights_sha256`` is a hash of: the weight files themselves (one file:
    its sha256; several: a hash over their hashes) or, where it matches none of them, the loaded
    state dict (every key, dtype, shape and tensor byte, autoencoders.state_dict_sha256), which
    identifies the weights whatever file format holds them, and so differs from the file hash."""
    if not sha:
        return "n/a"
    if sha in set(files.values()):
        return "the weight file's bytes"
    if files:
        return "the loaded state dict (keys, dtypes, shapes, tensor bytes), not the file: the file hashes are listed below"
    return "the loaded state dict (keys, dtypes, shapes, tensor bytes)"


def dataset_metadata(results: str | Path, datasets: Sequence[str], report_versions: Mapping) -> dict:
    """Per dataset file: creation time, image counts, and library versions recorded when the
    dataset was built where they differ from the versions the report was rendered with."""
    rows = []
    for d in datasets:
        path = layout.dataset_file(results, d)
        meta = _dataset_meta(path)
        if meta is None:
            rows.append([d, f"`{path.name}`", "missing/unreadable", "", ""])
            continue
        vers = meta.get("versions") or {}
        diff = {k: v for k, v in vers.items() if report_versions.get(k) != v}
        rows.append([d, f"`{path.name}`", meta.get("created_at", "n/a"), f"{meta.get('n_ok', 'n/a')}/{meta.get('n_images', 'n/a')}", ", ".join(f"{k} {v}" for k, v in diff.items()) or "same as below"])
    return table(["dataset", "file", "created", "ok/images", "library versions at build"], rows, ["l"] * 5)


def _dataset_meta(path: Path) -> dict | None:
    if not path.is_file():
        return None
    try:
        data = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # noqa: BLE001 - an unreadable file is reported, not fatal
        return None
    return data.get("metadata") if isinstance(data, dict) else None
