"""Figure wiring of the study section: which study figures (study_plots.py) are drawn from
study_analysis.json, the per-model tables and each model's dataset PNGs (layout.py, under
``<results_dir>/<model>/``)."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from latentopt.analysis.study_tests import finding_metrics, gain
from latentopt.data.images import read_rgb
from latentopt.report import study_plots as P
from latentopt.report.formatting import fmt, metric_label
from latentopt.workflow import layout
from latentopt.workflow.layout import BASELINE
from latentopt.workflow.metric_specs import EVALUATED_METRICS

MAX_PANELS = 2
METRIC_RULE = "panels: the calibrated metrics (one per monotone family) held out for the most arms (ties: metric_specs order), at most 2; a point per (model, dataset) holding the metric out, plain decodes included"
ZOOM_RULE = "the red box: the window (a quarter of the shorter side) where the first model's plain decode differs most from the original (mean absolute error), enlarged in the row below"
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
    q = analysis["quality"]
    count = {m: sum(not p["objective"] for p in q[m]["points"]) for m in q}
    order = finding_metrics([m for m in EVALUATED_METRICS if m in count])
    pool = [m for m in order if not q[m]["not_judged"]] or order
    return sorted(pool, key=lambda m: (-count[m], order.index(m)))[:MAX_PANELS]


def cost_axis(analysis: Mapping) -> tuple[str, str]:
    """(x-axis label, the key of a point's x): counted work, or device time when it is not recorded."""
    if analysis["metadata"].get("cost_axis"):
        return "counted work per image (TFLOP; the same on any machine)", "tflop"
    return "device time per image (s; context only: counted work not recorded)", "time"


def frontier_points(analysis: Mapping, metric: str, axis: str) -> list[dict]:
    """The figure's points of one metric: every (model, dataset) holding it out, plain decodes included."""
    out = []
    for p in analysis["quality"][metric]["points"]:
        if p["objective"]:
            continue
        c = analysis["costs"][p["model"]][p["arm"]]
        x = c["tflop_per_image"] if axis == "tflop" else c["device_time"]["mean"]
        if x is None or p["mean"] is None:
            continue
        out.append({"model": p["model"], "key": f"{p['model']}/{p['arm']}", "label": "plain" if p["arm"] == BASELINE else p["arm"], "plain": p["arm"] == BASELINE,
                    "x": x, "y": p["mean"], "y_lo": p["ci95_low"], "y_hi": p["ci95_high"], "ci_missing": p["ci95_low"] is None})
    return out


def frontier_figure(analysis: Mapping, path: Path) -> tuple[Path, list[str]]:
    metrics = figure_metrics(analysis)
    xlabel, axis = cost_axis(analysis)
    q = analysis["quality"]
    panels = [{"ylabel": f"{metric_label(m)}, mean of {q[m]['n_images']} images (better: up)" + (" (uncalibrated: not judged)" if q[m]["not_judged"] else ""), "higher_is_better": q[m]["higher_is_better"],
               "points": frontier_points(analysis, m, axis), "frontier": q[m]["frontier"]} for m in metrics]
    title = "Absolute held-out quality vs " + ("counted work" if axis == "tflop" else "device time") + " (mean, 95 % CI), every model on the same images"
    return P.frontier_figure(panels, model_labels(analysis["metadata"]["models"]), xlabel, title, path), metrics


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


def zoom_window(rows, fraction: int = 4) -> tuple[int, int, int, int] | None:
    """ZOOM_RULE: (top, left, size, size) over the first row's original (panel 0) and plain decode
    (panel 1), on a stride of half the window; None without both images."""
    if not rows or len(rows[0][1]) < 2:
        return None
    orig, plain = rows[0][1][0][1], rows[0][1][1][1]
    if orig is None or plain is None or orig.shape != plain.shape:
        return None
    err = np.abs(orig.astype(float) - plain.astype(float)).mean(axis=2)
    size = max(4, min(err.shape) // fraction)
    step = max(1, size // 2)
    best = max(((err[t:t + size, l:l + size].mean(), -t, -l) for t in range(0, err.shape[0] - size + 1, step) for l in range(0, err.shape[1] - size + 1, step)))
    return (-best[1], -best[2], size, size)


def study_figures(analysis: Mapping, tables: Mapping[str, pd.DataFrame], results_dir: str | Path, fig_dir: str | Path, report_dir: str | Path, *, load: Callable[[Path], np.ndarray | None] = _read) -> dict:
    """Write the study figures; returns {name: path relative to report_dir, ...} for the
    study template (frontier, frontier_caption, grid, grid_rule)."""
    fig_dir = Path(fig_dir)
    rel = lambda p: Path(os.path.relpath(p, report_dir)).as_posix()  # noqa: E731
    path, metrics = frontier_figure(analysis, fig_dir / "study_frontier.png")
    axis = "counted work per image (TFLOP)" if analysis["metadata"].get("cost_axis") else "device time per image (counted work not recorded: context only, no arm ranked by it)"
    out = {"frontier": rel(path), "frontier_caption": (
        f"Absolute quality (y, natural units, mean with 95 % CI) against {axis} (x), every model on the same images; "
        "squares are plain decodes. The dashed line joins the frontier over all models: no other point has less counted work and better quality "
        "(identical counted work is the same cost). Arms that optimize the metric (or a relative) are left out. "
        f"Panels: {', '.join(metric_label(m, False) for m in metrics)} ({METRIC_RULE}).")}
    key = pick_image(tables)
    if key:
        rows = grid_rows(tables, analysis["metadata"]["models"], results_dir, key, load)
        zoom = zoom_window(rows)
        out["grid"] = rel(P.model_grid(rows, f"{key[0]}/{key[1]}: the median image by the mean PSNR gain over every (model, loss arm)", fig_dir / "study_examples.png", zoom))
        out["grid_rule"] = f"Image {key[0]}/{key[1]}, {GRID_RULE}; one row per model" + (f"; {ZOOM_RULE}." if zoom else ".")
    return out
