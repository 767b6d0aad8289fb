"""performance_summary.json: per loss, images ok/failed (unreadable inputs counted apart, see
latentopt.analysis.input_failures), counted work, times, iterations, convergence, memory,
batch-level costs and cost comparisons.

The cost axis is counted work (``counted_work``: TFLOP per image, FLOPs counted by
torch.utils.flop_counter.FlopCounterMode over the passes each image ran, latentopt.optimize.work):
it does not move with the machine or its load. Measured time (the batch's compute on the device
clock: CUDA events on a GPU, process CPU time on a CPU; the batch is the unit) stays beside it as
context and for throughput; a time difference is claimed only where it agrees with counted work.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from latentopt.compute.flops import COUNTER
from latentopt.workflow.analysis_settings import SummarySettings
from latentopt.analysis.input_failures import summary as input_failure_summary
from latentopt.workflow.layout import BASELINE
from latentopt.analysis.statistics import n_too_small, summarize
from scipy import stats as sst


def batch_table(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per optimization batch of the ok images in ``rows`` (the unit of cost analysis):
    id, images, image_iterations, clock, compute_s, wall_s. Empty when no batch was recorded."""
    cols = ["batch_id", "batch_images", "batch_image_iterations", "batch_clock", "batch_compute_s", "batch_wall_s"]
    ok = rows[rows["status"] == "ok"] if "status" in rows else rows
    if not set(cols) <= set(ok.columns) or ok["batch_id"].isna().all():
        return pd.DataFrame(columns=[c.removeprefix("batch_") for c in cols])
    b = ok.dropna(subset=["batch_id"]).drop_duplicates(["split", "batch_id"])[cols]
    return b.rename(columns={c: c.removeprefix("batch_") for c in cols}).reset_index(drop=True)


def _batch_costs(rows: pd.DataFrame) -> dict | None:
    """Cost per batch (the unit of analysis): device-clock compute and wall time per image and
    per image-iteration, summarized over batches, and the batch-to-batch coefficient of
    variation (the run's measured noise)."""
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


def time_comparison(ca: dict, cb: dict) -> dict:
    """Measured time of two arms' batch costs: Welch 95 % interval of the difference in mean
    compute per image (batches as units, a - b) and whether the time difference clears the noise:
    both arms have at least MIN_N_INTERVAL batches, the interval excludes 0 and the relative
    difference exceeds the larger batch-to-batch coefficient of variation (the measured noise).
    Time alone never ranks two arms (:func:`cost_comparisons`)."""
    xa, xb = np.asarray(ca["per_image_values"]), np.asarray(cb["per_image_values"])
    row = {"n_a": int(xa.size), "n_b": int(xb.size), "mean_diff": float(xa.mean() - xb.mean()), "ci95_low": None, "ci95_high": None, "noise_cv": None, "claimed": False}
    if not (n_too_small(xa.size) or n_too_small(xb.size)):
        ci = sst.ttest_ind(xa, xb, equal_var=False).confidence_interval(0.95)
        noise = max(ca["noise_cv"] or 0.0, cb["noise_cv"] or 0.0)
        rel = abs(row["mean_diff"]) / max(xa.mean(), xb.mean())
        row.update(ci95_low=float(ci.low), ci95_high=float(ci.high), noise_cv=noise, relative_diff=rel, claimed=bool((ci.low > 0 or ci.high < 0) and rel > noise))
    return row


def counted_work(rows: pd.DataFrame) -> dict | None:
    """TFLOP per image of the ok images in ``rows`` (the per-image ``tflop`` column), summarized,
    the TFLOP of one loop iteration (mean over the images; None for the baseline, which has no
    loop) and the per-image values in table order. None when no image has a count (records
    written before work was counted)."""
    ok = rows[rows["status"] == "ok"] if "status" in rows else rows
    if "tflop" not in ok or ok["tflop"].isna().all():
        return None
    values = ok["tflop"].dropna().to_numpy(dtype=float)
    per_iteration = ok["tflop_per_iteration"].dropna().to_numpy(dtype=float) if "tflop_per_iteration" in ok else np.array([])
    return {"tflop_per_image": summarize(values), "tflop_per_iteration": float(per_iteration.mean()) if per_iteration.size else None,
            "counter": COUNTER, "per_image_values": values.tolist()}


def _work_by_image(rows: pd.DataFrame) -> pd.Series:
    if "tflop" not in rows:
        return pd.Series(dtype=float)
    ok = rows[(rows["status"] == "ok") & rows["tflop"].notna()]
    return pd.Series(ok["tflop"].to_numpy(dtype=float), index=pd.MultiIndex.from_arrays([ok["split"].astype(str), ok["image_id"].astype(str)]))


