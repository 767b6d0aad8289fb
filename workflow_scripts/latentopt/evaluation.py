"""Evaluation of every dataset against the preprocessed originals, and its aggregation.

Per image (on the published 8-bit PNGs, float64 in [0,1]): PSNR, SSIM, MSE, MAE, LPIPS-alex and
LPIPS-vgg (definitions in metrics.py). Per dataset: FID and KID against the originals (fid.py),
overall and per split. Aggregation writes the seed's three JSON files:

  cross_evaluation_matrix.json  dataset x split x metric -> mean, std, median, 95% CI, n
                                (+ FID with its bootstrap CI, KID)
  statistical_analysis.json     every pair of datasets, per metric and split: paired Wilcoxon and
                                t-test (Holm-corrected), effect sizes, bootstrap CI of the mean
                                difference; FID differences with paired-bootstrap CIs; Spearman
                                correlations of per-image improvements and time; success criteria
  performance_summary.json      per loss: images ok/failed (unreadable inputs counted apart, see
                                latentopt.input_failures), times, iterations, convergence, memory
and per_image_metrics.csv with one row per (dataset, image).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from . import layout
from .config import synthetic_parts
from .fileio import read_json
from .images import read_rgb
from .input_failures import failure_kind, readable
from .input_failures import summary as input_failure_summary
from .layout import BASELINE

METRICS = ("psnr", "ssim", "lpips_alex", "lpips_vgg", "mse", "mae")
HIGHER_IS_BETTER = {"psnr": True, "ssim": True, "lpips_alex": False, "lpips_vgg": False, "mse": False, "mae": False, "time_s": False, "fid": False, "kid": False}
# The eigenvalue route gives pytorch-fid's number (to 1e-5 relative, tests/test_fid.py) far faster,
# which the bootstrap needs.
FRECHET_METHOD = "exact"
RECORD_COLUMNS = ("time_s", "optimization_time_s", "iterations", "converged_at", "stop_reason", "peak_memory_mb", "device", "batch_size")


def per_image_table(config: dict, plan, arm: str, lpips_nets: dict) -> pd.DataFrame:
    """One row per image of ``arm``: status, metrics of its PNG vs the original, job records."""
    from .metrics import image_metrics

    results = config["results_dir"]
    rows = []
    for split, entries in plan.splits.items():
        for entry in entries:
            record = read_json(layout.per_image(results, arm, split, entry.image_id, "json"))
            row = {"dataset": arm, "split": split, "image_id": entry.image_id, "status": record["status"], "reason": record.get("reason"), "failure_kind": failure_kind(record)}
            if record["status"] == "ok":
                pred = read_rgb(layout.dataset_png_dir(results, arm) / split / f"{entry.image_id}.png")
                ref = read_rgb(layout.original_png(results, split, entry.image_id))
                row.update(image_metrics(pred, ref, lpips_nets))
                row.update({k: record.get(k) for k in RECORD_COLUMNS})
                row["initial_psnr"] = record["initial"]["psnr"]
                row["loss_initial"] = record.get("initial_loss")
                row["loss_best"] = record.get("best_loss")
            rows.append(row)
    return pd.DataFrame(rows)


def feature_table(paths: list[Path], keys: list[str], model, device: str) -> dict:
    from .fid import inception_features

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


# ---------------------------------------------------------------------------------------------
# aggregation


def _aligned(feats: dict, keys: list[str]) -> np.ndarray:
    index = {k: i for i, k in enumerate(feats["keys"].tolist())}
    return feats["features"][[index[k] for k in keys]]


def _splits(table: pd.DataFrame) -> list[str]:
    return ["all", *sorted(table["split"].unique())]


def _subset(df: pd.DataFrame, split: str) -> pd.DataFrame:
    return df if split == "all" else df[df["split"] == split]


def cross_evaluation(config: dict, table: pd.DataFrame, features: dict, arms: list[str], calibrated: dict) -> dict:
    from .fid import fid_with_ci, kid
    from .statistics import summarize

    ev = config["evaluation"]
    metrics = [m for m in (*METRICS, "time_s") if m in table.columns]
    out = {}
    for arm in arms:
        ok = table[(table["dataset"] == arm) & (table["status"] == "ok")]
        out[arm] = {}
        for split in _splits(table):
            sub = _subset(ok, split)
            cell = {m: summarize(sub[m].to_numpy(dtype=float)) for m in metrics}
            if features and arm in features and len(sub) >= 2:
                keys = [f"{s}/{i}" for s, i in zip(sub["split"], sub["image_id"])]
                ref, gen = _aligned(features["original"], keys), _aligned(features[arm], keys)
                cell["fid"] = fid_with_ci(ref, gen, n_boot=ev["fid_n_boot"], seed=ev["seed"], method=FRECHET_METHOD)
                cell["kid"] = kid(ref, gen, seed=ev["seed"], paired=True)
            out[arm][split] = cell
    return {
        "metadata": _metadata(config, calibrated),
        "metrics": metrics + (["fid", "kid"] if features else []),
        "higher_is_better": HIGHER_IS_BETTER,
        "datasets": out,
    }


def _metadata(config: dict, calibrated: dict) -> dict:
    return {"experiment_id": config["experiment_id"], "synthetic": synthetic_parts(config), "calibrated": calibrated}


def _complete_images(table: pd.DataFrame, arms: list[str]) -> pd.DataFrame:
    """Images that succeeded in every dataset (paired analyses need all of them)."""
    ok = table[table["status"] == "ok"]
    counts = ok.groupby(["split", "image_id"])["dataset"].nunique()
    keep = counts[counts == len(arms)].index
    return ok.set_index(["split", "image_id"]).loc[keep].reset_index()


def statistical_analysis(config: dict, table: pd.DataFrame, features: dict, arms: list[str], cross: dict, calibrated: dict) -> dict:
    from .fid import fid_difference_ci
    from .statistics import pairwise_tests

    ev = config["evaluation"]
    paired = _complete_images(table, arms)
    tests, fid_diffs = {}, {}
    for metric in [m for m in (*METRICS, "time_s") if m in paired.columns]:
        tests[metric] = {}
        for split in _splits(paired):
            sub = _subset(paired, split)
            wide = sub.pivot_table(index=["split", "image_id"], columns="dataset", values=metric)
            if len(wide) < 2:
                continue
            tests[metric][split] = pairwise_tests({a: wide[a].to_numpy(dtype=float) for a in arms}, n_boot=ev["n_boot"], seed=ev["seed"])
    if features:
        for split in _splits(paired):
            sub = _subset(paired, split)
            keys = sorted({f"{s}/{i}" for s, i in zip(sub["split"], sub["image_id"])})
            if len(keys) < 2:
                continue
            ref = _aligned(features["original"], keys)
            rows = []
            for i, a in enumerate(arms):
                for b in arms[i + 1 :]:
                    d = fid_difference_ci(ref, _aligned(features[a], keys), _aligned(features[b], keys), n_boot=ev["fid_n_boot"], seed=ev["seed"], method=FRECHET_METHOD)
                    rows.append({"a": a, "b": b, **d})
            fid_diffs[split] = rows
    return {
        "metadata": {**_metadata(config, calibrated), "n_paired_images": int(len(paired) // max(1, len(arms)))},
        "tests": tests,
        "fid_differences": fid_diffs,
        "correlations": _correlations(table, arms),
        "success_criteria": success_criteria(config, table, arms, cross, tests),
    }


def _correlations(table: pd.DataFrame, arms: list[str]) -> dict:
    from .statistics import spearman_matrix

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
        cols["time_s"] = joined["time_s"].to_numpy(dtype=float)
        if len(joined) >= 3:
            out[arm] = spearman_matrix(cols)
    return out


def success_criteria(config: dict, table: pd.DataFrame, arms: list[str], cross: dict, tests: dict) -> dict:
    """The seed's quantitative criteria, evaluated per loss: pass/fail with the measured value."""
    crit = config["evaluation"]["success_criteria"]
    out = {}
    for arm in arms:
        if arm == BASELINE:
            continue
        rows = table[table["dataset"] == arm]
        read = readable(rows)  # unreadable inputs say nothing about the optimization
        rate = float((read["status"] == "ok").mean()) if len(read) else 0.0
        entry = {"success_rate": {"value": rate, "threshold": crit["min_success_rate"], "pass": rate >= crit["min_success_rate"], "of_readable_images": int(len(read))}}
        fid_arm = cross["datasets"][arm]["all"].get("fid")
        fid_base = cross["datasets"][BASELINE]["all"].get("fid")
        if fid_arm and fid_base and fid_base["fid"]:
            improvement = (fid_base["fid"] - fid_arm["fid"]) / fid_base["fid"]
            entry["fid_improvement"] = {"value": improvement, "threshold": crit["min_fid_improvement"], "pass": improvement >= crit["min_fid_improvement"]}
        significant = []
        for metric, by_split in tests.items():
            for row in by_split.get("all", []):
                if {row["a"], row["b"]} == {arm, BASELINE} and metric != "time_s":
                    significant.append({"metric": metric, "p_holm": row["p_wilcoxon_holm"], "better": _better(metric, row, arm)})
        ok_sig = [s for s in significant if s["p_holm"] is not None and s["p_holm"] < crit["alpha"] and s["better"]]
        entry["significance"] = {"value": [s["metric"] for s in ok_sig], "threshold": crit["alpha"], "detail": significant, "pass": bool(ok_sig)}
        hours = float(rows["time_s"].fillna(0).sum()) / 3600 if "time_s" in rows else 0.0
        entry["time_budget"] = {"value": hours, "threshold": crit["time_budget_hours"], "pass": hours <= crit["time_budget_hours"]}
        out[arm] = entry
    return out


