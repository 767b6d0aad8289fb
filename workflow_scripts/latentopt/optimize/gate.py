"""The quality gate: a loss's first images, checked before the rest of that loss runs.

The first ``quality_gate.images_per_loss`` images of the plan form the gate chunk(s) (normal
per-image outputs, see plan.make_chunks). For every loss, :func:`evaluate_gate` reads their
per-image records and measures the mean improvement of the loss's OWN metric (the metric it
optimizes; so the gate judges the objective, not a held-out metric):

  improvement per image = final - initial (higher-is-better metrics) or initial - final
  (lower-is-better), where initial = the decode of z0 (the baseline reconstruction) and final = the
  decode of the returned latent, both from the image's record.

  loss psnr, mse -> psnr (dB); ssim, improved_ssim, ms_ssim -> ssim; l1 -> mae;
  lpips with net alex -> lpips_alex; anything else (weighted, lpips vgg), or a metric the records
  lack -> "loss": the relative decrease (initial_loss - final_loss) / |initial_loss|.

The gate passes when that mean (over the gate images that finished; failed images are counted and
listed) is at least ``quality_gate.min_improvement[<metric>]``. ``mode`` says what a failure does:
stop (the gate job fails with :class:`GateFailed`, so the loss's other jobs never run; other
losses go on under Snakemake's keep-going), warn (logged, recorded, the loss continues), off
(recorded only). The decision uses the mean alone; the 95 % t-interval is reported for context
(10 images cannot show a small gain to be real).
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from latentopt.core.fileio import read_json, write_json
from latentopt.analysis.statistics import summarize

OWN_METRIC = {
    "psnr": ("psnr", True),
    "mse": ("psnr", True),
    "ssim": ("ssim", True),
    "improved_ssim": ("ssim", True),
    "ms_ssim": ("ssim", True),
    "l1": ("mae", False),
}
UNITS = {"psnr": "dB", "ssim": "", "mae": "", "lpips_alex": "", "loss": "(relative)"}


class GateFailed(RuntimeError):
    """A failed gate in mode stop; the message gives the measured improvement and the threshold."""


def own_metric(loss_spec: Mapping) -> tuple[str, bool]:
    """(metric, higher_is_better) the gate judges a loss by (see the module docstring)."""
    name = loss_spec.get("name")
    if name == "lpips" and loss_spec.get("net", "alex") == "alex":
        return "lpips_alex", False
    return OWN_METRIC.get(name, ("loss", False))


def image_improvement(record: Mapping, metric: str, higher_is_better: bool) -> float | None:
    """One image's improvement of ``metric`` (positive = better), or None when not measurable."""
    if record.get("status") != "ok":
        return None
    if metric == "loss":
        first, last = record.get("initial_loss"), record.get("final_loss")
        if first is None or last is None or first == 0:
            return None
        value = (first - last) / abs(first)
    else:
        first, last = (record.get(k, {}).get(metric) for k in ("initial", "final"))
        if first is None or last is None:
            return None
        value = last - first if higher_is_better else first - last
    return value if math.isfinite(value) else None


def evaluate_gate(arm: str, loss_spec: Mapping, records: Sequence[Mapping], gate: Mapping) -> dict:
    """The gate's result for one loss from its gate images' per-image records (JSON-ready)."""
    metric, higher = own_metric(loss_spec)
    ok = [r for r in records if r.get("status") == "ok"]
    if metric != "loss" and any(metric not in r.get("final", {}) for r in ok):
        metric, higher = "loss", False  # e.g. LPIPS not recorded per image (no trunk weights)
    images = [
        {
            "image_id": r["image_id"],
            "split": r.get("split"),
            "status": r.get("status"),
            "initial": r.get("initial_loss") if metric == "loss" else r.get("initial", {}).get(metric),
            "final": r.get("final_loss") if metric == "loss" else r.get("final", {}).get(metric),
            "improvement": image_improvement(r, metric, higher),
            "retried": bool(r.get("retry")),
        }
        for r in records
    ]
    values = [i["improvement"] for i in images if i["improvement"] is not None]
    summary = summarize(values)
    mean = summary["mean"] if values else None
    threshold = float(gate["min_improvement"][metric])
    passed = mean is not None and mean >= threshold
    mode = gate["mode"]
    decision = "passed" if passed else {"stop": "stopped", "warn": "failed, continued (warn)", "off": "failed, not enforced (off)"}[mode]
    result = {
        "arm": arm,
        "loss": dict(loss_spec),
        "metric": metric,
        "higher_is_better": higher,
        "unit": UNITS[metric],
        "threshold": threshold,
        "mean_improvement": mean,
        "ci95": [summary["ci95_low"], summary["ci95_high"]],
        "min_improvement_seen": min(values) if values else None,
        "max_improvement_seen": max(values) if values else None,
        "n_images": len(records),
        "n_measured": len(values),
        "failed_images": [i["image_id"] for i in images if i["status"] != "ok"],
        "n_retried": sum(i["retried"] for i in images),
        "mode": mode,
        "passed": passed,
        "decision": decision,
        "images": images,
    }
    result["message"] = gate_message(result)
    return result


