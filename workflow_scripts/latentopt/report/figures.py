"""Figure wiring of the report: which figures (latentopt.report.plots) are drawn from which inputs."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from latentopt.workflow import layout
from latentopt.workflow.metric_specs import EVALUATED_METRICS, HIGHER_IS_BETTER, METRICS
from latentopt.workflow.layout import BASELINE
from latentopt.report.arms import loss_description
from latentopt.report.formatting import METRIC_LABELS, fmt, metric_label
from latentopt.report.inputs import _get
from latentopt.data.images import read_rgb
from latentopt.report import plots as F
from latentopt.workflow.objectives import with_relatives
from latentopt.report.conclusions import PURPOSES, _evidence_metric
from latentopt.report.inputs import _pair_row, oriented


def _losses_histories(results: str | Path, table_df: pd.DataFrame, arms: Sequence[str]) -> dict[str, list[list[float]]]:
    out = {}
    for arm in arms:
        hist = []
        ok = table_df[(table_df["dataset"] == arm) & (table_df["status"] == "ok")]
        for split, image_id in ok[["split", "image_id"]].itertuples(index=False):
            path = layout.per_image(results, arm, split, image_id, "pt")
            if not path.is_file():
                continue
            data = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            h = data.get("loss_history") if isinstance(data, dict) else None
            if h is not None and len(h):
                hist.append([float(v) for v in (h.tolist() if hasattr(h, "tolist") else h)])
        out[arm] = hist
    return out


def per_image_gain(table_df: pd.DataFrame, arm: str, metric: str) -> pd.Series:
    """The gain of ``arm`` over the baseline on the same image, per (split, image_id), signed so
    that positive is better; images ok in both, finite values only."""
    ok = table_df[table_df["status"] == "ok"]
    b = ok[ok["dataset"] == BASELINE].set_index(["split", "image_id"])[metric]
    a = ok[ok["dataset"] == arm].set_index(["split", "image_id"])[metric]
    gain = (a - b).dropna() * (1.0 if HIGHER_IS_BETTER[metric] else -1.0)
    return gain[gain.map(math.isfinite)].sort_index()


def gain_sense(metric: str) -> str:
    """Which difference a gain is: "arm − baseline" for a higher-is-better metric, else
    "baseline − arm" (positive = better either way)."""
    return "arm − baseline" if HIGHER_IS_BETTER[metric] else "baseline − arm"


def select_examples(table_df: pd.DataFrame, arm: str, metric: str) -> list[tuple[str, str, str, float]]:
    """(kind, split, image_id, gain) of the best, median and worst image of ``arm`` ranked by its
    own per-image gain over the baseline on ``metric`` (per_image_gain; ties by (split, image
    id)); the median of an even count is the lower middle one; duplicates dropped for tiny sets."""
    gain = per_image_gain(table_df, arm, metric)
    if gain.empty:
        return []
    order = gain.sort_values(ascending=False, kind="mergesort")
    picks = [("best", 0), ("median", len(order) // 2), ("worst", len(order) - 1)]
    out, used = [], set()
    for kind, i in picks:
        key = order.index[i]
        if key in used:
            continue
        used.add(key)
        out.append((kind, key[0], key[1], float(order.iloc[i])))
    return out


def arm_example_metric(arm: str, optimized: Mapping[str, set], present: Sequence[str], uncalibrated) -> tuple[str | None, str]:
    """(metric, why) the examples of ``arm`` are ranked on: the evidence metric of the purpose
    its objective serves (conclusions.PURPOSES: the one its verdict rests on); when that comes from
    an uncalibrated network or the arm serves no purpose, the first calibrated metric held out for
    the arm (neither its objective nor a relative of it)."""
    own = optimized.get(arm, set())
    for purpose, candidates in PURPOSES:
        if own & set(candidates) or own & with_relatives(candidates):
            _, evidence = _evidence_metric(candidates, present, optimized)
            if evidence is not None and evidence not in uncalibrated:
                note = "its own objective" if evidence in with_relatives(own) else "held out"
                return evidence, f"the evidence metric of its {purpose} verdict, {note}"
            break
    held = next((m for m in present if m in HIGHER_IS_BETTER and m not in uncalibrated and m not in with_relatives(own)), None)
    return held, "the first calibrated metric it did not optimize (its purpose's evidence metric is uncalibrated or absent)"


def paired_gain_figure(table_df: pd.DataFrame, stats: Mapping, arms: Sequence[str], metrics: Sequence[str], uncalibrated, path: Path) -> Path:
    """The paired per-image gains of every arm on every metric with a direction, with the
    mean and CI of statistical_analysis.json's paired tests."""
    gains = {m: {a: per_image_gain(table_df, a, m) for a in arms} for m in metrics}
    labels = {m: f"{metric_label(m, False)}{' (uncalibrated)' if m in uncalibrated else ''}: {gain_sense(m)}" for m in metrics}
    return F.paired_gains(gains, gain_intervals(stats, arms, gains), labels, path)