def _better(metric: str, row: dict, arm: str) -> bool:
    diff = row["mean_diff"] if row["a"] == arm else -row["mean_diff"]
    return diff > 0 if HIGHER_IS_BETTER[metric] else diff < 0


def performance_summary(config: dict, table: pd.DataFrame, arms: list[str]) -> dict:
    from .statistics import summarize

    out = {}
    for arm in arms:
        rows = table[table["dataset"] == arm]
        ok = rows[rows["status"] == "ok"]
        failed = rows[rows["status"] != "ok"]
        total = float(ok["time_s"].sum()) if len(ok) else 0.0
        iters = ok["iterations"].to_numpy(dtype=float) if len(ok) else np.array([])
        converged = ok["converged_at"].notna() if len(ok) else pd.Series(dtype=bool)
        out[arm] = {
            "images": int(len(rows)),
            "succeeded": int(len(ok)),
            "failed": int(len(failed)),
            "failed_images": [{"split": s, "image_id": i, "reason": r} for s, i, r in zip(failed["split"], failed["image_id"], failed["reason"])],
            **input_failure_summary(rows),
            "total_time_s": total,
            "time_per_image_s": summarize(ok["time_s"].to_numpy(dtype=float)) if len(ok) else None,
            "iterations": summarize(iters) if len(ok) else None,
            "converged_fraction": float(converged.mean()) if len(ok) else None,
            "convergence_iteration": summarize(ok["converged_at"].dropna().to_numpy(dtype=float)) if converged.any() else None,
            "peak_memory_mb": float(ok["peak_memory_mb"].max()) if len(ok) else None,
            "devices": sorted(ok["device"].dropna().unique().tolist()) if len(ok) else [],
            "throughput_images_per_hour": (len(ok) / total * 3600) if total > 0 else None,
            "image_iterations_per_s": (float(iters.sum()) / total) if total > 0 else None,
        }
    return {"metadata": {"experiment_id": config["experiment_id"], "synthetic": synthetic_parts(config)}, "datasets": out}