def work_comparison(wa: pd.Series, wb: pd.Series) -> dict:
    """Counted work of two arms on the images both finished (per-image TFLOP indexed by (split,
    image id)), a - b: mean difference per image, its paired 95 % t-interval, the ratio of the
    means. ``identical``: every image counted the same work in both arms (never ranked by cost).
    ``claimed``: not identical, and every image's difference has the same sign or the paired
    interval (n >= MIN_N_INTERVAL) excludes 0."""
    common = wa.index.intersection(wb.index)
    d = (wa[common] - wb[common]).to_numpy(dtype=float)
    row = {"basis": "counted_work", "unit": "TFLOP/image", "n": int(d.size), "mean_diff": None, "ci95_low": None, "ci95_high": None,
           "relative_diff": None, "ratio": None, "identical": False, "claimed": False}
    if not d.size:
        return {**row, "why": "no image with counted work in both arms"}
    a, b = float(wa[common].mean()), float(wb[common].mean())
    s = summarize(d)
    identical = bool(np.allclose(wa[common].to_numpy(), wb[common].to_numpy(), rtol=1e-9, atol=0.0))
    same_sign = bool((d > 0).all() or (d < 0).all())
    interval = s["ci95_low"] is not None and (s["ci95_low"] > 0 or s["ci95_high"] < 0)
    row.update(mean_diff=float(d.mean()), ci95_low=s["ci95_low"], ci95_high=s["ci95_high"], relative_diff=abs(a - b) / max(a, b) if max(a, b) > 0 else None,
               ratio=a / b if b > 0 else None, identical=identical, claimed=bool(not identical and (same_sign or interval)))
    row["why"] = ("identical counted work: not ranked by cost" if identical else
                  "every image's counted work differs in the same direction" if same_sign else
                  "the paired interval excludes 0" if interval else "images differ in both directions and the interval does not exclude 0")
    return row


def cost_comparisons(work: dict[str, pd.Series], times: dict[str, dict | None]) -> list[dict]:
    """Every pair of arms with counted work (``work``: per-image TFLOP indexed by (split, image
    id)): the counted-work comparison (:func:`work_comparison`, the cost ranking) and, under
    ``time``, the measured time's (:func:`time_comparison`) with ``agrees_with_counted_work``; its
    ``claimed`` holds only where the time difference clears the noise AND points the way the
    counted work does (never for arms with identical counted work)."""
    names = [a for a, w in work.items() if w is not None and len(w)]
    out = []
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            row = {"a": a, "b": b, **work_comparison(work[a], work[b]), "time": None}
            if times.get(a) and times.get(b):
                t = time_comparison(times[a], times[b])
                agrees = bool(row["claimed"] and np.sign(t["mean_diff"]) == np.sign(row["mean_diff"]))
                row["time"] = {**t, "clock": sorted(set(times[a].get("clock") or []) | set(times[b].get("clock") or [])),
                               "claimed": bool(t["claimed"] and agrees), "clears_noise": t["claimed"], "agrees_with_counted_work": agrees}
            out.append(row)
    return out


RESULT_COLUMNS = ("time_s", "iterations", "converged_at", "peak_memory_mb", "device")


def performance_summary(settings: SummarySettings, table: pd.DataFrame, arms: list[str], *, synthetic: list[str] | None = None) -> dict:
    out = {}
    # an arm whose every image failed has no per-image result columns (its records hold a reason only)
    table = table.reindex(columns=[*table.columns, *(c for c in RESULT_COLUMNS if c not in table.columns)])
    for arm in arms:
        rows = table[table["dataset"] == arm]
        ok = rows[rows["status"] == "ok"]
        failed = rows[rows["status"] != "ok"]
        total = float(ok["time_s"].sum()) if len(ok) else 0.0
        iters = ok["iterations"].to_numpy(dtype=float) if len(ok) else np.array([])
        retried = ok["retried"].fillna(False).astype(bool) if "retried" in ok else pd.Series(False, index=ok.index)
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
            # retried images counted apart: their count is the retry's own (iterations x factor)
            "retried_images": int(retried.sum()),
            "retry_iterations": sorted(int(v) for v in ok.loc[retried, "iterations"].dropna()),
            "iterations_not_retried": summarize(ok.loc[~retried, "iterations"].to_numpy(dtype=float)) if (~retried).any() else None,
            "converged_fraction_not_retried": float(ok.loc[~retried, "converged_at"].notna().mean()) if (~retried).any() else None,
            "converged_fraction": float(converged.mean()) if len(ok) else None,
            "convergence_iteration": summarize(ok["converged_at"].dropna().to_numpy(dtype=float)) if converged.any() else None,
            "peak_memory_mb": float(ok["peak_memory_mb"].max()) if len(ok) else None,
            "devices": sorted(ok["device"].dropna().unique().tolist()) if len(ok) else [],
            "throughput_images_per_hour": (len(ok) / total * 3600) if total > 0 else None,
            "image_iterations_per_s": (float(iters.sum()) / total) if total > 0 else None,
            "counted_work": counted_work(rows),
            "batch_costs": _batch_costs(rows),
        }
    optimized = [a for a in arms if a != BASELINE]
    comparisons = cost_comparisons({a: _work_by_image(table[table["dataset"] == a]) for a in optimized},
                                   {a: out[a]["batch_costs"] for a in optimized})
    return {"metadata": {"experiment_id": settings.experiment_id, "synthetic": settings.synthetic.parts() if synthetic is None else synthetic}, "datasets": out, "cost_comparisons": comparisons}
