"""Figures of the study section (matplotlib, Agg, PNG), in plots.py's style: plain data in, one
PNG out, no statistic computed here (points, intervals and frontiers come from
study_analysis.json). Point labels are placed so that no two overlap (place_labels)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from latentopt.report.plots import _no_data, _save, dataset_colors
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure  # plots imported first: the Agg backend is set
from matplotlib.patches import Rectangle
from matplotlib.transforms import Bbox

# label offsets tried in turn (points), nearest first: beside the point, then further out (with a
# leader line); the first that overlaps no placed label, marker or error bar and stays inside the
# axes wins
OFFSETS = sorted(((dx, dy) for dx in (6, -6, 18, -18, 32, -32, 50, -50, 70, -70) for dy in range(-60, 61, 8)), key=lambda o: (abs(o[0]) + abs(o[1] - 2), o[0] < 0, o[1]))


def _err(v, lo, hi):
    """Asymmetric error bar lengths, None when the interval is missing (n too small)."""
    return None if lo is None or hi is None else [[v - lo], [hi - v]]


def place_labels(ax, items: Sequence[tuple[float, float, str, str]], bars: Sequence[tuple[float, float, float]] = (), fontsize: float = 7) -> list:
    """Annotate (x, y, text, colour) so that no two labels overlap each other or a marker, inside
    the axes: greedy over OFFSETS, first avoiding the error bars ``bars`` (x, low, high) too, then
    not; a label with no free place takes the one of least overlap. Returns the texts."""
    renderer = ax.figure.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    hard, soft = [], []
    for x, y in [(i[0], i[1]) for i in items]:
        px, py = ax.transData.transform((x, y))
        hard.append(Bbox.from_extents(px - 5, py - 5, px + 5, py + 5))
    for x, lo, hi in bars:
        (px, plo), (_, phi) = ax.transData.transform((x, lo)), ax.transData.transform((x, hi))
        soft.append(Bbox.from_extents(px - 4, min(plo, phi), px + 4, max(plo, phi)))
    texts = []
    for x, y, text, color in items:
        probe = ax.annotate(text, (x, y), xytext=(0, 0), textcoords="offset points", fontsize=fontsize)
        w, h = probe.get_window_extent(renderer).width, probe.get_window_extent(renderer).height
        probe.remove()
        px, py = ax.transData.transform((x, y))
        scale = ax.figure.dpi / 72.0

        def box(dx, dy):
            x0 = px + dx * scale - (w if dx < 0 else 0)
            y0 = py + dy * scale - (0 if dy > 0 else h)
            return Bbox.from_extents(x0 - 1, y0 - 1, x0 + w + 1, y0 + h + 1)

        def inside(b):
            return frame.x0 <= b.x0 and b.x1 <= frame.x1 and frame.y0 <= b.y0 and b.y1 <= frame.y1

        def overlap(b, boxes):
            return sum(max(0.0, min(b.x1, o.x1) - max(b.x0, o.x0)) * max(0.0, min(b.y1, o.y1) - max(b.y0, o.y0)) for o in boxes)

        choice = next((o for o in OFFSETS if inside(box(*o)) and overlap(box(*o), hard + soft) == 0), None)
        choice = choice or next((o for o in OFFSETS if inside(box(*o)) and overlap(box(*o), hard) == 0), None)
        choice = choice or min(OFFSETS, key=lambda o: (overlap(box(*o), hard) + (0 if inside(box(*o)) else 1e9), abs(o[0]) + abs(o[1])))
        dx, dy = choice
        texts.append(ax.annotate(text, (x, y), xytext=(dx, dy), textcoords="offset points", fontsize=fontsize, color=color, ha="left" if dx > 0 else "right", va="bottom" if dy > 0 else "top",
                                 arrowprops={"arrowstyle": "-", "color": color, "lw": 0.5, "alpha": 0.6} if abs(dx) > 6 or abs(dy) > 11 else None))
        hard.append(box(dx, dy))
    return texts


def frontier_panel(ax, points: Sequence[Mapping], frontier: Sequence[str], colors: Mapping[str, str], ylabel: str, log_x: bool, higher_is_better: bool = True) -> None:
    """Every (model, dataset) point with its CIs (square: a plain decode), the frontier as a line
    through ringed points; the y axis runs so that better is up."""
    if not points:
        _no_data(ax, "no point with both a quality and a cost")
        return
    for p in points:
        c = colors[p["model"]]
        ax.errorbar(p["x"], p["y"], yerr=_err(p["y"], p.get("y_lo"), p.get("y_hi")), fmt="s" if p["plain"] else "o", ms=7, color=c, mfc="white" if p.get("ci_missing") else c, mec=c, capsize=3, zorder=3)
    front = sorted((p["x"], p["y"]) for p in points if p["key"] in frontier)
    if front:
        xs, ys = zip(*front)
        ax.plot(xs, ys, color="0.15", lw=1.4, ls="--", zorder=4)
        ax.plot(xs, ys, "o", ms=13, mfc="none", mec="0.15", mew=1.2, zorder=5)
    if not higher_is_better:
        ax.invert_yaxis()
    if log_x:
        ax.set_xscale("log")
    ax.margins(x=0.25, y=0.2)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)


def frontier_figure(panels: Sequence[Mapping], model_labels: Mapping[str, str], xlabel: str, title: str, path: str | Path) -> Path:
    """``panels``: [{"ylabel", "points", "frontier"}], points {model, key, label, x, y, y_lo,
    y_hi, plain, ci_missing}; ``model_labels``: legend text per model."""
    colors = dict(zip(model_labels, list(dataset_colors(["", *model_labels]).values())[1:]))
    n = max(1, len(panels))
    fig = Figure(figsize=(6.2 * n, 5.0), layout="constrained")
    axes = fig.subplots(1, n, squeeze=False).ravel()
    xs = [p["x"] for panel in panels for p in panel["points"] if p["x"] and p["x"] > 0]
    log_x = bool(xs) and max(xs) / min(xs) > 20
    for ax, panel in zip(axes, panels):
        ax.set_xlabel(xlabel)
        frontier_panel(ax, panel["points"], panel["frontier"], colors, panel["ylabel"], log_x, panel.get("higher_is_better", True))
    if not panels:
        _no_data(axes[0])
    handles = [axes[0].plot([], [], "o", color=colors[m], label=label)[0] for m, label in model_labels.items()]
    handles.append(axes[0].plot([], [], "s", color="0.3", label="square: the plain decode")[0])
    handles.append(axes[0].plot([], [], "--o", color="0.15", mfc="none", ms=10, label="frontier over all models (ringed)")[0])
    handles.append(axes[0].plot([], [], "o", mfc="white", mec="0.3", color="0.3", label="open marker: no CI (n too small)")[0])
    fig.legend(handles=handles, loc="outside lower center", ncol=3, fontsize=8)
    fig.suptitle(title, fontsize=10)
    FigureCanvasAgg(fig).draw()  # the layout settles; then it is frozen so the labels stay where placed
    fig.set_layout_engine("none")
    for ax, panel in zip(axes, panels):
        place_labels(ax, [(p["x"], p["y"], p["label"], colors[p["model"]]) for p in panel["points"]],
                     [(p["x"], p["y_lo"], p["y_hi"]) for p in panel["points"] if p.get("y_lo") is not None and p.get("y_hi") is not None])
    return _save(fig, path)


def model_grid(rows: Sequence[tuple[str, Sequence[tuple[str, np.ndarray | None]]]], title: str, path: str | Path, zoom: tuple[int, int, int, int] | None = None) -> Path:
    """One row per model: (row label, [(panel label, H x W x 3 uint8 or None), ...]); with
    ``zoom`` = (top, left, height, width), each model gets a second row with that window
    enlarged, and the window is outlined in the full images."""
    n_cols = max((len(panels) for _, panels in rows), default=1)
    first = next((img for _, panels in rows for _, img in panels if img is not None), None)
    aspect = first.shape[0] / first.shape[1] if first is not None else 1.0
    per_model = 2 if zoom else 1
    n_rows = max(1, len(rows)) * per_model
    zh = zoom[2] / zoom[3] if zoom else 1.0
    heights = [r for _ in range(max(1, len(rows))) for r in ([aspect, zh] if zoom else [aspect])]
    fig = Figure(figsize=(2.3 * n_cols + 0.6, sum(2.3 * h + 0.45 for h in heights) + 0.5), layout="constrained")
    axes = fig.subplots(n_rows, n_cols, squeeze=False, gridspec_kw={"height_ratios": heights})
    for i, (row_label, panels) in enumerate(rows):
        for k in range(per_model):
            for j in range(n_cols):
                ax = axes[i * per_model + k, j]
                ax.set_xticks([])
                ax.set_yticks([])
                if j >= len(panels):
                    ax.set_visible(False)
                    continue
                label, img = panels[j]
                if img is None:
                    _no_data(ax, "not available")
                elif k == 0:
                    ax.imshow(img, interpolation="nearest")
                    if zoom:
                        ax.add_patch(Rectangle((zoom[1] - 0.5, zoom[0] - 0.5), zoom[3], zoom[2], fill=False, ec="red", lw=1.2))
                else:
                    ax.imshow(img[zoom[0]:zoom[0] + zoom[2], zoom[1]:zoom[1] + zoom[3]], interpolation="nearest")
                    for s in ax.spines.values():
                        s.set_edgecolor("red")
                ax.set_title(label if k == 0 else "zoom (red box)", fontsize=7)
            axes[i * per_model + k, 0].set_ylabel(row_label if k == 0 else "zoom", fontsize=8)
    fig.suptitle(title, fontsize=9)
    return _save(fig, path)
