"""The seed's hypotheses (expected FID per loss) against the measured FID, and the per-arm
correlation matrix of FID, the three improvements and processing time.

Expected FID (``analysis.hypotheses.expected_fid``)
    Per loss arm: the seed's range [low, high] and its stated +- tolerance (defaults: psnr 15-25
    +-3, ssim 35-45 +-5, lpips 20-30 +-4; they come from an earlier 60-image experiment with the
    SD-VAE, i.e. another setting). Accepted range W = [low - tolerance, high + tolerance].
    Verdict from the measured FID's 95 % bootstrap CI (cross_evaluation_matrix.json, split
    "all"): ``consistent`` when the CI lies inside W, ``outside`` when it does not overlap W,
    ``inconclusive`` when it overlaps W only partly or has no CI. With a randomly initialised
    Inception the FID is on an arbitrary scale and the verdict is the report's own wording,
    ``objectives.NOT_JUDGED`` ("not judged: uncalibrated network"); with a calibrated Inception but
    a randomly initialised autoencoder it is ``not comparable`` (the model is not the seed's). The
    reason is ``verdict_reason`` (also metadata ``not_comparable_reason``), and the interval
    relation is still recorded as ``interval_relation``. FID also depends on the number of images (fid.py, FID bias): a
    different n shifts it even for the same model.

Per-arm correlation matrix
    FID is one number per dataset: a per-image FID contribution is not defined (FID is a
    distance between two feature distributions), so FID is absent from the per-image Spearman
    matrices (statistical_analysis.json "correlations") and enters only this matrix, whose
    points are the datasets (baseline included, with zero improvement): FID (split "all"), the
    mean paired improvement over the baseline of PSNR, SSIM and the first LPIPS metric (sign:
    positive = better; images ok in both), and the mean processing time per image (the images'
    shares of their batches' wall time, from the per-image table). Spearman rho
    from ``statistics.spearman_matrix``; p is the exact permutation p-value (two-sided: the
    fraction of all n! pairings of the ranks whose |rho| reaches the observed one; n <= 8, else
    9999 random pairings plus the observed). With n
    points the smallest attainable p is 2 / n!, so for n! <= 2 / alpha (n <= 4 at 0.05) no p is
    reported: "n too small".
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from latentopt.core.numbers import is_finite
from latentopt.analysis.statistics import n_too_small, spearman_matrix
from latentopt.core.fileio import read_json, write_json
from latentopt.workflow.analysis_settings import HypothesisSettings
from latentopt.workflow.layout import BASELINE
from latentopt.workflow.metric_specs import HIGHER_IS_BETTER
from latentopt.workflow.objectives import NOT_JUDGED

SEED_SETTING = "an earlier 60-image experiment with the SD-VAE (Stable Diffusion's AutoencoderKL)"


def interval_relation(lo, hi, low: float, high: float) -> str:
    """consistent / outside / inconclusive for a CI [lo, hi] against the accepted range."""
    if not (is_finite(lo) and is_finite(hi)):
        return "inconclusive"
    if lo >= low and hi <= high:
        return "consistent"
    if hi < low or lo > high:
        return "outside"
    return "inconclusive"


def expected_fid_table(cross: Mapping, expected: Mapping, settings: HypothesisSettings) -> list[dict]:
    """``expected``: the expected FID ranges per arm (analysis.hypotheses.expected_fid)."""
    not_comparable = settings.not_comparable_reason
    # the one wording the report uses for a verdict resting on an uncalibrated network
    withheld = NOT_JUDGED if "fid" in settings.uncalibrated else "not comparable" if not_comparable else None
    rows = []
    for arm in cross["datasets"]:
        if arm == BASELINE or arm not in expected:
            continue
        e = expected[arm]
        low, high = e["low"] - e["tolerance"], e["high"] + e["tolerance"]
        fid = (cross["datasets"][arm].get("all") or {}).get("fid") or {}
        row = {"arm": arm, "expected_low": e["low"], "expected_high": e["high"], "tolerance": e["tolerance"], "accepted_low": low, "accepted_high": high, "fid": fid.get("fid"), "ci95_low": fid.get("ci95_low"), "ci95_high": fid.get("ci95_high"), "n": fid.get("n")}
        if not is_finite(fid.get("fid")):
            row["interval_relation"] = row["verdict"] = "not measured"
        else:
            row["interval_relation"] = interval_relation(fid.get("ci95_low"), fid.get("ci95_high"), low, high)
            row["verdict"] = withheld or row["interval_relation"]
            if withheld:
                row["verdict_reason"] = not_comparable
        rows.append(row)
    return rows


def arm_points(cross: Mapping, per_image: pd.DataFrame, higher_is_better: Mapping[str, bool]) -> list[dict]:
    """One point per dataset: FID, mean improvement of PSNR/SSIM/LPIPS over the baseline, time."""
    lpips = next((m for m in per_image.columns if m.startswith("lpips_")), None)
    metrics = [m for m in ("psnr", "ssim", lpips) if m and m in per_image.columns]
    ok = per_image[per_image["status"] == "ok"]
    base = ok[ok["dataset"] == BASELINE].set_index(["split", "image_id"])
    points = []
    for d in cross["datasets"]:
        cell = cross["datasets"][d].get("all") or {}
        rows = ok[ok["dataset"] == d].set_index(["split", "image_id"])
        # time: the mean of the images' shares of their batches' wall time (one point per dataset;
        # cross_evaluation_matrix.json no longer summarizes time per image, the batch is its unit)
        time_s = float(rows["time_s"].mean()) if "time_s" in rows and rows["time_s"].notna().any() else None
        point = {"dataset": d, "fid": (cell.get("fid") or {}).get("fid"), "time_s": time_s}
        for m in metrics:
            joined = rows[[m]].merge(base[[m]], left_index=True, right_index=True, suffixes=("", "_base")).astype(float)
            diff = (joined[m] - joined[f"{m}_base"]) * (1 if higher_is_better[m] else -1)
            diff = diff[np.isfinite(diff)]
            point[f"{m}_improvement"] = float(diff.mean()) if len(diff) else None
        points.append(point)
    return points


def exact_spearman_p(x: Sequence[float], y: Sequence[float], seed: int = 0) -> float:
    """Two-sided permutation p of Spearman's rho: the fraction of pairings of y's ranks with x's
    (all n! of them for n <= 8, else 9999 random ones plus the observed) whose |rho| reaches the
    observed |rho| (average ranks for ties)."""
    rx, ry = stats.rankdata(np.asarray(x, float)), stats.rankdata(np.asarray(y, float))
    n = rx.size
    if n <= 8:
        perms = np.array(list(itertools.permutations(range(n))))
    else:
        rng = np.random.default_rng(seed)
        perms = np.vstack([np.arange(n), np.array([rng.permutation(n) for _ in range(9999)])])
    cx = rx - rx.mean()
    cy = ry[perms] - ry.mean()
    denom = np.sqrt((cx**2).sum() * (cy[0] ** 2).sum())
    if denom == 0:
        return float("nan")
    rho = (cy @ cx) / denom
    observed = abs(float(np.dot(cx, ry - ry.mean())) / denom)
    return float(np.mean(np.abs(rho) >= observed - 1e-12))


def _min_exact_spearman_p(n: int) -> float:
    """Smallest two-sided p of the exact permutation test of Spearman's rho at n points: 2 / n!."""
    return 2.0 / math.factorial(n)


