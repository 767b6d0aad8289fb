"""The cross-evaluation matrix: dataset x split x metric -> mean, std, median, 95% CI, n
(+ FID with its bootstrap CI, paired KID and standard KID), and the image-order helpers the
pairwise analysis shares. Every bootstrap over images draws from the sorted (split, image id)
order, so the same images and seed give the same replicates in every file."""

from __future__ import annotations

import numpy as np
import pandas as pd

from latentopt.workflow.analysis_settings import SummarySettings
from latentopt.workflow.metric_specs import EVALUATED_METRICS, HIGHER_IS_BETTER
from latentopt.metrics.fid import fid_with_ci, kid
from latentopt.analysis.statistics import MIN_N_INTERVAL, n_too_small, summarize

# The eigenvalue route gives pytorch-fid's number (to 1e-5 relative, tests/test_fid.py) far faster,
# which the bootstrap needs.
FRECHET_METHOD = "exact"


def aligned_features(feats: dict, keys: list[str]) -> np.ndarray:
    index = {k: i for i, k in enumerate(feats["keys"].tolist())}
    return feats["features"][[index[k] for k in keys]]


def split_names(table: pd.DataFrame) -> list[str]:
    return ["all", *sorted(table["split"].unique())]


def split_subset(df: pd.DataFrame, split: str) -> pd.DataFrame:
    return df if split == "all" else df[df["split"] == split]


def cross_evaluation(settings: SummarySettings, table: pd.DataFrame, features: dict, arms: list[str], calibrated: dict, *, synthetic: list[str] | None = None) -> dict:
    # Time is not summarized per image: images of one batch share its time (the batch is the
    # unit of cost analysis, performance_summary's batch_costs).
    metrics = [m for m in EVALUATED_METRICS if m in table.columns]
    out = {}
    for arm in arms:
        ok = table[(table["dataset"] == arm) & (table["status"] == "ok")]
        out[arm] = {}
        for split in split_names(table):
            sub = split_subset(ok, split)
            cell = {m: summarize(sub[m].to_numpy(dtype=float)) for m in metrics}
            if features and arm in features and len(sub) >= 2:
                keys = sorted_keys(sub)  # resampling keyed on sorted image ids (as in statistical_analysis)
                ref, gen = aligned_features(features["original"], keys), aligned_features(features[arm], keys)
                cell["fid"] = _fid_cell(fid_with_ci(ref, gen, n_boot=settings.fid_n_boot, seed=settings.seed, method=FRECHET_METHOD))
                cell["kid"] = {**kid(ref, gen, seed=settings.seed, paired=True), "n": len(keys), "n_too_small": n_too_small(len(keys))}
                cell["kid_unpaired"] = {**kid(ref, gen, seed=settings.seed, paired=False), "n": len(keys), "n_too_small": n_too_small(len(keys))}
            out[arm][split] = cell
    return {
        "metadata": run_metadata(settings, calibrated, synthetic),
        "metrics": metrics + (["fid", "kid"] if features else []),
        "min_n_interval": _min_n(),
        "higher_is_better": HIGHER_IS_BETTER,
        "datasets": out,
    }


def _min_n() -> int:
    return MIN_N_INTERVAL


def sorted_keys(sub: pd.DataFrame) -> list[str]:
    """``split/image_id`` of the rows, sorted: every bootstrap over images draws from this order,
    so the same images and seed give the same replicates in every output file."""
    return [f"{s}/{i}" for s, i in sorted(set(zip(sub["split"], sub["image_id"])))]


def _fid_cell(res: dict) -> dict:
    """fid_with_ci's result plus the unclipped lower bound (so a bound below 0 can be marked)
    and, below the minimum n, no interval at all."""
    out = dict(res)
    if out.get("ci95_low_raw") is not None and out.get("boot_bias") is not None:
        out["ci95_low_unclipped"] = out["ci95_low_raw"] - out["boot_bias"]
    out["n_too_small"] = n_too_small(out["n"])
    if out["n_too_small"]:
        out.update(ci95_low=None, ci95_high=None, ci95_low_unclipped=None)
    return out


def run_metadata(settings: SummarySettings, calibrated: dict, synthetic: list[str] | None = None) -> dict:
    """``synthetic``: settings.synthetic.parts() when already computed for this job (it reads the
    demo model's training summary)."""
    return {"experiment_id": settings.experiment_id, "synthetic": settings.synthetic.parts() if synthetic is None else synthetic, "calibrated": calibrated}