def gain_intervals(stats: Mapping, arms: Sequence[str], gains: Mapping[str, Mapping]) -> dict[str, dict[str, tuple]]:
    """{metric: {arm: (mean, ci95_low, ci95_high)}} of arm − baseline from the paired tests of
    statistical_analysis.json, signed so that positive is better (the figure quotes, never
    recomputes)."""
    out: dict[str, dict[str, tuple]] = {}
    for metric in gains:
        for arm in arms:
            row = _pair_row(_get(stats, "tests", metric, "all", default=[]), arm, BASELINE)
            if not row:
                continue
            d, lo, hi = oriented(row, arm)
            if HIGHER_IS_BETTER[metric]:
                out.setdefault(metric, {})[arm] = (d, lo, hi)
            else:
                out.setdefault(metric, {})[arm] = tuple(None if v is None else -v for v in (d, hi, lo))
    return out


def cost_figure_data(perf: Mapping, table_df: pd.DataFrame, datasets: Sequence[str]) -> dict:
    """What the cost figure plots: the counted work per image (TFLOP, performance_summary.json's
    ``counted_work``) where every dataset has it, the axis the cost claims use; otherwise the
    compute per image of each batch on the device clock (``batch_costs``, the axis of the
    report's cost comparisons), labelled as measured time that depends on the machine."""
    counted = {d: _get(perf, "datasets", d, "counted_work") for d in datasets}
    if all(c and _get(c, "tflop_per_image", "mean") is not None for c in counted.values()):
        values = {d: (counted[d].get("per_image_values") or (table_df.loc[(table_df["dataset"] == d) & (table_df["status"] == "ok"), "tflop"].tolist() if "tflop" in table_df.columns else [])) for d in datasets}
        means = {d: tuple(_get(counted[d], "tflop_per_image", k) for k in ("mean", "ci95_low", "ci95_high")) for d in datasets}
        counter = ", ".join(sorted({str(c.get("counter")) for c in counted.values() if c.get("counter")}))
        return {"values": values, "means": means, "axis": f"counted work per image (TFLOP; counter: {counter or 'not named'})", "ylabel": "counted work per image (TFLOP)", "title": "Counted work per image (dots: images; black: mean, 95 % CI)"}
    costs = {d: _get(perf, "datasets", d, "batch_costs") or {} for d in datasets}
    clock = ", ".join(sorted({k for c in costs.values() for k in c.get("clock") or []})) or "clock not recorded"
    values = {d: costs[d].get("per_image_values") or [] for d in datasets}
    means = {d: tuple(_get(costs[d], "compute_per_image_s", k) for k in ("mean", "ci95_low", "ci95_high")) for d in datasets}
    return {"values": values, "means": means, "axis": f"measured compute per image on the device clock ({clock}), one dot per batch; the work was not counted (no FLOP count in performance_summary.json), so this axis depends on the machine and its load",
            "ylabel": f"compute per image (s, {clock})", "title": "Compute per image, one dot per batch (work not counted; black: mean, 95 % CI)"}


def _read_png(path: Path):
    return read_rgb(path) if path.is_file() else None


