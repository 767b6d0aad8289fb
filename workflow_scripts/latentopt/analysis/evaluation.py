"""Evaluation of every dataset against the preprocessed originals, and its aggregation.

Per image (on the published 8-bit PNGs, float64 in [0,1]): PSNR, SSIM, MSE, MAE, LPIPS-alex and
LPIPS-vgg (definitions in metrics.py), and the visual-quality metrics GMSD, mean CIEDE2000 and the
Laplacian-variance sharpness ratio (visual_quality.py). Per dataset: FID and KID against the originals (fid.py),
overall and per split. Aggregation writes the seed's three JSON files:

  cross_evaluation_matrix.json  dataset x split x metric -> mean, std, median, 95% CI, n
                                (+ FID with its bootstrap CI, paired KID and standard KID)
  statistical_analysis.json     every pair of datasets, per metric and split: paired Wilcoxon and
                                t-test (Holm-corrected, with the smallest attainable p), effect
                                sizes, bootstrap CI of the mean difference; FID differences with
                                paired-bootstrap CIs; FID/KID direction agreement; Spearman
                                correlations of per-image improvements and time; success
                                criteria, each a test with a decision rule (RULES)
  performance_summary.json      per loss: images ok/failed (unreadable inputs counted apart, see
                                latentopt.analysis.input_failures), times, iterations, convergence, memory,
                                batch-level costs and noise-gated cost comparisons
Every bootstrap over images draws from the sorted (split, image id) order, so the same images
and seed give the same replicates in every file.
and per_image_metrics.csv with one row per (dataset, image).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from latentopt.workflow import layout
from latentopt.workflow.config import synthetic_parts
from latentopt.core.fileio import read_json
from latentopt.data.images import read_rgb
from latentopt.analysis.input_failures import failure_kind, readable
from latentopt.analysis.input_failures import summary as input_failure_summary
from latentopt.workflow.layout import BASELINE
from latentopt.workflow.metric_specs import EVALUATED_METRICS, HIGHER_IS_BETTER, METRICS
# The eigenvalue route gives pytorch-fid's number (to 1e-5 relative, tests/test_fid.py) far faster,
# which the bootstrap needs.
FRECHET_METHOD = "exact"
# Images per split of the official BSDS500 release: the full plan the time budget is judged on
# when a run uses data.limit_per_split.
BSDS500_SPLIT_SIZES = {"train": 200, "val": 100, "test": 200}
RECORD_COLUMNS = ("time_s", "optimization_time_s", "iterations", "converged_at", "stop_reason", "peak_memory_mb", "device", "batch_size")


def per_image_table(config: dict, plan, arm: str, lpips_nets: dict) -> pd.DataFrame:
    """One row per image of ``arm``: status, metrics of its PNG vs the original, job records."""
    from latentopt.metrics.image_metrics import image_metrics
    from latentopt.metrics.visual_quality import visual_metrics

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
                row.update(visual_metrics(pred, ref))
                row.update({k: record.get(k) for k in RECORD_COLUMNS})
                row.update({f"batch_{k}": v for k, v in (record.get("batch") or {}).items()})
                row["initial_psnr"] = record["initial"]["psnr"]
                row["loss_initial"] = record.get("initial_loss")
                row["loss_best"] = record.get("best_loss")
            rows.append(row)
    return pd.DataFrame(rows)


def feature_table(paths: list[Path], keys: list[str], model, device: str) -> dict:
    from latentopt.metrics.inception import inception_features

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
    from latentopt.metrics.fid import fid_with_ci, kid
    from latentopt.analysis.statistics import MIN_N_INTERVAL, summarize

    ev = config["evaluation"]
    # Time is not summarized per image: images of one batch share its time (the batch is the
    # unit of cost analysis, performance_summary's batch_costs).
    metrics = [m for m in EVALUATED_METRICS if m in table.columns]
    out = {}
    for arm in arms:
        ok = table[(table["dataset"] == arm) & (table["status"] == "ok")]
        out[arm] = {}
        for split in _splits(table):
            sub = _subset(ok, split)
            cell = {m: summarize(sub[m].to_numpy(dtype=float)) for m in metrics}
            if features and arm in features and len(sub) >= 2:
                keys = _sorted_keys(sub)  # resampling keyed on sorted image ids (as in statistical_analysis)
                ref, gen = _aligned(features["original"], keys), _aligned(features[arm], keys)
                cell["fid"] = _fid_cell(fid_with_ci(ref, gen, n_boot=ev["fid_n_boot"], seed=ev["seed"], method=FRECHET_METHOD))
                cell["kid"] = {**kid(ref, gen, seed=ev["seed"], paired=True), "n": len(keys), "n_too_small": len(keys) < MIN_N_INTERVAL}
                cell["kid_unpaired"] = {**kid(ref, gen, seed=ev["seed"], paired=False), "n": len(keys), "n_too_small": len(keys) < MIN_N_INTERVAL}
            out[arm][split] = cell
    return {
        "metadata": _metadata(config, calibrated),
        "metrics": metrics + (["fid", "kid"] if features else []),
        "min_n_interval": _min_n(),
        "higher_is_better": HIGHER_IS_BETTER,
        "datasets": out,
    }


def _min_n() -> int:
    from latentopt.analysis.statistics import MIN_N_INTERVAL

    return MIN_N_INTERVAL


def _sorted_keys(sub: pd.DataFrame) -> list[str]:
    """``split/image_id`` of the rows, sorted: every bootstrap over images draws from this order,
    so the same images and seed give the same replicates in every output file."""
    return [f"{s}/{i}" for s, i in sorted(set(zip(sub["split"], sub["image_id"])))]


def _fid_cell(res: dict) -> dict:
    """fid_with_ci's result plus the unclipped lower bound (so a bound below 0 can be marked)
    and, below the minimum n, no interval at all."""
    from latentopt.analysis.statistics import MIN_N_INTERVAL

    out = dict(res)
    if out.get("ci95_low_raw") is not None and out.get("boot_bias") is not None:
        out["ci95_low_unclipped"] = out["ci95_low_raw"] - out["boot_bias"]
    out["n_too_small"] = out["n"] < MIN_N_INTERVAL
    if out["n_too_small"]:
        out.update(ci95_low=None, ci95_high=None, ci95_low_unclipped=None)
    return out


def _metadata(config: dict, calibrated: dict) -> dict:
    return {"experiment_id": config["experiment_id"], "synthetic": synthetic_parts(config), "calibrated": calibrated}


def _complete_images(table: pd.DataFrame, arms: list[str]) -> pd.DataFrame:
    """Images that succeeded in every dataset (paired analyses need all of them)."""
    ok = table[table["status"] == "ok"]
    counts = ok.groupby(["split", "image_id"])["dataset"].nunique()
    keep = counts[counts == len(arms)].index
    return ok.set_index(["split", "image_id"]).loc[keep].reset_index()


def statistical_analysis(config: dict, table: pd.DataFrame, features: dict, arms: list[str], cross: dict, calibrated: dict) -> dict:
    from latentopt.metrics.fid import fid_difference_ci
    from latentopt.analysis.statistics import MIN_N_INTERVAL, pairwise_tests

    ev = config["evaluation"]
    paired = _complete_images(table, arms)
    tests, fid_diffs = {}, {}
    for metric in [m for m in EVALUATED_METRICS if m in paired.columns]:  # no per-image time tests (batch is the unit)
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
            keys = _sorted_keys(sub)
            if len(keys) < 2:
                continue
            ref = _aligned(features["original"], keys)
            rows = []
            for i, a in enumerate(arms):
                for b in arms[i + 1 :]:
                    d = fid_difference_ci(ref, _aligned(features[a], keys), _aligned(features[b], keys), n_boot=ev["fid_n_boot"], seed=ev["seed"], method=FRECHET_METHOD)
                    d["n_too_small"] = len(keys) < MIN_N_INTERVAL
                    if d["n_too_small"]:
                        d.update(ci95_low=None, ci95_high=None, p_boot=None)
                    rows.append({"a": a, "b": b, **d})
            fid_diffs[split] = rows
    return {
        "metadata": {**_metadata(config, calibrated), "n_paired_images": int(len(paired) // max(1, len(arms)))},
        "tests": tests,
        "fid_differences": fid_diffs,
        "correlations": _correlations(table, arms),
        "fid_kid_agreement": _fid_kid_agreement(cross, arms),
        "success_criteria": success_criteria(config, table, arms, cross, tests, fid_diffs),
    }


def _correlations(table: pd.DataFrame, arms: list[str]) -> dict:
    from latentopt.analysis.statistics import spearman_matrix

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


# Decision rules of the success criteria (quoted in the report next to each verdict).
RULES = {
    "success_rate": "share of the arm's readable images (unreadable inputs are listed apart) that finished ok >= threshold",
    "fid_improvement": "relative FID improvement (FID_base - FID_arm) / FID_base with the paired-bootstrap 95 % CI of FID_arm - FID_base divided by FID_base (same images, FID_base held fixed): PASS only when the whole CI is >= threshold, FAIL when the whole CI is < threshold, otherwise 'not shown'",
    "significance": "the arm beats the baseline on at least one metric it did NOT optimize: Wilcoxon signed-rank p Holm-corrected over every metric scanned (all images), p < alpha and better; significant deteriorations are listed; 'n too small' when m * 2/2^n >= alpha. This family (one arm, every metric) differs from the significance matrix's and the recommendations' (one metric, every dataset pair), so a pair significant there can be 'n too small' here",
    "time_budget": "projected compute for the full plan = mean over batches of (batch wall time / images in it) x images in the full plan; PASS when the 95 % t-interval's upper end <= budget, FAIL when its lower end > budget, otherwise 'not shown'; 'n too small' below the minimum number of batches",
}


def _three_way(low, high, threshold, higher_passes: bool) -> str:
    if low is None or high is None:
        return "not shown"
    if higher_passes:
        return "pass" if low >= threshold else ("fail" if high < threshold else "not shown")
    return "pass" if high <= threshold else ("fail" if low > threshold else "not shown")


def full_plan_images(config: dict, table: pd.DataFrame) -> tuple[int | None, str]:
    """(images in the full plan, how that number was obtained) for the time-budget projection."""
    n_run = int(table.drop_duplicates(["split", "image_id"]).shape[0])
    data = config["data"]
    if data.get("limit_per_split") is None:
        return n_run, f"this run is the full plan ({n_run} images)"
    splits = list(data.get("splits") or [])
    if splits and all(s in BSDS500_SPLIT_SIZES for s in splits):
        n = sum(BSDS500_SPLIT_SIZES[s] for s in splits)
        return n, f"BSDS500 {'+'.join(f'{s} {BSDS500_SPLIT_SIZES[s]}' for s in splits)} = {n} images (this run: {n_run}, data.limit_per_split = {data['limit_per_split']})"
    return None, "unknown (data.limit_per_split is set and the splits are not BSDS500's)"


def batch_table(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per optimization batch of the ok images in ``rows`` (the unit of cost analysis):
    id, images, image_iterations, clock, compute_s, wall_s. Empty when no batch was recorded."""
    cols = ["batch_id", "batch_images", "batch_image_iterations", "batch_clock", "batch_compute_s", "batch_wall_s"]
    ok = rows[rows["status"] == "ok"] if "status" in rows else rows
    if not set(cols) <= set(ok.columns) or ok["batch_id"].isna().all():
        return pd.DataFrame(columns=[c.removeprefix("batch_") for c in cols])
    b = ok.dropna(subset=["batch_id"]).drop_duplicates(["split", "batch_id"])[cols]
    return b.rename(columns={c: c.removeprefix("batch_") for c in cols}).reset_index(drop=True)


