"""The per-image explorer: one static HTML page (works from ``file://``, no server) with a
sortable, filterable table of every image of a run (split, image categories, each arm's metrics
and its gain over the plain decode, failures with their reasons) and a side-by-side view of the
original, the plain decode and every arm with one synchronised zoom.

The page holds the table's data as JSON; the images are the run's own PNGs, referenced by paths
relative to the page (it sits in the results folder), so the page stays small at 500 images x
many arms. Shown inside ``snakemake --report`` (a copy of the page, away from the PNGs) the table
works and the viewer says where to open the page to see the images.
"""

from __future__ import annotations

import csv
import html as _html
import json
import math
import os
from pathlib import Path

from latentopt.core.fileio import write_text
from latentopt.workflow import layout

TEMPLATE = Path(__file__).parent / "templates" / "explorer.html"
# metric column -> (label, higher is better); the ones a run's table has are shown
METRICS = {
    "psnr": ("PSNR (dB)", True), "ssim": ("SSIM", True), "lpips_alex": ("LPIPS-alex", False),
    "lpips_vgg": ("LPIPS-vgg", False), "mse": ("MSE", False), "mae": ("MAE", False),
    "gmsd": ("GMSD", False), "delta_e00": ("ΔE00", False), "time_s": ("time (s)", False),
    "iterations": ("iterations", False),
}
COST = {"time_s", "iterations"}  # shown per arm, no 'gain' over the plain decode
CATEGORY_PREFIX = "group_"


def _number(text: str | None) -> float | None:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def read_rows(metrics_csv: str | Path, categories_csv: str | Path | None) -> tuple[list[str], list[str], list[dict]]:
    """(arms in table order, metric keys present, one row per image): ``{"split", "image_id",
    "categories": {name: level}, "arms": {arm: {"status", "reason", metric: value}}}``."""
    with open(metrics_csv, newline="") as f:
        records = list(csv.DictReader(f))
    if not records:
        raise ValueError(f"{metrics_csv}: no per-image rows")
    metrics = [m for m in METRICS if m in records[0]]
    arms: list[str] = []
    rows: dict[tuple[str, str], dict] = {}
    for r in records:
        arm = r["dataset"]
        if arm not in arms:
            arms.append(arm)
        row = rows.setdefault((r["split"], r["image_id"]),
                              {"split": r["split"], "image_id": r["image_id"], "categories": {}, "arms": {}})
        row["arms"][arm] = {"status": r.get("status") or "ok", "reason": r.get("reason") or "",
                            **{m: _number(r.get(m)) for m in metrics}}
    if categories_csv and Path(categories_csv).is_file():
        with open(categories_csv, newline="") as f:
            for r in csv.DictReader(f):
                row = rows.get((r["split"], r["image_id"]))
                if row is not None:
                    row["categories"] = {k[len(CATEGORY_PREFIX):]: v for k, v in r.items()
                                         if k.startswith(CATEGORY_PREFIX) and v}
    return arms, metrics, sorted(rows.values(), key=lambda r: (r["split"], r["image_id"]))


def image_paths(results: str | Path, page: str | Path, arms: list[str]) -> dict[str, str]:
    """Path templates (``{split}``, ``{image_id}``) of the original and of each arm's PNG,
    relative to the page's folder."""
    results, here = Path(results), Path(page).parent

    def rel(path: Path) -> str:
        return Path(os.path.relpath(path, here)).as_posix()

    views = {"original": rel(layout.original_png(results, "{split}", "{image_id}"))}
    for arm in arms:
        views[arm] = rel(layout.dataset_png_dir(results, arm) / "{split}" / "{image_id}.png")
    return views


def render_explorer(*, title: str, arms: list[str], metrics: list[str], rows: list[dict],
                    views: dict[str, str], synthetic: list[str], baseline: str = layout.BASELINE) -> str:
    data = {
        "title": title, "arms": arms, "baseline": baseline if baseline in arms else None,
        "metrics": [{"key": m, "label": METRICS[m][0], "higher_better": METRICS[m][1], "gain": m not in COST}
                    for m in metrics],
        "rows": rows, "views": views, "synthetic": synthetic,
    }
    payload = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")
    return (TEMPLATE.read_text()
            .replace("__TITLE__", _html.escape(title))
            .replace("__DATA__", payload))


def write_explorer(*, results: str | Path, metrics_csv: str | Path, categories_csv: str | Path | None,
                   page: str | Path, title: str, synthetic: list[str]) -> int:
    """Write the explorer page; returns the number of images in it."""
    arms, metrics, rows = read_rows(metrics_csv, categories_csv)
    text = render_explorer(title=title, arms=arms, metrics=metrics, rows=rows,
                           views=image_paths(results, page, arms), synthetic=synthetic)
    write_text(page, text)
    return len(rows)
