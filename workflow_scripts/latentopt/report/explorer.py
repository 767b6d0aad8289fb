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
import re
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


def read_study_rows(models: dict[str, tuple[str | Path, str | Path | None]]
                    ) -> tuple[list[str], list[str], list[dict], dict[str, str]]:
    """A study's rows: ``models`` maps each model to its (per-image table, categories table);
    returns (columns named ``<model>/<arm>``, each arm's models side by side, in the order the
    arms first appear; the metrics every model has; one row per image; each column's plain
    decode, ``<model>/baseline``, the gain's reference)."""
    per_model = {m: read_rows(metrics_csv, categories_csv) for m, (metrics_csv, categories_csv) in models.items()}
    order: list[str] = []
    for arms, _, _ in per_model.values():
        order += [a for a in arms if a not in order]
    columns = [f"{m}/{a}" for a in order for m, (arms, _, _) in per_model.items() if a in arms]
    metrics = [k for k in METRICS if all(k in ms for _, ms, _ in per_model.values())]
    merged: dict[tuple[str, str], dict] = {}
    for m, (_, ms, rows) in per_model.items():
        for r in rows:
            row = merged.setdefault((r["split"], r["image_id"]),
                                    {"split": r["split"], "image_id": r["image_id"], "categories": {}, "arms": {}})
            row["categories"] = row["categories"] or r["categories"]
            for arm, values in r["arms"].items():
                row["arms"][f"{m}/{arm}"] = {k: v for k, v in values.items() if k in ("status", "reason", *metrics)}
    baselines = {c: f"{c.split('/', 1)[0]}/{layout.BASELINE}" for c in columns
                 if f"{c.split('/', 1)[0]}/{layout.BASELINE}" in columns}
    return columns, metrics, sorted(merged.values(), key=lambda r: (r["split"], r["image_id"])), baselines


def study_image_paths(models: dict[str, str | Path], page: str | Path, columns: list[str]) -> dict[str, str]:
    """Path templates of the original (the first model's copy: every model prepares the same
    images) and of each ``<model>/<arm>`` column's PNG, relative to the page's folder."""
    here = Path(page).parent

    def rel(path: Path) -> str:
        return Path(os.path.relpath(path, here)).as_posix()

    first = Path(next(iter(models.values())))
    views = {"original": rel(layout.original_png(first, "{split}", "{image_id}"))}
    for column in columns:
        model, arm = column.split("/", 1)
        views[column] = rel(layout.dataset_png_dir(models[model], arm) / "{split}" / "{image_id}.png")
    return views


def study_banner_parts(md: str) -> list[str]:
    """The synthetic / uncalibrated parts the study report's banner names (one line:
    ``> **NOT RESEARCH RESULTS...:** a; b. Do not quote these numbers.``; none: no banner)."""
    m = re.search(r"^> \[!WARNING\]\n> \*\*[^*]+:\*\* (.*?)\. Do not quote these numbers\.$", md, flags=re.M)
    return [part.strip() for part in m.group(1).split("; ")] if m else []


def write_study_explorer(*, models: dict[str, dict], page: str | Path, title: str, synthetic: list[str]) -> int:
    """The study-wide explorer: ``models`` maps each model to ``{"results", "metrics", "categories"}``
    (its results folder and tables); every model's arms side by side, each gain over that
    model's plain decode. Returns the number of images."""
    columns, metrics, rows, baselines = read_study_rows(
        {m: (v["metrics"], v.get("categories")) for m, v in models.items()})
    text = render_explorer(title=title, arms=columns, metrics=metrics, rows=rows, synthetic=synthetic,
                           views=study_image_paths({m: v["results"] for m, v in models.items()}, page, columns),
                           baselines=baselines)
    write_text(page, text)
    return len(rows)


def render_explorer(*, title: str, arms: list[str], metrics: list[str], rows: list[dict],
                    views: dict[str, str], synthetic: list[str], baseline: str = layout.BASELINE,
                    baselines: dict[str, str] | None = None) -> str:
    """``baselines`` (a study): each column's own plain decode, instead of the one ``baseline``."""
    data = {
        "title": title, "arms": arms, "baseline": None if baselines else (baseline if baseline in arms else None),
        "baselines": baselines or None,
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