def success_criteria(config: dict, table: pd.DataFrame, arms: list[str], cross: dict, tests: dict, fid_diffs: dict | None = None) -> dict:
    """The seed's quantitative criteria per loss arm, each a test with a stated decision rule
    (RULES) and its uncertainty: verdict 'pass' | 'fail' | 'not shown' | 'n too small';
    ``pass`` is True only for 'pass'."""
    from latentopt.workflow.objectives import arm_objectives
    from latentopt.analysis.statistics import MIN_N_INTERVAL, holm, min_attainable_p, summarize

    crit = config["evaluation"]["success_criteria"]
    alpha = crit["alpha"]
    own = arm_objectives(config, arms)
    n_full, full_basis = full_plan_images(config, table)
    out = {}
    for arm in arms:
        if arm == BASELINE:
            continue
        rows = table[table["dataset"] == arm]
        read = readable(rows)  # unreadable inputs say nothing about the optimization
        rate = float((read["status"] == "ok").mean()) if len(read) else 0.0
        ok_rate = rate >= crit["min_success_rate"]
        entry = {"success_rate": {"value": rate, "threshold": crit["min_success_rate"], "n": int(len(read)), "of_readable_images": int(len(read)), "verdict": "pass" if ok_rate else "fail", "pass": ok_rate, "rule": RULES["success_rate"]}}

        row = next((r for r in (fid_diffs or {}).get("all", []) if {r["a"], r["b"]} == {arm, BASELINE}), None)
        if row is not None and row.get("fid_a") is not None:
            sign = 1.0 if row["a"] == arm else -1.0
            fid_base = row["fid_b"] if row["a"] == arm else row["fid_a"]
            diff = sign * row["diff"]
            lo = hi = None
            if row.get("ci95_low") is not None and fid_base:
                d_lo, d_hi = sorted((sign * row["ci95_low"], sign * row["ci95_high"]))
                lo, hi = -d_hi / fid_base, -d_lo / fid_base
            verdict = "n too small" if row.get("n_too_small") else _three_way(lo, hi, crit["min_fid_improvement"], True)
            entry["fid_improvement"] = {"value": -diff / fid_base if fid_base else None, "ci95_low": lo, "ci95_high": hi, "threshold": crit["min_fid_improvement"], "n": row.get("n"), "n_boot": row.get("n_boot"), "p_boot": row.get("p_boot"), "verdict": verdict, "pass": verdict == "pass", "rule": RULES["fid_improvement"]}

        scanned = []
        for metric, by_split in tests.items():
            if metric not in HIGHER_IS_BETTER:  # sharpness ratio: no direction (time is not tested per image)
                continue
            for r in by_split.get("all", []):
                if {r["a"], r["b"]} == {arm, BASELINE}:
                    scanned.append({"metric": metric, "own_objective": metric in own.get(arm, set()), "p": r["p_wilcoxon"], "better": _better(metric, r, arm), "n": r["n"], "n_nonzero": r["n"] - r.get("n_zero", 0)})
        adjusted = holm([t["p"] for t in scanned])
        m = len(scanned)
        for t, p_adj in zip(scanned, adjusted):
            t["p_holm"] = p_adj
            t["significant"] = bool(np.isfinite(p_adj) and p_adj < alpha)
        n_nonzero = min((t["n_nonzero"] for t in scanned), default=0)
        floor = min(1.0, m * min_attainable_p(n_nonzero)) if m else None
        held_out = [t["metric"] for t in scanned if t["significant"] and t["better"] and not t["own_objective"]]
        worse = [t["metric"] for t in scanned if t["significant"] and not t["better"]]
        own_better = [t["metric"] for t in scanned if t["significant"] and t["better"] and t["own_objective"]]
        if not scanned:
            verdict = "not shown"
        elif held_out:
            verdict = "pass"
        elif floor is not None and floor >= alpha:
            verdict = "n too small"
        else:
            verdict = "fail"
        entry["significance"] = {"value": held_out, "deteriorations": worse, "own_objective_better": own_better, "threshold": alpha, "m_tests": m, "n": max((t["n"] for t in scanned), default=0), "n_nonzero": n_nonzero, "p_holm_min": floor, "detail": scanned, "verdict": verdict, "pass": verdict == "pass", "rule": RULES["significance"]}

        batches = batch_table(rows)
        if len(batches) and n_full:
            per_image = (batches["wall_s"] / batches["images"]).to_numpy(dtype=float)
            s = summarize(per_image)
            to_h = n_full / 3600.0
            lo = s["ci95_low"] * to_h if s["ci95_low"] is not None else None
            hi = s["ci95_high"] * to_h if s["ci95_high"] is not None else None
            verdict = "n too small" if s["n"] < MIN_N_INTERVAL else _three_way(lo, hi, crit["time_budget_hours"], False)
            devices = sorted(rows["device"].dropna().unique().tolist()) if "device" in rows else []
            basis = f"mean wall time per image over {s['n']} batches ({', '.join(devices) or 'device not recorded'}) x {full_basis}"
            entry["time_budget"] = {"value": s["mean"] * to_h, "ci95_low": lo, "ci95_high": hi, "threshold": crit["time_budget_hours"], "n_batches": s["n"], "full_plan_images": n_full, "basis": basis, "verdict": verdict, "pass": verdict == "pass", "rule": RULES["time_budget"]}
        else:
            why = "no batch times recorded" if not len(batches) else f"full plan size {full_basis}"
            entry["time_budget"] = {"value": None, "threshold": crit["time_budget_hours"], "basis": why, "verdict": "not shown", "pass": False, "rule": RULES["time_budget"]}
        out[arm] = entry
    return out


