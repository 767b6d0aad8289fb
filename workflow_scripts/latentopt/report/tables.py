"""The report's result tables. Each function returns a table dict (formatting.table) or None;
build_context (report/__init__.py) puts it into the template context."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from ..input_failures import input_failures_table
from .formatting import OPTIMIZED_MARK, _finite, fmt, fmt_p, interval, mean_ci, metric_label, table
from .inputs import _get, _pair_row, best_datasets, oriented


def metric_table(cross: Mapping, split: str, datasets: Sequence[str], metrics: Sequence[str], optimized: Mapping[str, set], table_df: pd.DataFrame) -> dict:
    """Rows = datasets, columns = metrics: mean ± 95 % CI half-width (FID: estimate [CI]); the best
    value of each column in bold, OPTIMIZED_MARK where the dataset's loss optimized that metric."""
    with_fid = "fid" in cross.get("metrics", [])
    cols = list(metrics) + (["fid"] if with_fid else [])
    best = {}
    for m in cols:
        key = "fid" if m == "fid" else "mean"
        best[m] = best_datasets({d: _get(cross["datasets"], d, split, m, key) for d in datasets}, m)
    rows = []
    sub = table_df if split == "all" else table_df[table_df["split"] == split]
    for d in datasets:
        rows_d = sub[sub["dataset"] == d]
        row = [d, f"{int((rows_d['status'] == 'ok').sum())}/{len(rows_d)}"]
        for m in cols:
            cell = _get(cross["datasets"], d, split, m)
            if m == "fid":
                text = "n/a" if not cell or not _finite(cell.get("fid")) else f"{fmt(cell['fid'], 'fid')} {interval(cell.get('ci95_low'), cell.get('ci95_high'), 'fid')}".strip()
            else:
                text = mean_ci(cell, m)
            if d in best[m] and text != "n/a":
                text = f"**{text}**"
            if m in optimized.get(d, set()):
                text += f" {OPTIMIZED_MARK}"
            row.append(text)
        rows.append(row)
    header = ["dataset", "images ok"] + [metric_label(m) + (" [95% CI]" if m == "fid" else "") for m in cols]
    return table(header, rows)


def significance_matrix(tests: Mapping, metric: str, datasets: Sequence[str], alpha: float) -> dict | None:
    """Cell (row A, column B): mean of A − B over the paired images, [bootstrap 95 % CI], Holm-
    corrected Wilcoxon p; bold when p_holm < alpha."""
    rows_all = _get(tests, metric, "all")
    if not rows_all:
        return None
    rows = []
    for a in datasets:
        row = [f"**{a}**"]
        for b in datasets:
            if a == b:
                row.append("—")
                continue
            r = _pair_row(rows_all, a, b)
            if r is None:
                row.append("n/a")
                continue
            d, lo, hi = oriented(r, a)
            p = r.get("p_wilcoxon_holm")
            text = f"{fmt(d, metric, True)} {interval(lo, hi, metric, True)} p={fmt_p(p)}"
            row.append(f"**{text}**" if _finite(p) and p < alpha else text)
        rows.append(row)
    n = max((r.get("n", 0) for r in rows_all), default=0)
    return {"metric": metric, "label": metric_label(metric), "n": n, "table": table(["row − column", *datasets], rows, ["l"] + ["r"] * len(datasets))}


def fid_tables(cross: Mapping, stats: Mapping, datasets: Sequence[str]) -> dict | None:
    if "fid" not in cross.get("metrics", []):
        return None
    rows = []
    for d in datasets:
        f = _get(cross["datasets"], d, "all", "fid") or {}
        k = _get(cross["datasets"], d, "all", "kid") or {}
        kid_text = fmt(k.get("kid_mean"), "kid")
        if _finite(k.get("kid_mean")):
            n_f = f.get("n")
            if k.get("subset_size") and n_f and k["subset_size"] < n_f:
                kid_text += f" ± {fmt(k.get('kid_std'), 'kid')} (std over {k.get('n_subsets')} subsets of {k.get('subset_size')})"
            else:
                kid_text += f" (one subset of all {k.get('subset_size')} images: no spread)"
        rows.append([d, f.get("n", "n/a"), fmt(f.get("fid"), "fid"), interval(f.get("ci95_low"), f.get("ci95_high"), "fid") or "n/a", fmt(f.get("boot_bias"), "fid", True), f.get("n_boot", "n/a"), kid_text])
    main = table(["dataset", "N images", "FID ↓", "95% CI (re-centred bootstrap)", "bootstrap bias", "replicates", "KID ↓ (paired, unbiased)"], rows)
    diff_rows = []
    for r in _get(stats, "fid_differences", "all", default=[]) or []:
        diff_rows.append([r["a"], r["b"], fmt(r.get("fid_a"), "fid"), fmt(r.get("fid_b"), "fid"), fmt(r.get("diff"), "fid", True), interval(r.get("ci95_low"), r.get("ci95_high"), "fid", True) or "n/a", fmt_p(r.get("p_boot")), r.get("n", "n/a")])
    diffs = table(["A", "B", "FID(A)", "FID(B)", "FID(A) − FID(B)", "95% CI", "p (bootstrap)", "N"], diff_rows, ["l", "l"] + ["r"] * 6) if diff_rows else None
    return {"table": main, "differences": diffs}


def performance_table(perf: Mapping, datasets: Sequence[str]) -> dict:
    rows = []
    for d in datasets:
        p = _get(perf, "datasets", d) or {}
        t = p.get("time_per_image_s") or {}
        it = p.get("iterations") or {}
        conv = p.get("converged_fraction")
        rows.append([
            d,
            f"{p.get('succeeded', 0)}/{p.get('images', 0)}",
            mean_ci(t, "time_s"),
            fmt(t.get("median"), "time_s"),
            f"{p['total_time_s'] / 3600:.3f}" if _finite(p.get("total_time_s")) else "n/a",
            fmt(it.get("mean")) if it else "n/a",
            f"{100 * conv:.0f} %" if _finite(conv) else "n/a",
            f"{p['peak_memory_mb']:.0f}" if _finite(p.get("peak_memory_mb")) else "n/a",
            ", ".join(p.get("devices") or []) or "n/a",
            f"{p['throughput_images_per_hour']:.0f}" if _finite(p.get("throughput_images_per_hour")) else "n/a",
        ])
    return table(["dataset", "ok/images", "time/image (s), mean ± 95% CI", "median (s)", "total (h)", "iterations (mean)", "stopped early", "peak memory (MB)", "devices", "images/hour"], rows)


def failed_images(perf: Mapping, datasets: Sequence[str]) -> dict | None:
    rows = []
    for d in datasets:
        for f in _get(perf, "datasets", d, "failed_images", default=[]) or []:
            rows.append([d, f.get("split"), f.get("image_id"), f.get("reason") or "(no reason recorded)"])
    return table(["dataset", "split", "image", "reason"], rows, ["l"] * 4) if rows else None


def unreadable_images(perf: Mapping, datasets: Sequence[str]) -> dict | None:
    """Images that could not be read at all (latentopt.input_failures), one row per image."""
    t = input_failures_table(perf, datasets)
    return table(t["header"], t["rows"], ["l"] * len(t["header"])) if t else None

