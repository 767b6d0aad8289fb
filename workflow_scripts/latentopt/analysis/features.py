"""Inception feature tables of the originals and of each dataset (keyed ``split/image_id``),
the inputs of FID and KID (fid.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from latentopt.workflow import layout
from latentopt.core.fileio import read_json


def feature_table(paths: list[Path], keys: list[str], model, device: str) -> dict:
    from latentopt.metrics.fid import inception_features

    feats = inception_features([str(p) for p in paths], model, device=device) if paths else np.zeros((0, 2048))
    return {"keys": np.array(keys), "features": feats.astype(np.float64)}


def original_features(config: dict, plan, model, device: str) -> dict:
    results = config["results_dir"]
    keys, paths = [], []
    for split, entries in plan.splits.items():
        for e in entries:
            rec = read_json(layout.prepared_record(results, split, e.image_id))
            if rec["status"] == "ok":
                keys.append(f"{split}/{e.image_id}")
                paths.append(layout.original_png(results, split, e.image_id))
    return feature_table(paths, keys, model, device)


def dataset_features(config: dict, table: pd.DataFrame, model, device: str) -> dict:
    results = config["results_dir"]
    ok = table[table["status"] == "ok"]
    keys = [f"{s}/{i}" for s, i in zip(ok["split"], ok["image_id"])]
    paths = [layout.dataset_png_dir(results, a) / s / f"{i}.png" for a, s, i in zip(ok["dataset"], ok["split"], ok["image_id"])]
    return feature_table(paths, keys, model, device)


def load_features(paths: list[str | Path]) -> tuple[dict, dict]:
    """{name: {"keys", "features"}} and {name: calibrated} from inception_features outputs."""
    feats, calibrated = {}, {}
    for path in paths:
        with np.load(path) as data:
            name = Path(path).stem
            feats[name] = {"keys": data["keys"], "features": data["features"]}
            calibrated[name] = bool(data["calibrated"])
    return feats, calibrated
