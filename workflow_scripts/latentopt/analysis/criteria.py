"""The seed's success criteria per loss arm, each a test with a stated decision rule (RULES)
and its uncertainty."""

from __future__ import annotations

import numpy as np
import pandas as pd

from latentopt.workflow.layout import BASELINE
from latentopt.analysis.input_failures import readable
from latentopt.workflow.metric_specs import HIGHER_IS_BETTER
from latentopt.analysis.performance import batch_table
from latentopt.analysis.projection import pixel_scale
from latentopt.workflow.analysis_settings import SummarySettings
from latentopt.workflow.objectives import with_relatives
from latentopt.analysis.statistics import holm, min_attainable_p, n_too_small, summarize

# Images per split of the official BSDS500 release: the full plan the time budget is judged on
# when a run uses data.limit_per_split.
BSDS500_SPLIT_SIZES = {"train": 200, "val": 100, "test": 200}


# Decision rules of the success criteria (quoted in the report next to each verdict).
RULES = {
    "success_rate": "share of the arm's readable images (unreadable inputs are listed apart) that finished ok >= threshold",
    "fid_improvement": "relative FID improvement (FID_base - FID_arm) / FID_base with the paired-bootstrap 95 % CI of FID_arm - FID_base divided by FID_base (same images, FID_base held fixed): PASS only when the whole CI is >= threshold, FAIL when the whole CI is < threshold, otherwise 'not shown'",
    "significance": "the arm beats the baseline on at least one metric it did NOT optimize: the family scanned is only the arm's held-out metrics (neither its objective nor a declared relative of it, objectives.RELATED_METRICS, nor a metric from an uncalibrated network), Wilcoxon signed-rank p Holm-corrected over that family (all images), p < alpha and better; significant deteriorations among them are listed; 'n too small' when m * 2/2^n >= alpha for that family's m. This family (one arm, its held-out metrics) differs from the significance matrix's (one metric, every dataset pair): where the two verdicts differ for the same (arm, metric) the report marks both cells (§) with the other family's p",
    "time_budget": "projected compute for the full plan = mean over batches of (batch compute time on the device clock, as in the cost section: CUDA events on a GPU, process CPU time on a CPU / images in it) x images in the full plan (x full-image pixels / the run's pixels when a cropped run is projected to the full BSDS500 plan); PASS when the 95 % t-interval's upper end <= budget, FAIL when its lower end > budget, otherwise 'not shown'; 'n too small' below the minimum number of batches",
}


def _three_way(low, high, threshold, higher_passes: bool) -> str:
    if low is None or high is None:
        return "not shown"
    if higher_passes:
        return "pass" if low >= threshold else ("fail" if high < threshold else "not shown")
    return "pass" if high <= threshold else ("fail" if low > threshold else "not shown")


def full_plan_images(settings: SummarySettings, table: pd.DataFrame) -> tuple[int | None, str]:
    """(images in the full plan, how that number was obtained) for the time-budget projection."""
    n_run = int(table.drop_duplicates(["split", "image_id"]).shape[0])
    if settings.limit_per_split is None:
        return n_run, f"this run is the full plan ({n_run} images)"
    splits = list(settings.splits)
    if splits and all(s in BSDS500_SPLIT_SIZES for s in splits):
        n = sum(BSDS500_SPLIT_SIZES[s] for s in splits)
        return n, f"BSDS500 {'+'.join(f'{s} {BSDS500_SPLIT_SIZES[s]}' for s in splits)} = {n} images (this run: {n_run}, data.limit_per_split = {settings.limit_per_split})"
    return None, "unknown (data.limit_per_split is set and the splits are not BSDS500's)"


