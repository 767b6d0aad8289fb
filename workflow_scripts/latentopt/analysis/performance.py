"""performance_summary.json: per loss, images ok/failed (unreadable inputs counted apart, see
latentopt.analysis.input_failures), times, iterations, convergence, memory, batch-level costs
and noise-gated cost comparisons (the batch is the unit of cost analysis)."""

from __future__ import annotations

import numpy as np
import pandas as pd

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


def cost_comparisons(costs: dict[str, dict | None]) -> list[dict]:
    """Every pair of arms with batch costs: Welch 95 % interval of the difference in mean
    compute per image (batches as units) and whether the difference is claimed: both arms have
    at least MIN_N_INTERVAL batches, the interval excludes 0 and the relative difference exceeds
    the larger batch-to-batch coefficient of variation (the measured noise)."""
    names = [a for a, c in costs.items() if c]
    out = []
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            xa, xb = np.asarray(costs[a]["per_image_values"]), np.asarray(costs[b]["per_image_values"])
            row = {"a": a, "b": b, "n_a": int(xa.size), "n_b": int(xb.size), "mean_diff": float(xa.mean() - xb.mean()), "ci95_low": None, "ci95_high": None, "noise_cv": None, "claimed": False}
            if not (n_too_small(xa.size) or n_too_small(xb.size)):
                ci = sst.ttest_ind(xa, xb, equal_var=False).confidence_interval(0.95)
                noise = max(costs[a]["noise_cv"] or 0.0, costs[b]["noise_cv"] or 0.0)
                rel = abs(row["mean_diff"]) / max(xa.mean(), xb.mean())
                row.update(ci95_low=float(ci.low), ci95_high=float(ci.high), noise_cv=noise, relative_diff=rel, claimed=bool((ci.low > 0 or ci.high < 0) and rel > noise))
            out.append(row)
    return out


def performance_summary(settings: SummarySettings, table: pd.DataFrame, arms: list[str], *, synthetic: list[str] | None = None) -> dict:
    out = {}
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
            "batch_costs": _batch_costs(rows),
        }
    comparisons = cost_comparisons({a: out[a]["batch_costs"] for a in arms if a != BASELINE})
    return {"metadata": {"experiment_id": settings.experiment_id, "synthetic": settings.synthetic.parts() if synthetic is None else synthetic}, "datasets": out, "cost_comparisons": comparisons}