def _better(metric: str, row: dict, arm: str) -> bool:
    diff = row["mean_diff"] if row["a"] == arm else -row["mean_diff"]
    return diff > 0 if HIGHER_IS_BETTER[metric] else diff < 0


def _batch_costs(rows: pd.DataFrame) -> dict | None:
    """Cost per batch (the unit of analysis): device-clock compute and wall time per image and
    per image-iteration, summarized over batches, and the batch-to-batch coefficient of
    variation (the run's measured noise)."""
    from latentopt.analysis.statistics import summarize

    b = batch_table(rows)
    if not len(b):
        return None
    per_image = (b["compute_s"] / b["images"]).to_numpy(dtype=float)
    iters = b["image_iterations"].to_numpy(dtype=float)
    per_iter = np.where(iters > 0, b["compute_s"].to_numpy(dtype=float) / np.where(iters > 0, iters, 1), np.nan)
    s = summarize(per_image)
    return {
        "n_batches": int(len(b)),
        "clock": sorted(b["clock"].dropna().unique().tolist()),
        "compute_per_image_s": s,
        "compute_per_image_iteration_s": summarize(per_iter),
        "wall_per_image_s": summarize((b["wall_s"] / b["images"]).to_numpy(dtype=float)),
        "noise_cv": (s["std"] / s["mean"]) if s["std"] is not None and s["mean"] else None,
        "per_image_values": per_image.tolist(),
    }