def make_figures(results: str | Path, losses: Mapping[str, Mapping], objectives: Mapping[str, Collection[str]], uncalibrated: Collection[str],
                 inputs: Mapping, datasets: Sequence[str], fig_dir: Path, report_dir: Path, log: Callable[[str], None]) -> dict:
    """Write every figure; returns {name: {"path": relative path, ...}} for the template.
    ``losses``: {arm: its block, with the loss spec}; ``objectives``: {arm: the metrics its loss
    optimizes}; ``uncalibrated``: metrics from an uncalibrated network (labelled)."""
    fig_dir.mkdir(parents=True, exist_ok=True)
    table_df = inputs["table"]
    cross = inputs["cross"]
    arms = [d for d in datasets if d != BASELINE]
    metrics = [m for m in METRICS if m in table_df.columns]
    uncal = set(uncalibrated)
    labels = {m: metric_label(m) + (" (uncalibrated)" if m in uncal else "") for m in (*EVALUATED_METRICS, "time_s")}
    judged = [m for m in EVALUATED_METRICS if m in HIGHER_IS_BETTER and m in table_df.columns]  # metrics with a direction
    rel = lambda p: Path(os.path.relpath(p, report_dir)).as_posix()  # noqa: E731
    out: dict[str, Any] = {}

    out["distributions"] = rel(F.distributions(table_df, datasets, metrics, labels, fig_dir / "distributions.png"))
    log("figure: distributions")
    loss_labels = {a: loss_description(losses[a]["loss"]) for a in arms if a in losses}
    histories = _losses_histories(results, table_df, arms)
    out["convergence"] = rel(F.convergence(histories, loss_labels, fig_dir / "convergence.png"))
    out["convergence_n"] = {a: len(h) for a, h in histories.items()}
    log("figure: convergence")
    out["paired_gains"] = rel(paired_gain_figure(table_df, inputs["stats"], arms, judged, uncal, fig_dir / "paired_gains.png"))
    log("figure: paired gains")
    cost = cost_figure_data(inputs["performance"], table_df, datasets)
    out["cost"] = rel(F.cost_per_image(cost["values"], cost["means"], cost["ylabel"], cost["title"], fig_dir / "cost_per_image.png"))
    out["cost_axis"] = cost["axis"]
    lp = next((m for m in ("lpips_alex", "lpips_vgg") if m in table_df.columns), None)
    if lp and "psnr" in table_df.columns:
        summaries = {d: _get(cross["datasets"], d, "all") or {} for d in datasets}
        out["tradeoff"] = rel(F.tradeoff(table_df, datasets, lp, "psnr", labels, summaries, fig_dir / "tradeoff_psnr_lpips.png"))
        out["tradeoff_x"] = metric_label(lp, False)
    corr = (inputs["stats"].get("correlations") or {})
    if corr:
        corr_labels = {f"{m}_improvement": f"{METRIC_LABELS.get(m, m)} gain" + (" (uncalibrated)" if m in uncal else "") for m in METRICS} | {"time_s": "time/image (s)"}
        out["spearman"] = rel(F.spearman_heatmaps(corr, corr_labels, fig_dir / "spearman_correlations.png"))
    log("figures: cost, trade-off, correlations")
    out["examples"] = [dict(e, path=rel(e["path"])) for e in example_figures(results, table_df, arms, {a: set(objectives[a]) for a in arms if a in objectives}, judged, uncal, fig_dir)]
    log(f"figures: examples of {len(out['examples'])} arms")
    return out


def example_figures(results: str | Path, table_df: pd.DataFrame, arms: Sequence[str], optimized: Mapping[str, set], present: Sequence[str], uncalibrated, fig_dir: Path) -> list[dict]:
    """One figure per arm: its best, median and worst image by its own gain on its example
    metric (arm_example_metric), each beside the original and the baseline; returns, per arm,
    the metric, why it was chosen, n, the picks and the figure's path."""
    out = []
    for arm in arms:
        metric, why = arm_example_metric(arm, optimized, present, uncalibrated)
        unit = " dB" if metric == "psnr" else ""
        rows, picks = [], []
        for kind, split, image_id, gain in select_examples(table_df, arm, metric) if metric else []:
            original = _read_png(layout.original_png(results, split, image_id))
            if original is None:
                continue
            panels = [(f"original\n{split}/{image_id}", original)]
            for d in (BASELINE, arm):
                row = table_df[(table_df["dataset"] == d) & (table_df["split"] == split) & (table_df["image_id"] == image_id)]
                img = _read_png(layout.dataset_png_dir(results, d) / split / f"{image_id}.png") if len(row) and row["status"].iloc[0] == "ok" else None
                r = row.iloc[0] if len(row) else {}
                label = f"{d}\n{METRIC_LABELS.get(metric, metric)} {fmt(r.get(metric), metric)}" + (f"\nPSNR {fmt(r.get('psnr'), 'psnr')} dB" if metric != "psnr" and "psnr" in table_df.columns else "")
                panels.append((label, img))
            rows.append((f"{kind}: {split}/{image_id}\ngain {fmt(gain, metric, True)}{unit}", panels))
            picks.append({"kind": kind, "split": split, "image_id": image_id, "gain": f"{fmt(gain, metric, True)}{unit}"})
        if rows:
            n = len(per_image_gain(table_df, arm, metric))
            title = f"{arm}: best, median and worst of {n} images by its own gain in {metric_label(metric, False)} over the baseline ({gain_sense(metric)}, positive = better)"
            path = F.example_rows(rows, title, fig_dir / f"examples_{arm}.png")
            out.append({"arm": arm, "metric": metric_label(metric, False), "why": why, "n": n, "path": path, "picks": picks})
    return out
