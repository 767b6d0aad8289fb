"""Figure wiring of the study section: which study figures (study_plots.py) are drawn from
study_analysis.json, the per-model tables and each model's dataset PNGs (layout.py, under
``<results_dir>/<model>/``)."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from latentopt.analysis.study_tests import gain
from latentopt.data.images import read_rgb
from latentopt.report import study_plots as P
from latentopt.report.formatting import fmt, metric_label
from latentopt.workflow import layout
from latentopt.workflow.layout import BASELINE
from latentopt.workflow.metric_specs import EVALUATED_METRICS

MAX_PANELS = 2
METRIC_RULE = "panels: the calibrated metrics held out for the most loss arms (ties: metric_specs order), at most 2; a point per (model, arm) holding the metric out"
GRID_RULE = "the median image by the mean PSNR gain over the baseline across every (model, loss arm), among the images ok in every model's baseline and loss arms (ties by split, image id)"


def model_labels(models: Mapping) -> dict[str, str]:
    """Short figure labels: the model's name, its decoder size and whether it is demo-only (the
    full description is the report's models table)."""
    def label(m, d):
        size = d.get("decoder_parameters")
        parts = ([f"{size / 1e6:.2f} M decoder params" if size >= 1e5 else f"{size:,} decoder params"] if size else []) + (["demo/synthetic"] if d.get("synthetic") else [])
        return f"{m} ({', '.join(parts)})" if parts else m
    return {m: label(m, d) for m, d in models.items()}


def figure_metrics(analysis: Mapping) -> list[str]:
    """METRIC_RULE; only uncalibrated metrics left: those (their panels say so)."""
    count = {}
    for arms in analysis["gains"].values():
        for g in arms.values():
            for m in g["held_out"]:
                count[m] = count.get(m, 0) + 1
    uncal = set(analysis["metadata"].get("uncalibrated", []))
    order = [m for m in EVALUATED_METRICS if m in count]
    pool = [m for m in order if m not in uncal] or order
    return sorted(pool, key=lambda m: (-count[m], order.index(m)))[:MAX_PANELS]


def frontier_points(analysis: Mapping, metric: str) -> list[dict]:
    out = []
    for model, arms in analysis["gains"].items():
        for arm, g in arms.items():
            t, c = g["tests"].get(metric), analysis["costs"][model].get(arm, {})
            if not t or t.get("mean_diff") is None or c.get("mean") is None:
                continue
            missing = t.get("ci95_low") is None or c.get("ci95_low") is None
            out.append({"model": model, "arm": arm, "x": c["mean"], "x_lo": c.get("ci95_low"), "x_hi": c.get("ci95_high"), "y": t["mean_diff"], "y_lo": t.get("ci95_low"), "y_hi": t.get("ci95_high"), "ci_missing": missing})
    return out


def clock_text(analysis: Mapping) -> str:
    clocks = sorted({k for arms in analysis["costs"].values() for c in arms.values() for k in c.get("clock") or []})
    return ", ".join(clocks) or "not recorded"


def frontier_figure(analysis: Mapping, path: Path) -> tuple[Path, list[str]]:
    uncal = set(analysis["metadata"].get("uncalibrated", []))
    metrics = figure_metrics(analysis)
    panels = [{"ylabel": f"gain in {metric_label(m)}" + (" (uncalibrated: not judged)" if m in uncal else "") + " (> 0 better)",
               "points": frontier_points(analysis, m), "frontiers": {mod: f.get(m, []) for mod, f in analysis.get("frontiers", {}).items()}} for m in metrics]
    return P.frontier_figure(panels, model_labels(analysis["metadata"]["models"]), clock_text(analysis), path), metrics


def pick_image(tables: Mapping[str, pd.DataFrame]) -> tuple[str, str] | None:
    """GRID_RULE: (split, image_id) or None."""
    gains = [gain(t, arm, "psnr").rename(f"{m}/{arm}") for m, t in tables.items() for arm in dict.fromkeys(t["dataset"]) if arm != BASELINE]
    if not gains:
        return None
    mean = pd.concat(gains, axis=1, join="inner").dropna().mean(axis=1)
    if mean.empty:
        return None
    order = mean.sort_index().sort_values(kind="mergesort")
    return tuple(order.index[len(order) // 2])


def _read(path: Path) -> np.ndarray | None:
    return read_rgb(path) if path.is_file() else None


def grid_rows(tables: Mapping[str, pd.DataFrame], models: Mapping, results_dir: str | Path, key: tuple[str, str], load: Callable[[Path], np.ndarray | None]) -> list:
    split, image_id = key
    arms = list(dict.fromkeys(a for t in tables.values() for a in t["dataset"] if a != BASELINE))
    labels = model_labels(models)
    rows = []
    for model, t in tables.items():
        root = Path(results_dir) / model
        panels = [("original", load(layout.original_png(root, split, image_id)))]
        for arm in [BASELINE, *arms]:
            r = t[(t["dataset"] == arm) & (t["split"] == split) & (t["image_id"] == image_id) & (t["status"] == "ok")]
            img = load(layout.dataset_png_dir(root, arm) / split / f"{image_id}.png") if len(r) else None
            panels.append((f"{arm}\nPSNR {fmt(r['psnr'].iloc[0], 'psnr')} dB" if len(r) else f"{arm}\n(not run / failed)", img))
        rows.append((labels.get(model, model).replace(" (", "\n(", 1).replace(", ", ",\n"), panels))
    return rows


def study_figures(analysis: Mapping, tables: Mapping[str, pd.DataFrame], results_dir: str | Path, fig_dir: str | Path, report_dir: str | Path, *, load: Callable[[Path], np.ndarray | None] = _read) -> dict:
    """Write the study figures; returns {name: path relative to report_dir, ...} for the
    study template (frontier, frontier_note, grid, grid_rule)."""
    fig_dir = Path(fig_dir)
    rel = lambda p: Path(os.path.relpath(p, report_dir)).as_posix()  # noqa: E731
    path, metrics = frontier_figure(analysis, fig_dir / "study_frontier.png")
    out = {"frontier": rel(path), "frontier_note": f"Panels: {', '.join(metric_label(m, False) for m in metrics)} ({METRIC_RULE}). Open markers: a CI with n too small."}
    key = pick_image(tables)
    if key:
        rows = grid_rows(tables, analysis["metadata"]["models"], results_dir, key, load)
        out["grid"] = rel(P.model_grid(rows, f"{key[0]}/{key[1]}: the median image by the mean PSNR gain over every (model, loss arm)", fig_dir / "study_examples.png"))
        out["grid_rule"] = f"Image {key[0]}/{key[1]}, {GRID_RULE}; one row per model."
    return out