def per_image_status(config: dict, plan, arm: str) -> pd.DataFrame:
    """Status of each image of ``arm`` from its per-image record (no metrics computed)."""
    rows = []
    for split, entries in plan.splits.items():
        for e in entries:
            record = read_json(layout.per_image(config["results_dir"], arm, split, e.image_id, "json"))
            rows.append({"dataset": arm, "split": split, "image_id": e.image_id, "status": record["status"]})
    return pd.DataFrame(rows)


def load_features(paths: list[str | Path]) -> tuple[dict, dict]:
    """{name: {"keys", "features"}} and {name: calibrated} from inception_features outputs."""
    feats, calibrated = {}, {}
    for path in paths:
        with np.load(path) as data:
            name = Path(path).stem
            feats[name] = {"keys": data["keys"], "features": data["features"]}
            calibrated[name] = bool(data["calibrated"])
    return feats, calibrated


def summarize_all(config: dict, tables: list[str | Path], feature_paths: list[str | Path], outputs: dict) -> None:
    """Write the three JSON files and the per-image CSV (``outputs`` keys: cross, stats,
    performance, table)."""
    from .fileio import atomic_path, write_json

    table = pd.concat([pd.read_csv(p) for p in tables], ignore_index=True)
    arms = [Path(p).stem for p in tables]
    features, calibrated = load_features(feature_paths)
    calibrated = {"inception": all(calibrated.values()) if calibrated else None,
                  "lpips": not config["metric_networks"]["lpips_random_trunk"]}
    cross = cross_evaluation(config, table, features, arms, calibrated)
    write_json(outputs["cross"], cross)
    write_json(outputs["stats"], statistical_analysis(config, table, features, arms, cross, calibrated))
    write_json(outputs["performance"], performance_summary(config, table, arms))
    with atomic_path(outputs["table"]) as tmp:
        table.to_csv(tmp, index=False)
