"""statistical_analysis.json: every pair of datasets, per metric and split: paired Wilcoxon and
t-test (Holm-corrected, with the smallest attainable p), effect sizes, bootstrap CI of the mean
difference; FID differences with paired-bootstrap CIs; FID/KID direction agreement; Spearman
correlations of per-image improvements and time; the success criteria (criteria.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from latentopt.workflow.layout import BASELINE
from latentopt.analysis.criteria import success_criteria
from latentopt.workflow.analysis_settings import SummarySettings
from latentopt.workflow.metric_specs import EVALUATED_METRICS, HIGHER_IS_BETTER, METRICS
from latentopt.analysis.summaries import FRECHET_METHOD, aligned_features, run_metadata, sorted_keys, split_names, split_subset
from latentopt.metrics.fid import fid_difference_ci
from latentopt.analysis.statistics import n_too_small, pairwise_tests, spearman_matrix


def _complete_images(table: pd.DataFrame, arms: list[str]) -> pd.DataFrame:
    """Images that succeeded in every dataset (paired analyses need all of them)."""
    ok = table[table["status"] == "ok"]
    counts = ok.groupby(["split", "image_id"])["dataset"].nunique()
    keep = counts[counts == len(arms)].index
    return ok.set_index(["split", "image_id"]).loc[keep].reset_index()


def statistical_analysis(settings: SummarySettings, table: pd.DataFrame, features: dict, arms: list[str], cross: dict, calibrated: dict, *, synthetic: list[str] | None = None) -> dict:
    paired = _complete_images(table, arms)
    tests, fid_diffs = {}, {}
    for metric in [m for m in EVALUATED_METRICS if m in paired.columns]:  # no per-image time tests (batch is the unit)
        tests[metric] = {}
        for split in split_names(paired):
            sub = split_subset(paired, split)
            wide = sub.pivot_table(index=["split", "image_id"], columns="dataset", values=metric)
            if len(wide) < 2:
                continue
            tests[metric][split] = pairwise_tests({a: wide[a].to_numpy(dtype=float) for a in arms}, n_boot=settings.n_boot, seed=settings.seed)
    if features:
        for split in split_names(paired):
            sub = split_subset(paired, split)
            keys = sorted_keys(sub)
            if len(keys) < 2:
                continue
            ref = aligned_features(features["original"], keys)
            rows = []
            for i, a in enumerate(arms):
                for b in arms[i + 1 :]:
                    d = fid_difference_ci(ref, aligned_features(features[a], keys), aligned_features(features[b], keys), n_boot=settings.fid_n_boot, seed=settings.seed, method=FRECHET_METHOD)
                    d["n_too_small"] = n_too_small(len(keys))
                    if d["n_too_small"]:
                        d.update(ci95_low=None, ci95_high=None, p_boot=None)
                    rows.append({"a": a, "b": b, **d})
            fid_diffs[split] = rows
    return {
        "metadata": {**run_metadata(settings, calibrated, synthetic), "n_paired_images": int(len(paired) // max(1, len(arms)))},
        "tests": tests,
        "fid_differences": fid_diffs,
        "correlations": _correlations(table, arms),
        "fid_kid_agreement": _fid_kid_agreement(cross, arms),
        "success_criteria": success_criteria(settings, table, arms, cross, tests, fid_diffs),
    }


def _correlations(table: pd.DataFrame, arms: list[str]) -> dict:
    base = table[(table["dataset"] == BASELINE) & (table["status"] == "ok")].set_index(["split", "image_id"])
    out = {}
    for arm in arms:
        if arm == BASELINE:
            continue
        ok = table[(table["dataset"] == arm) & (table["status"] == "ok")].set_index(["split", "image_id"])
        joined = ok.join(base, rsuffix="_base", how="inner")
        cols = {}
        for m in METRICS:
            if m in joined and f"{m}_base" in joined:
                cols[f"{m}_improvement"] = (joined[m] - joined[f"{m}_base"]).to_numpy(dtype=float) * (1 if HIGHER_IS_BETTER[m] else -1)
        if "time_s" in joined:
            cols["time_s"] = joined["time_s"].to_numpy(dtype=float)
        if len(joined) >= 3:
            out[arm] = spearman_matrix(cols)
    return out


def _fid_kid_agreement(cross: dict, arms: list[str]) -> dict:
    """Per loss arm: the sign of FID(arm) - FID(baseline) and of paired KID(arm) - KID(baseline)
    on all images; ``agree`` False flags FID and KID pointing in opposite directions."""
    out = {}
    if BASELINE not in arms:
        return out
    base = cross["datasets"][BASELINE]["all"]
    for arm in arms:
        cell = cross["datasets"][arm]["all"]
        if arm == BASELINE or not cell.get("fid") or not base.get("fid") or not cell.get("kid") or not base.get("kid"):
            continue
        d_fid = cell["fid"]["fid"] - base["fid"]["fid"]
        d_kid = cell["kid"]["kid_mean"] - base["kid"]["kid_mean"]
        out[arm] = {"fid_diff": d_fid, "kid_diff": d_kid, "agree": bool(np.sign(d_fid) == np.sign(d_kid)), "n": cell["fid"]["n"]}
    return out
