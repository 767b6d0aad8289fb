"""Figure wiring of the report: which figures (latentopt.report.plots) are drawn from which inputs."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from latentopt.workflow import layout
from latentopt.workflow.metric_specs import METRICS
from latentopt.workflow.layout import BASELINE
from latentopt.report.arms import loss_description
from latentopt.report.formatting import METRIC_LABELS, fmt, metric_label
from latentopt.report.inputs import _get
from latentopt.data.images import read_rgb
from latentopt.report import plots as F
from latentopt.workflow.objectives import uncalibrated_metrics


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


EXAMPLE_RULE = "the mean over all loss arms of the per-image PSNR gain over the baseline (images ok in the baseline and every loss arm)"


def select_examples(table_df: pd.DataFrame, arms: str | Sequence[str]) -> list[tuple[str, str, str, float]]:
    """(kind, split, image_id, gain) for the best, median and worst image by EXAMPLE_RULE (a
    single arm: that arm's PSNR gain): the same images whatever order the losses are listed in;
    duplicates dropped for tiny sets."""
    arms = [arms] if isinstance(arms, str) else list(arms)
    ok = table_df[table_df["status"] == "ok"]
    b = ok[ok["dataset"] == BASELINE].set_index(["split", "image_id"])["psnr"]
    gains = [(ok[ok["dataset"] == a].set_index(["split", "image_id"])["psnr"] - b) for a in arms]
    if not gains:
        return []
    gain = pd.concat(gains, axis=1).dropna().mean(axis=1)
    gain = gain[gain.map(math.isfinite)]
    if gain.empty:
        return []
    order = gain.sort_index().sort_values(ascending=False, kind="mergesort")  # ties: by (split, image id)
    picks = [("best", 0), ("median", len(order) // 2), ("worst", len(order) - 1)]
    out, used = [], set()
    for kind, i in picks:
        key = order.index[i]
        if key in used:
            continue
        used.add(key)
        out.append((kind, key[0], key[1], float(order.iloc[i])))
    return out


def _read_png(path: Path):
    return read_rgb(path) if path.is_file() else None


def make_figures(results: str | Path, config: Mapping, inputs: Mapping, datasets: Sequence[str], fig_dir: Path, report_dir: Path, log: Callable[[str], None]) -> dict:
    """Write every figure; returns {name: {"path": relative path, ...}} for the template."""
    fig_dir.mkdir(parents=True, exist_ok=True)
    table_df = inputs["table"]
    cross = inputs["cross"]
    arms = [d for d in datasets if d != BASELINE]
    metrics = [m for m in METRICS if m in table_df.columns]
    uncal = uncalibrated_metrics(config)
    labels = {m: metric_label(m) + (" (uncalibrated)" if m in uncal else "") for m in (*METRICS, "time_s")}
    rel = lambda p: Path(os.path.relpath(p, report_dir)).as_posix()  # noqa: E731
    out: dict[str, Any] = {}

    out["distributions"] = rel(F.distributions(table_df, datasets, metrics, labels, fig_dir / "distributions.png"))
    log("figure: distributions")
    loss_labels = {a: loss_description(config["losses"][a]["loss"]) for a in arms if a in config["losses"]}
    histories = _losses_histories(results, table_df, arms)
    out["convergence"] = rel(F.convergence(histories, loss_labels, fig_dir / "convergence.png"))
    out["convergence_n"] = {a: len(h) for a, h in histories.items()}
    log("figure: convergence")
    if "time_s" in table_df.columns:
        out["time"] = rel(F.time_per_image(table_df, datasets, fig_dir / "time_per_image.png"))
    lp = next((m for m in ("lpips_alex", "lpips_vgg") if m in table_df.columns), None)
    if lp and "psnr" in table_df.columns:
        summaries = {d: _get(cross["datasets"], d, "all") or {} for d in datasets}
        out["tradeoff"] = rel(F.tradeoff(table_df, datasets, lp, "psnr", labels, summaries, fig_dir / "tradeoff_psnr_lpips.png"))
        out["tradeoff_x"] = metric_label(lp, False)
    corr = (inputs["stats"].get("correlations") or {})
    if corr:
        corr_labels = {f"{m}_improvement": f"{METRIC_LABELS.get(m, m)} gain" + (" (uncalibrated)" if m in uncal else "") for m in METRICS} | {"time_s": "time/image (s)"}
        out["spearman"] = rel(F.spearman_heatmaps(corr, corr_labels, fig_dir / "spearman_correlations.png"))
    log("figures: time, trade-off, correlations")
    grids = []
    if arms:
        for kind, split, image_id, gain in select_examples(table_df, arms):
            panels = [(f"original\n{split}/{image_id}", _read_png(layout.original_png(results, split, image_id)))]
            if panels[0][1] is None:
                continue
            for d in datasets:
                row = table_df[(table_df["dataset"] == d) & (table_df["split"] == split) & (table_df["image_id"] == image_id)]
                img = _read_png(layout.dataset_png_dir(results, d) / split / f"{image_id}.png") if len(row) and row["status"].iloc[0] == "ok" else None
                label = d
                if img is not None:
                    r = row.iloc[0]
                    label += f"\nPSNR {fmt(r.get('psnr'), 'psnr')} dB"
                    if lp:
                        label += f", {METRIC_LABELS[lp]} {fmt(r.get(lp), lp)}" + (" (uncal.)" if lp in uncal else "")
                else:
                    label += "\n(failed)"
                panels.append((label, img))
            crop_ref = 1 if len(panels) > 1 and panels[1][1] is not None else 0
            title = f"{kind} image by the mean PSNR gain of the losses over the baseline: {split}/{image_id} ({gain:+.2f} dB)"
            path = F.image_grid(panels, crop_ref, title, fig_dir / f"examples_{kind}.png")
            grids.append({"kind": kind, "split": split, "image_id": image_id, "gain": f"{gain:+.2f}", "path": rel(path)})
        out["grids_rule"] = EXAMPLE_RULE
    out["grids"] = grids
    log(f"figures: {len(grids)} image grids")
    return out

