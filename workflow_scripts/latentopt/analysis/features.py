"""Inception feature tables of the originals and of each dataset (keyed ``split/image_id``),
the inputs of FID and KID (fid.py)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from latentopt.analysis.scoring import per_image_status
from latentopt.compute.devices import acquire_device
from latentopt.workflow import layout
from latentopt.core.fileio import atomic_path, read_json
from latentopt.metrics.inception import inception_features, load_inception


def feature_table(paths: list[Path], keys: list[str], model, device: str) -> dict:
    feats = inception_features([str(p) for p in paths], model, device=device) if paths else np.zeros((0, 2048))
    return {"keys": np.array(keys), "features": feats.astype(np.float64)}


def original_features(prepared: Sequence[str | Path], results: str | Path, model, device: str) -> dict:
    """Features of the originals of the prepared records ``prepared`` whose preparation succeeded."""
    keys, paths = [], []
    for path in prepared:
        rec = read_json(path)
        if rec["status"] == "ok":
            keys.append(f"{rec['split']}/{rec['image_id']}")
            paths.append(layout.original_png(results, rec["split"], rec["image_id"]))
    return feature_table(paths, keys, model, device)


def dataset_features(table: pd.DataFrame, results: str | Path, model, device: str) -> dict:
    """Features of the PNGs of the images of ``table`` (scoring.per_image_status) that succeeded."""
    ok = table[table["status"] == "ok"]
    keys = [f"{s}/{i}" for s, i in zip(ok["split"], ok["image_id"])]
    paths = [layout.dataset_png_dir(results, a) / s / f"{i}.png" for a, s, i in zip(ok["dataset"], ok["split"], ok["image_id"])]
    return feature_table(paths, keys, model, device)


def write_features(name: str, records: Sequence[str | Path], out: str | Path, *, results: str | Path, synthetic: bool,
                   device: Mapping, log: Callable[[str], None] = print) -> dict:
    """The inception_features job: the Inception features of the originals (``name`` 'original',
    ``records`` their prepared records) or of one arm's PNGs (``records`` its per-image records),
    written to ``out`` (.npz with keys, features and whether the network is calibrated)."""
    with acquire_device(**device) as dev:
        model, calibrated = load_inception(device=dev, synthetic=synthetic)
        if name == "original":
            feats = original_features(records, results, model, dev)
        else:
            feats = dataset_features(per_image_status(records), results, model, dev)
        with atomic_path(out) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, calibrated=calibrated, **feats)
    log(f"{name}: {len(feats['keys'])} images, calibrated={calibrated}")
    return feats


def load_features(paths: list[str | Path]) -> tuple[dict, dict]:
    """{name: {"keys", "features"}} and {name: calibrated} from inception_features outputs."""
    feats, calibrated = {}, {}
    for path in paths:
        with np.load(path) as data:
            name = Path(path).stem
            feats[name] = {"keys": data["keys"], "features": data["features"]}
            calibrated[name] = bool(data["calibrated"])
    return feats, calibrated
