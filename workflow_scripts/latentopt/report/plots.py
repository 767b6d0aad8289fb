"""Figures of the comparison report (matplotlib, Agg backend, PNG files).

Every function takes plain data (pandas tables, numpy arrays, dicts read from the evaluation
JSONs), writes one PNG and returns its path; none of them computes a statistic that the report
quotes (those come from evaluation/statistics). Colours are fixed per dataset so that a dataset
has the same colour in every figure.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display; must precede any pyplot import anywhere in this process

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from latentopt.core.fileio import atomic_path  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

DPI = 120
_PALETTE = ("#4d4d4d", "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#bcbd22")


def dataset_colors(datasets: Sequence[str]) -> dict[str, str]:
    """One colour per dataset, in order (the first, normally the baseline, is grey)."""
    return {d: _PALETTE[i % len(_PALETTE)] for i, d in enumerate(datasets)}


def _save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:  # complete or absent, with its checksum record
        fig.savefig(tmp, dpi=DPI, facecolor="white", format="png")  # constrained layout already fits the canvas
    return path


def _no_data(ax, text: str = "no data") -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="0.4")
    ax.set_xticks([])
    ax.set_yticks([])


def _grid(n: int, max_cols: int) -> tuple[int, int]:
    cols = max(1, min(n, max_cols))
    return math.ceil(max(n, 1) / cols), cols


# ---------------------------------------------------------------------------------------------
# distributions


def distributions(table: pd.DataFrame, datasets: Sequence[str], metrics: Sequence[str], labels: Mapping[str, str], path: str | Path, *, seed: int = 0) -> Path:
    """Box plot (median, quartiles, 1.5 IQR whiskers) plus every image as a jittered point, one
    panel per metric, one box per dataset (successful images only)."""
    colors = dataset_colors(datasets)
    rows, cols = _grid(len(metrics), 3)
    fig = Figure(figsize=(4.4 * cols, 3.6 * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    rng = np.random.default_rng(seed)
    ok = table[table["status"] == "ok"]
    for ax, metric in zip(axes, metrics):
        values = [ok.loc[ok["dataset"] == d, metric].to_numpy(dtype=float) for d in datasets]
        values = [v[np.isfinite(v)] for v in values]
        if not any(len(v) for v in values):
            _no_data(ax)
            ax.set_title(labels.get(metric, metric))
            continue
        pos = np.arange(1, len(datasets) + 1)
        present = [i for i, v in enumerate(values) if len(v)]
        bp = ax.boxplot([values[i] for i in present], positions=pos[present], widths=0.55, showfliers=False, patch_artist=True, medianprops={"color": "black"})
        for patch, i in zip(bp["boxes"], present):
            patch.set_facecolor(colors[datasets[i]])
            patch.set_alpha(0.35)
        for i, v in enumerate(values):
            if len(v):
                ax.scatter(pos[i] + rng.uniform(-0.16, 0.16, len(v)), v, s=10, color=colors[datasets[i]], alpha=0.8, linewidths=0, zorder=3)
            else:
                ax.text(pos[i], 0.5, "all\nfailed", transform=ax.get_xaxis_transform(), ha="center", va="center", fontsize=8, color="0.4")
        ax.set_xticks(pos, datasets, rotation=30 if len(datasets) > 4 else 0)
        ax.set_xlim(0.4, len(datasets) + 0.6)
        ax.set_title(labels.get(metric, metric))
        ax.grid(axis="y", alpha=0.3)
    for ax in axes[len(metrics):]:
        ax.set_visible(False)
    return _save(fig, path)


# ---------------------------------------------------------------------------------------------
# paired gains


def paired_gains(gains: Mapping[str, Mapping[str, pd.Series]], intervals: Mapping[str, Mapping[str, tuple]], labels: Mapping[str, str], path: str | Path) -> Path:
    """One panel per metric: every image's gain of each arm over the baseline on the same image
    (a dot; up is better), the dots of one image joined across the arms by a thin line, and the
    mean gain with its 95 % CI as quoted by statistical_analysis.json (``intervals[metric][arm]``
    = (mean, low, high), signed so that positive is better). ``gains[metric][arm]``: the
    per-image gains indexed by (split, image_id). Tick labels give how many images improved."""
    metrics = [m for m in gains if any(len(v) for v in gains[m].values())]
    rows, cols = _grid(len(metrics), 3)
    n_arms = max((len(gains[m]) for m in metrics), default=1)
    longest = max((len(a) for m in metrics for a in gains[m]), default=1)
    width = max(4.6, n_arms * max(0.8, 0.095 * longest) + 1.2)  # room for every tick label side by side
    fig = Figure(figsize=(width * cols, 3.7 * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, metric in zip(axes, metrics):
        arms = list(gains[metric])
        colors = dataset_colors(["baseline", *arms])
        frame = pd.concat({a: gains[metric][a] for a in arms}, axis=1)
        pos = np.arange(len(arms), dtype=float)
        for _, row in frame.iterrows():  # one image: a grey line through its dots across the arms
            ax.plot(pos, row.to_numpy(dtype=float), color="0.6", lw=0.6, alpha=0.6, zorder=1)
        ticks = []
        for i, arm in enumerate(arms):
            v = frame[arm].to_numpy(dtype=float)
            v = v[np.isfinite(v)]
            ax.scatter(np.full(len(v), pos[i]), v, s=16, color=colors[arm], alpha=0.85, linewidths=0, zorder=3)
            mean_ci = (intervals.get(metric) or {}).get(arm)
            if mean_ci and all(x is not None and np.isfinite(x) for x in mean_ci):
                mean, lo, hi = mean_ci
                ax.errorbar(pos[i] + 0.22, mean, yerr=[[mean - lo], [hi - mean]], fmt="D", ms=5, color="black", capsize=3, zorder=4)
            ticks.append(f"{arm}\n{int((v > 0).sum())}/{len(v)} better")
        ax.axhline(0, color="0.3", lw=0.9, ls="--", zorder=2)
        ax.set_xticks(pos, ticks, fontsize=8)
        ax.set_xlim(-0.5, len(arms) - 0.3)
        ax.set_title(labels.get(metric, metric), fontsize=10)
        ax.set_ylabel("gain over baseline (up = better)", fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    for ax in axes[len(metrics):]:
        ax.set_visible(False)
    if not metrics:
        _no_data(axes[0])
    fig.suptitle("Per-image gain over the baseline on the same image (dots: images, grey lines: one image across arms; black: mean, 95 % CI)", fontsize=10)
    return _save(fig, path)


# ---------------------------------------------------------------------------------------------
# convergence


def relative_loss_curves(histories: Sequence[Sequence[float]]) -> np.ndarray:
    """Per image (L_t - L_0) / |L_0| for every iteration t (rows: images). Shorter histories (early
    stopping) are padded with their last value; images with L_0 = 0 or no finite L_0 are left
    out."""
    rows = []
    length = max((len(h) for h in histories), default=0)
    for h in histories:
        h = np.asarray(h, dtype=float)
        if h.size == 0 or not np.isfinite(h[0]) or h[0] == 0:
            continue
        rel = (h - h[0]) / abs(h[0])
        rows.append(np.concatenate([rel, np.full(length - h.size, rel[-1])]))
    return np.array(rows) if rows else np.zeros((0, length))


def convergence(histories: Mapping[str, Sequence[Sequence[float]]], loss_labels: Mapping[str, str], path: str | Path) -> Path:
    """Mean relative loss change per iteration (line) with the inter-quartile range across images
    (band), one panel per loss arm."""
    arms = list(histories)
    colors = dataset_colors(["baseline", *arms])
    rows, cols = _grid(len(arms), 3)
    fig = Figure(figsize=(4.6 * cols, 3.5 * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, arm in zip(axes, arms):
        rel = relative_loss_curves(histories[arm])
        desc = loss_labels.get(arm, "")
        ax.set_title(f"arm {arm}" + (f"\nloss = {desc}" if desc else ""), fontsize=10)
        if rel.shape[0] == 0 or rel.shape[1] < 2:
            _no_data(ax, "no loss history\n(no successful image)")
            continue
        t = np.arange(rel.shape[1])
        q25, q75 = np.nanpercentile(rel, [25, 75], axis=0) * 100
        ax.fill_between(t, q25, q75, color=colors[arm], alpha=0.25, linewidth=0, label="IQR across images")
        ax.plot(t, np.nanmean(rel, axis=0) * 100, color=colors[arm], lw=2, label=f"mean (n = {rel.shape[0]})")
        ax.axhline(0, color="0.5", lw=0.8, ls=":")
        ax.set_xlabel("iteration")
        ax.set_ylabel("loss change vs. initial (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper right")
    for ax in axes[len(arms):]:
        ax.set_visible(False)
    return _save(fig, path)


# ---------------------------------------------------------------------------------------------
# cost per image


def cost_per_image(values: Mapping[str, np.ndarray], means: Mapping[str, tuple], ylabel: str, title: str, path: str | Path) -> Path:
    """Every value (an image's counted work, or a batch's compute per image) per dataset as a
    dot, with the mean and its 95 % CI as quoted by performance_summary.json (``means[dataset]``
    = (mean, low, high)); log scale when the range is wide. ``ylabel`` and ``title`` name the
    quantity, so the figure shows the axis the report's cost claims use."""
    datasets = list(values)
    colors = dataset_colors(datasets)
    fig = Figure(figsize=(max(5.0, 1.3 * len(datasets) + 2), 3.8), layout="constrained")
    ax = fig.subplots()
    clean = {d: np.asarray(values[d], dtype=float) for d in datasets}
    clean = {d: v[np.isfinite(v) & (v > 0)] for d, v in clean.items()}
    present = [d for d in datasets if len(clean[d])]
    if not present:
        _no_data(ax)
        return _save(fig, path)
    pos = {d: i for i, d in enumerate(datasets)}
    for d in present:
        v = clean[d]
        ax.scatter(np.full(len(v), pos[d] - 0.1), v, s=14, color=colors[d], alpha=0.8, linewidths=0, zorder=3)
        m = means.get(d)
        if m and m[0] is not None and np.isfinite(m[0]) and m[0] > 0:
            mean, lo, hi = m
            err = [[mean - lo], [hi - mean]] if lo is not None and hi is not None and np.isfinite(lo) and np.isfinite(hi) else None
            ax.errorbar(pos[d] + 0.15, mean, yerr=err, fmt="D", ms=5, color="black", capsize=3, zorder=4)
    allv = np.concatenate([clean[d] for d in present])
    log = allv.max() / allv.min() > 50
    if log:
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.set_xticks(range(len(datasets)), datasets)
    ax.set_xlim(-0.5, len(datasets) - 0.5)
    ax.set_ylabel(ylabel + (", log scale" if log else ""), fontsize=9)
    ax.set_title(title, fontsize=10)
    ax.grid(axis="y", which="both", alpha=0.3)
    return _save(fig, path)


