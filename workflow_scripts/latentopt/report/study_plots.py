"""Figures of the study section (matplotlib, Agg, PNG), in plots.py's style: plain data in, one
PNG out, no statistic computed here (points, intervals and frontiers come from
study_analysis.json)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from latentopt.report.plots import _no_data, _save, dataset_colors
from matplotlib.figure import Figure  # plots imported first: the Agg backend is set


def _err(v, lo, hi):
    """Asymmetric error bar lengths, None when the interval is missing (n too small)."""
    return None if lo is None or hi is None else [[v - lo], [hi - v]]


def frontier_panel(ax, points: Sequence[Mapping], frontiers: Mapping[str, Sequence[str]], colors: Mapping[str, str], ylabel: str) -> None:
    """One panel: every (model, arm) point with its CIs, each model's frontier as a line."""
    if not points:
        _no_data(ax, "no arm with both a gain and a compute cost")
        return
    for p in points:
        open_marker = p.get("ci_missing")
        ax.errorbar(p["x"], p["y"], xerr=_err(p["x"], p.get("x_lo"), p.get("x_hi")), yerr=_err(p["y"], p.get("y_lo"), p.get("y_hi")), fmt="o", ms=7, color=colors[p["model"]], mfc="white" if open_marker else colors[p["model"]], mec=colors[p["model"]], capsize=3, zorder=3)
        ax.annotate(p["arm"], (p["x"], p["y"]), xytext=(5, 4), textcoords="offset points", fontsize=7, color=colors[p["model"]])
    for model, arms in frontiers.items():
        pts = sorted((p["x"], p["y"]) for p in points if p["model"] == model and p["arm"] in arms)
        if pts:
            xs, ys = zip(*pts)
            ax.plot(xs, ys, color=colors[model], lw=1.6, ls="--", alpha=0.9, zorder=4)
    xs = np.array([p["x"] for p in points], dtype=float)
    if xs.min() > 0 and xs.max() / xs.min() > 20:
        ax.set_xscale("log")
    ax.axhline(0, color="0.5", lw=0.8, ls=":")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)


def frontier_figure(panels: Sequence[Mapping], model_labels: Mapping[str, str], clock: str, path: str | Path) -> Path:
    """``panels``: [{"ylabel", "points", "frontiers"}]; ``model_labels``: legend text per model
    (demo/uncalibrated marked there); x = compute per image on ``clock``."""
    colors = dataset_colors(list(model_labels))
    n = max(1, len(panels))
    fig = Figure(figsize=(5.2 * n, 4.4), layout="constrained")
    axes = fig.subplots(1, n, squeeze=False).ravel()
    for ax, panel in zip(axes, panels):
        frontier_panel(ax, panel["points"], panel["frontiers"], colors, panel["ylabel"])
        ax.set_xlabel(f"compute per image (s, device clock: {clock})")
    if not panels:
        _no_data(axes[0])
    handles = [axes[0].plot([], [], "o", color=colors[m], label=label)[0] for m, label in model_labels.items()]
    handles.append(axes[0].plot([], [], "--", color="0.3", label="frontier (Pareto-optimal arms)")[0])
    handles.append(axes[0].plot([], [], "o", mfc="white", mec="0.3", color="0.3", label="open marker: a CI with n too small (no bar)")[0])
    fig.legend(handles=handles, loc="outside lower center", ncol=2, fontsize=8)
    fig.suptitle("Held-out gain over the model's own baseline vs compute (mean, 95 % CI)", fontsize=10)
    return _save(fig, path)


def model_grid(rows: Sequence[tuple[str, Sequence[tuple[str, np.ndarray | None]]]], title: str, path: str | Path) -> Path:
    """One row per model: (row label, [(panel label, H x W x 3 uint8 or None), ...])."""
    n_cols = max((len(panels) for _, panels in rows), default=1)
    first = next((img for _, panels in rows for _, img in panels if img is not None), None)
    aspect = first.shape[0] / first.shape[1] if first is not None else 1.0
    fig = Figure(figsize=(2.3 * n_cols + 0.6, (2.3 * aspect + 0.5) * max(1, len(rows)) + 0.5), layout="constrained")
    axes = fig.subplots(max(1, len(rows)), n_cols, squeeze=False)
    for i, (row_label, panels) in enumerate(rows):
        for j in range(n_cols):
            ax = axes[i, j]
            ax.set_xticks([])
            ax.set_yticks([])
            if j >= len(panels):
                ax.set_visible(False)
                continue
            label, img = panels[j]
            if img is None:
                _no_data(ax, "not available")
            else:
                ax.imshow(img, interpolation="nearest")
            ax.set_title(label, fontsize=7)
        axes[i, 0].set_ylabel(row_label, fontsize=8)
    fig.suptitle(title, fontsize=9)
    return _save(fig, path)