def _num(value, unit: str = "") -> str:
    return "n/a" if value is None else f"{value:+.4g}{(' ' + unit) if unit else ''}"


def gate_message(result: Mapping) -> str:
    """One line for the log and the run output."""
    r = result
    verdict = "PASSED" if r["passed"] else "STOPPED" if r["mode"] == "stop" else "FAILED"
    what = (f"quality gate {verdict} for loss '{r['arm']}': mean {r['metric']} improvement "
            f"{_num(r['mean_improvement'], r['unit'])} over {r['n_measured']} of {r['n_images']} gate images "
            f"(threshold {_num(r['threshold'], r['unit'])}, mode {r['mode']})")
    if r["n_retried"]:
        what += f"; {r['n_retried']} of them needed the non-convergence retry (losses.{r['arm']}.retry)"
    if r["passed"]:
        return what
    if r["mode"] == "stop":
        return (what + f"; the other images of '{r['arm']}' are NOT optimized and its dataset, evaluation and "
                f"the report are not produced. Adjust losses.{r['arm']} (lr, iterations) or "
                "quality_gate, or set quality_gate.mode: warn to continue anyway.")
    return what + f"; '{r['arm']}' continues: its parameters may need adjusting."


def check_gate(result: Mapping) -> None:
    """Raise GateFailed for a failed gate in mode stop."""
    if not result["passed"] and result["mode"] == "stop":
        raise GateFailed(result["message"])


def gate_table(results: Sequence[Mapping]) -> dict:
    """The report's gate table: {"header": [...], "rows": [[...]]} of formatted cells, one row per loss."""
    header = ["loss", "own metric", "gate images", "mean improvement (95% CI)", "threshold", "retried", "mode", "result"]
    rows = []
    for r in results:
        lo, hi = r["ci95"]
        ci = "" if lo is None else f" ({_num(lo)} to {_num(hi)})"
        rows.append([
            r["arm"],
            f"{r['metric']} {r['unit']}".strip(),
            f"{r['n_measured']} of {r['n_images']}" + (f" ({len(r['failed_images'])} failed)" if r["failed_images"] else ""),
            _num(r["mean_improvement"]) + ci,
            _num(r["threshold"]),
            str(r["n_retried"]),
            r["mode"],
            r["decision"],
        ])
    return {"header": header, "rows": rows}


def run_gate(arm: str, loss: Mapping, gate: Mapping, record_paths: Sequence[str | Path], output: str | Path,
             log=print) -> dict:
    """The gate job of ``arm`` (its loss spec ``loss``, the ``quality_gate`` settings ``gate``): evaluate, log the full result, write ``output`` and, in mode stop, raise
    GateFailed for a failure (then nothing is written: Snakemake would delete it; the result stays
    in the job log). The one-line verdict also goes to the run's own stderr, so it shows in the
    Snakemake output even though the job log captures everything else."""
    records = [read_json(p) for p in record_paths]
    result = evaluate_gate(arm, loss, records, gate)
    log(json.dumps(result, indent=2, default=str))
    log(result["message"])
    if not result["passed"]:
        print(("ERROR: " if result["mode"] == "stop" else "WARNING: ") + result["message"], file=sys.__stderr__, flush=True)
    check_gate(result)
    write_json(output, result)
    return result