# ---------------------------------------------------------------------------------------------
# trade-off


def tradeoff(table: pd.DataFrame, datasets: Sequence[str], x: str, y: str, labels: Mapping[str, str], summaries: Mapping[str, Mapping[str, Mapping]], path: str | Path) -> Path:
    """Per-image (x, y) points (faint) and each dataset's mean with its 95 % CI in both
    directions (``summaries[dataset][metric]`` = the cross-evaluation cell)."""
    colors = dataset_colors(datasets)
    ok = table[table["status"] == "ok"]
    fig = Figure(figsize=(6.4, 4.8), layout="constrained")
    ax = fig.subplots()
    drawn = False
    for d in datasets:
        sub = ok[ok["dataset"] == d]
        xs, ys = sub[x].to_numpy(dtype=float), sub[y].to_numpy(dtype=float)
        keep = np.isfinite(xs) & np.isfinite(ys)
        if keep.any():
            ax.scatter(xs[keep], ys[keep], s=12, color=colors[d], alpha=0.3, linewidths=0)
        sx, sy = summaries.get(d, {}).get(x) or {}, summaries.get(d, {}).get(y) or {}
        mx, my = sx.get("mean"), sy.get("mean")
        if mx is None or my is None or not (np.isfinite(mx) and np.isfinite(my)):
            continue
        xerr = [[mx - sx["ci95_low"]], [sx["ci95_high"] - mx]] if sx.get("ci95_low") is not None else None
        yerr = [[my - sy["ci95_low"]], [sy["ci95_high"] - my]] if sy.get("ci95_low") is not None else None
        ax.errorbar(mx, my, xerr=xerr, yerr=yerr, fmt="o", ms=8, color=colors[d], mec="black", capsize=3, label=f"{d} (mean, 95% CI)", zorder=4)
        drawn = True
    if not drawn:
        _no_data(ax)
        return _save(fig, path)
    ax.set_xlabel(labels.get(x, x))
    ax.set_ylabel(labels.get(y, y))
    ax.set_title("Trade-off: each faint point is one image")
    ax.annotate("better", xy=(0.04, 0.96), xytext=(0.2, 0.8), xycoords="axes fraction", textcoords="axes fraction", arrowprops={"arrowstyle": "->", "color": "0.3"}, color="0.3", ha="center", va="center", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return _save(fig, path)


# ---------------------------------------------------------------------------------------------
# correlations


def spearman_heatmaps(correlations: Mapping[str, Mapping], labels: Mapping[str, str], path: str | Path, titles: Mapping[str, str] | None = None) -> Path:
    """Spearman rho matrices (statistical_analysis.json "correlations"), one panel per loss arm;
    annotated with rho, grey where rho is undefined. ``titles``: panel titles replacing
    'loss arm: <name> (n = N images)'."""
    arms = list(correlations)
    rows, cols = _grid(len(arms), 2)
    n_names = max((len(correlations[a]["names"]) for a in arms), default=1)
    side = 1.0 + 0.62 * n_names
    fig = Figure(figsize=(side * cols + 1.2, side * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    image = None
    cmap = matplotlib.colormaps["RdBu_r"].with_extremes(bad="0.85")
    for ax, arm in zip(axes, arms):
        names = correlations[arm]["names"]
        rho = np.array([[_num(correlations[arm]["rho"][r][c]) for c in names] for r in names])
        image = ax.imshow(np.ma.masked_invalid(rho), cmap=cmap, vmin=-1, vmax=1)
        ticks = [labels.get(n, n) for n in names]
        ax.set_xticks(range(len(names)), ticks, rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(len(names)), ticks, fontsize=8)
        for i in range(len(names)):
            for j in range(len(names)):
                v = rho[i, j]
                ax.text(j, i, "n/a" if not np.isfinite(v) else f"{v:.2f}", ha="center", va="center", fontsize=7, color="white" if np.isfinite(v) and abs(v) > 0.6 else "black")
        n = _max_n(correlations[arm].get("n"))
        ax.set_title((titles or {}).get(arm) or f"loss arm: {arm}" + (f" (n = {n} images)" if n else ""), fontsize=10)
    for ax in axes[len(arms):]:
        ax.set_visible(False)
    if image is not None:
        fig.colorbar(image, ax=axes[: len(arms)].tolist(), shrink=0.8, label="Spearman rho")
    else:
        _no_data(axes[0])
    return _save(fig, path)


def _max_n(n_matrix) -> int | None:
    """Largest pairwise n of a spearman_matrix "n" entry ({name: {name: n}})."""
    if not isinstance(n_matrix, Mapping):
        return None
    values = [v for row in n_matrix.values() if isinstance(row, Mapping) for v in row.values() if isinstance(v, (int, float))]
    return int(max(values)) if values else None


def _num(v) -> float:
    return float("nan") if v is None else float(v)


# ---------------------------------------------------------------------------------------------
# image grids


def crop_window(error: np.ndarray, size: int) -> tuple[int, int]:
    """Top-left (row, col) of the size x size window with the largest summed ``error`` (H x W)."""
    h, w = error.shape
    size = min(size, h, w)
    c = np.zeros((h + 1, w + 1))
    c[1:, 1:] = error.cumsum(0).cumsum(1)
    sums = c[size:, size:] - c[:-size, size:] - c[size:, :-size] + c[:-size, :-size]
    r, col = np.unravel_index(int(np.argmax(sums)), sums.shape)
    return int(r), int(col)


def image_grid(panels: Sequence[tuple[str, np.ndarray]], crop_reference: int, title: str, path: str | Path) -> Path:
    """Row 1: every panel (title, H x W x 3 uint8) at full size; row 2: the same zoomed crop of
    each, the window where panel ``crop_reference`` (normally the baseline) differs most from panel
    0 (the original), outlined in row 1."""
    ref = panels[0][1].astype(float)
    h, w = ref.shape[:2]
    size = max(8, min(h, w) // 4)
    other = panels[crop_reference][1] if panels[crop_reference][1] is not None else panels[0][1]
    err = np.abs(other.astype(float) - ref).sum(axis=2) if other.shape == ref.shape else np.zeros((h, w))
    r0, c0 = crop_window(err, size)
    n = len(panels)
    aspect = h / w
    fig = Figure(figsize=(2.6 * n, 2.6 * aspect + 2.6 + 0.9), layout="constrained")
    axes = fig.subplots(2, n, squeeze=False, height_ratios=[aspect, 1])
    for j, (label, img) in enumerate(panels):
        top, bottom = axes[0, j], axes[1, j]
        for ax in (top, bottom):
            ax.set_xticks([])
            ax.set_yticks([])
        if img is None:
            for ax in (top, bottom):
                _no_data(ax, "not available")
            top.set_title(label, fontsize=8)
            continue
        top.imshow(img, interpolation="lanczos" if max(h, w) > 256 else "nearest")
        top.add_patch(Rectangle((c0 - 0.5, r0 - 0.5), size, size, fill=False, edgecolor="yellow", lw=1.2))
        top.set_title(label, fontsize=8)
        bottom.imshow(img[r0 : r0 + size, c0 : c0 + size], interpolation="nearest")
    axes[1, 0].set_ylabel(f"zoom {size}x{size} px", fontsize=8)
    fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def example_rows(rows: Sequence[tuple[str, Sequence[tuple[str, np.ndarray | None]]]], title: str, path: str | Path) -> Path:
    """One row per example image (``rows``: (row label, panels), panels = (title, H x W x 3 uint8
    or None), the first panel the original, the second the baseline): every panel at full size,
    then the same zoomed window of each (the window where the baseline differs most from the
    original, outlined in the full panels). Titles wrap at their own line breaks; the figure is
    as wide as the panels need, so no title runs into the next."""
    n_rows = len(rows)
    k = max(len(p) for _, p in rows)
    aspects = [max(p[0][1].shape[0] / p[0][1].shape[1], 0.72) for _, p in rows]  # a row is as tall as its image (or its square zoom)
    fig = Figure(figsize=(2.5 * k + 1.8 * k, sum(2.5 * a + 0.9 for a in aspects) + 0.5), layout="constrained")
    axes = fig.subplots(n_rows, 2 * k, squeeze=False, width_ratios=[1.0] * k + [0.72] * k, height_ratios=[a + 0.36 for a in aspects])
    for i, (row_label, panels) in enumerate(rows):
        ref = panels[0][1]
        other = panels[1][1] if len(panels) > 1 and panels[1][1] is not None else ref
        h, w = ref.shape[:2]
        size = max(8, min(h, w) // 4)
        err = np.abs(other.astype(float) - ref.astype(float)).sum(axis=2) if other.shape == ref.shape else np.zeros((h, w))
        r0, c0 = crop_window(err, size)
        for j in range(k):
            full, zoom = axes[i, j], axes[i, k + j]
            for ax in (full, zoom):
                ax.set_xticks([])
                ax.set_yticks([])
            if j >= len(panels) or panels[j][1] is None:
                for ax in (full, zoom):
                    _no_data(ax, "not available")
                continue
            label, img = panels[j]
            full.imshow(img, interpolation="lanczos" if max(h, w) > 256 else "nearest")
            full.add_patch(Rectangle((c0 - 0.5, r0 - 0.5), size, size, fill=False, edgecolor="yellow", lw=1.2))
            full.set_title(label, fontsize=8)
            zoom.imshow(img[r0 : r0 + size, c0 : c0 + size], interpolation="nearest")
            zoom.set_title(f"{label.splitlines()[0]}, zoom {size}x{size} px", fontsize=7)
        axes[i, 0].set_ylabel(row_label, fontsize=9)
    fig.suptitle(title, fontsize=10)
    return _save(fig, path)