def success_criteria(settings: SummarySettings, table: pd.DataFrame, arms: list[str], cross: dict, tests: dict, fid_diffs: dict | None = None) -> dict:
    """The seed's quantitative criteria per loss arm, each a test with a stated decision rule
    (RULES) and its uncertainty: verdict 'pass' | 'fail' | 'not shown' | 'n too small' |
    'not judged' (the FID criterion with a random Inception); ``pass`` is True only for 'pass'."""
    uncal = set(settings.uncalibrated)
    alpha = settings.alpha
    own = {a: set(settings.objectives[a]) for a in arms if a in settings.objectives}
    n_full, full_basis = full_plan_images(settings, table)
    pre = settings.preprocess
    scale, scale_text = pixel_scale(pre["mode"], pre["multiple"], pre["size"], tuple(pre["crop_box"]) if pre["crop_box"] and settings.limit_per_split is not None else None)
    out = {}
    for arm in arms:
        if arm == BASELINE:
            continue
        rows = table[table["dataset"] == arm]
        read = readable(rows)  # unreadable inputs say nothing about the optimization
        rate = float((read["status"] == "ok").mean()) if len(read) else 0.0
        ok_rate = rate >= settings.min_success_rate
        entry = {"success_rate": {"value": rate, "threshold": settings.min_success_rate, "n": int(len(read)), "of_readable_images": int(len(read)), "verdict": "pass" if ok_rate else "fail", "pass": ok_rate, "rule": RULES["success_rate"]}}

        row = next((r for r in (fid_diffs or {}).get("all", []) if {r["a"], r["b"]} == {arm, BASELINE}), None)
        if row is not None and row.get("fid_a") is not None:
            sign = 1.0 if row["a"] == arm else -1.0
            fid_base = row["fid_b"] if row["a"] == arm else row["fid_a"]
            diff = sign * row["diff"]
            lo = hi = None
            if row.get("ci95_low") is not None and fid_base:
                d_lo, d_hi = sorted((sign * row["ci95_low"], sign * row["ci95_high"]))
                lo, hi = -d_hi / fid_base, -d_lo / fid_base
            verdict = "n too small" if row.get("n_too_small") else _three_way(lo, hi, settings.min_fid_improvement, True)
            if "fid" in uncal:  # a random Inception: the number is recorded, no verdict is given
                verdict = "not judged"
            entry["fid_improvement"] = {"value": -diff / fid_base if fid_base else None, "ci95_low": lo, "ci95_high": hi, "threshold": settings.min_fid_improvement, "n": row.get("n"), "n_boot": row.get("n_boot"), "p_boot": row.get("p_boot"), "verdict": verdict, "pass": verdict == "pass", "rule": RULES["fid_improvement"]}

        # The family: the arm's held-out metrics only. Its objectives (and their declared
        # relatives) can never count, and a metric from an uncalibrated network judges nothing;
        # both are tested apart, outside the family, for information.
        excluded = with_relatives(own.get(arm, set()))
        scanned, own_tests = [], []
        for metric, by_split in tests.items():
            if metric not in HIGHER_IS_BETTER:  # sharpness ratio: no direction (time is not tested per image)
                continue
            for r in by_split.get("all", []):
                if {r["a"], r["b"]} == {arm, BASELINE}:
                    t = {"metric": metric, "own_objective": metric in excluded, "p": r["p_wilcoxon"], "better": _better(metric, r, arm), "n": r["n"], "n_nonzero": r["n"] - r.get("n_zero", 0)}
                    (own_tests if metric in excluded else scanned if metric not in uncal else []).append(t)
        for family in (scanned, own_tests):
            for t, p_adj in zip(family, holm([t["p"] for t in family])):
                t["p_holm"] = p_adj
                t["significant"] = bool(np.isfinite(p_adj) and p_adj < alpha)
        m = len(scanned)
        n_nonzero = min((t["n_nonzero"] for t in scanned), default=0)
        floor = min(1.0, m * min_attainable_p(n_nonzero)) if m else None
        held_out = [t["metric"] for t in scanned if t["significant"] and t["better"] and not t["own_objective"]]
        worse = [t["metric"] for t in scanned if t["significant"] and not t["better"]]
        own_better = [t["metric"] for t in own_tests if t["significant"] and t["better"]]
        if not scanned:
            verdict = "not shown"
        elif held_out:
            verdict = "pass"
        elif n_too_small(n_nonzero, alpha, m):  # m * min_attainable_p(n_nonzero) >= alpha
            verdict = "n too small"
        else:
            verdict = "fail"
        entry["significance"] = {"value": held_out, "deteriorations": worse, "own_objective_better": own_better, "threshold": alpha, "m_tests": m, "n": max((t["n"] for t in scanned), default=0), "n_nonzero": n_nonzero, "p_holm_min": floor, "detail": scanned, "own_objective_tests": own_tests, "not_judged": sorted(m for m in tests if m in uncal), "verdict": verdict, "pass": verdict == "pass", "rule": RULES["significance"]}

        batches = batch_table(rows)
        if len(batches) and n_full:
            per_image = (batches["compute_s"] / batches["images"]).to_numpy(dtype=float)
            s = summarize(per_image)
            to_h = n_full * scale / 3600.0
            lo = s["ci95_low"] * to_h if s["ci95_low"] is not None else None
            hi = s["ci95_high"] * to_h if s["ci95_high"] is not None else None
            verdict = "n too small" if n_too_small(s["n"]) else _three_way(lo, hi, settings.time_budget_hours, False)
            devices = sorted(rows["device"].dropna().unique().tolist()) if "device" in rows else []
            clock = ", ".join(sorted(batches["clock"].dropna().astype(str).unique())) or "clock not recorded"
            basis = f"mean compute time per image on the device clock ({clock}) over {s['n']} batches ({', '.join(devices) or 'device not recorded'}) x {full_basis}{scale_text}"
            entry["time_budget"] = {"value": s["mean"] * to_h, "ci95_low": lo, "ci95_high": hi, "threshold": settings.time_budget_hours, "n_batches": s["n"], "full_plan_images": n_full, "pixel_scale": scale, "basis": basis, "verdict": verdict, "pass": verdict == "pass", "rule": RULES["time_budget"]}
        else:
            why = "no batch times recorded" if not len(batches) else f"full plan size {full_basis}"
            entry["time_budget"] = {"value": None, "threshold": settings.time_budget_hours, "basis": why, "verdict": "not shown", "pass": False, "rule": RULES["time_budget"]}
        out[arm] = entry
    return out


def _better(metric: str, row: dict, arm: str) -> bool:
    diff = row["mean_diff"] if row["a"] == arm else -row["mean_diff"]
    return diff > 0 if HIGHER_IS_BETTER[metric] else diff < 0