def arm_correlations(points: Sequence[Mapping], alpha: float, seed: int = 0) -> dict:
    names = [k for k in ("fid", *[f"{m}_improvement" for m in ("psnr", "ssim")], *sorted(k for k in (points[0] if points else {}) if k.startswith("lpips_")), "time_s") if points and any(is_finite(p.get(k)) for p in points)]
    columns = {k: [p.get(k) if is_finite(p.get(k)) else float("nan") for p in points] for k in names}
    matrix = spearman_matrix(columns)
    n_points = len(points)
    too_small = n_points < 2 or n_too_small(n_points, alpha, p_floor=_min_exact_spearman_p(n_points))
    for pair in matrix["pairs"]:
        x, y = np.asarray(columns[pair["a"]]), np.asarray(columns[pair["b"]])
        keep = np.isfinite(x) & np.isfinite(y)
        pair["p_scipy_asymptotic"] = pair.pop("p")
        pair["n_too_small"] = bool(n_too_small(int(keep.sum()), alpha, p_floor=_min_exact_spearman_p(int(keep.sum())))) if keep.sum() else True
        pair["p_exact"] = None if pair["n_too_small"] or not is_finite(pair["rho"]) else exact_spearman_p(x[keep], y[keep], seed)
    return {"names": names, "rho": matrix["rho"], "n": matrix["n"], "pairs": matrix["pairs"], "n_points": n_points, "n_too_small": too_small}


def hypothesis_analysis(cross: Mapping, per_image: pd.DataFrame, expected: Mapping, settings: HypothesisSettings) -> dict:
    """The content of hypothesis_analysis.json (``expected``: see :func:`expected_fid_table`)."""
    alpha = settings.alpha
    points = arm_points(cross, per_image, HIGHER_IS_BETTER)
    return {
        "metadata": {"experiment_id": settings.experiment_id, "synthetic": settings.synthetic.parts(), "alpha": alpha, "seed_setting": SEED_SETTING, "not_comparable_reason": settings.not_comparable_reason, "model_kind": settings.model_kind},
        "expected_fid": expected_fid_table(cross, expected, settings),
        "arm_points": points,
        "arm_correlations": arm_correlations(points, alpha, settings.seed),
    }


def write_hypothesis_analysis(cross_json, per_image_csv, out_json, *, hypotheses: Mapping, settings: HypothesisSettings) -> dict:
    """The test_hypotheses job: hypothesis_analysis.json; ``hypotheses``: the analysis.hypotheses
    settings (the rule's param)."""
    per_image = pd.read_csv(per_image_csv, dtype={"split": str, "image_id": str, "dataset": str})
    result = hypothesis_analysis(read_json(cross_json), per_image, hypotheses["expected_fid"], settings)
    write_json(out_json, result)
    return result