def cost_comparisons(costs: dict[str, dict | None]) -> list[dict]:
    """Every pair of arms with batch costs: Welch 95 % interval of the difference in mean
    compute per image (batches as units) and whether the difference is claimed: both arms have
    at least MIN_N_INTERVAL batches, the interval excludes 0 and the relative difference exceeds
    the larger batch-to-batch coefficient of variation (the measured noise)."""
    from scipy import stats as sst

    from latentopt.analysis.statistics import MIN_N_INTERVAL

    names = [a for a, c in costs.items() if c]
    out = []
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            xa, xb = np.asarray(costs[a]["per_image_values"]), np.asarray(costs[b]["per_image_values"])
            row = {"a": a, "b": b, "n_a": int(xa.size), "n_b": int(xb.size), "mean_diff": float(xa.mean() - xb.mean()), "ci95_low": None, "ci95_high": None, "noise_cv": None, "claimed": False}
            if min(xa.size, xb.size) >= MIN_N_INTERVAL:
                ci = sst.ttest_ind(xa, xb, equal_var=False).confidence_interval(0.95)
                noise = max(costs[a]["noise_cv"] or 0.0, costs[b]["noise_cv"] or 0.0)
                rel = abs(row["mean_diff"]) / max(xa.mean(), xb.mean())
                row.update(ci95_low=float(ci.low), ci95_high=float(ci.high), noise_cv=noise, relative_diff=rel, claimed=bool((ci.low > 0 or ci.high < 0) and rel > noise))
            out.append(row)
    return out


def performance_summary(config: dict, table: pd.DataFrame, arms: list[str]) -> dict:
    from latentopt.analysis.statistics import summarize

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
            "batch_costs": _batch_costs(rows),
        }
    comparisons = cost_comparisons({a: out[a]["batch_costs"] for a in arms if a != BASELINE})
    return {"metadata": {"experiment_id": config["experiment_id"], "synthetic": synthetic_parts(config)}, "datasets": out, "cost_comparisons": comparisons}


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
    from latentopt.core.fileio import atomic_path, write_json

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
