"""The report's analysis sections: visual quality, image categories, the seed's hypotheses.

Inputs are cross_evaluation_matrix.json, per_image_metrics.csv, category_analysis.json
(categories.py) and hypothesis_analysis.json (hypotheses.py); nothing here computes a statistic.
Tables are the ``report.table`` dicts; figures are PNGs in the report's figure folder. The
sections are rendered with ``templates/analysis.md.j2`` into one Markdown string that the main
report template places as is.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from latentopt.workflow.metric_specs import TARGET_VALUE, VISUAL_METRICS
from latentopt.report import formatting as r, plots as F
from latentopt.report.rendering import render_template
from latentopt.core.numbers import is_finite
from latentopt.report.formatting import fmt
from latentopt.report.tables import UNCALIBRATED_LABEL
from latentopt.report.definitions import module_docstring
from latentopt.workflow.objectives import NOT_JUDGED
from latentopt.core.fileio import read_json

TEMPLATE = "analysis.md.j2"
IMPROVEMENT_LABELS = {"fid": "FID", "psnr_improvement": "PSNR gain (dB)", "ssim_improvement": "SSIM gain", "lpips_alex_improvement": "LPIPS-alex gain", "lpips_vgg_improvement": "LPIPS-vgg gain", "time_s": "time/image (s)"}


def label(metric: str) -> str:
    """The report's metric label; the sharpness ratio's target is shown as '→ 1'."""
    return r.metric_label(metric) + (" → 1" if metric in TARGET_VALUE else "")


# ---------------------------------------------------------------------------------------------
# visual quality


def visual_quality_table(cross: Mapping, datasets: Sequence[str]) -> dict | None:
    """Rows = datasets, columns = the visual-quality metrics (mean ± 95 % CI half-width); bold:
    best (lowest GMSD/ΔE00, sharpness ratio closest to 1)."""
    metrics = [m for m in VISUAL_METRICS if m in cross.get("metrics", [])]
    if not metrics:
        return None
    best = {}
    for m in metrics:
        means = {d: (((cross["datasets"].get(d) or {}).get("all") or {}).get(m) or {}).get("mean") for d in datasets}
        score = {d: (abs(v - TARGET_VALUE[m]) if m in TARGET_VALUE else v) for d, v in means.items() if is_finite(v)}
        best[m] = {d for d, v in score.items() if v == min(score.values())} if score else set()
    rows = []
    for d in datasets:
        row = [d]
        for m in metrics:
            text = r.mean_ci(((cross["datasets"].get(d) or {}).get("all") or {}).get(m), m)
            row.append(f"**{text}**" if d in best[m] and text != "n/a" else text)
        rows.append(row)
    return r.table(["dataset", *[label(m) for m in metrics]], rows)


# ---------------------------------------------------------------------------------------------
# categories


def _gain_cell(row: Mapping, metric: str, uncalibrated=frozenset()) -> str:
    text = fmt(row.get("mean_gain"), metric, True)
    if is_finite(row.get("ci95_low")) and is_finite(row.get("ci95_high")):
        text += f" {r.interval(row['ci95_low'], row['ci95_high'], metric, True)}"  # the report's one interval formatter
    if row.get("n_too_small"):
        reason = row.get("n_too_small_reason")
        return f"{text} n={row.get('n')}, n too small" + (f" for {reason}" if reason and reason.startswith("Holm") else "")
    text += f" n={row.get('n')} p={r.fmt_p(row.get('p_holm'))}"
    if metric in uncalibrated:
        return f"{text} ({NOT_JUDGED})"
    return f"**{text}**" if row.get("significant") else text


def category_tables(analysis: Mapping | None, uncalibrated=frozenset()) -> list[dict]:
    """One entry per grouping: its description and a table rows = (group, loss), columns =
    metrics, cell = mean gain [bootstrap 95 % CI] n p_holm (or "n too small")."""
    if not analysis:
        return []
    meta = analysis.get("metadata") or {}
    out = []
    for grouping, g in (analysis.get("groupings") or {}).items():
        metrics = [m for m in meta.get("metrics", []) if m in (g.get("tests") or {})]
        names = g.get("names") or {}
        counts = {x["group"]: x["n_images"] for x in g.get("groups", [])}
        rows = []
        for group in counts:
            arms = [t["arm"] for t in (g["tests"][metrics[0]] if metrics else []) if t["group"] == group]
            for arm in arms:
                row = [f"{group}: {names.get(group, group)}" if names else group, arm]
                for m in metrics:
                    t = next(t for t in g["tests"][m] if t["group"] == group and t["arm"] == arm)
                    row.append(_gain_cell(t, m, uncalibrated))
                rows.append(row)
        cut = g.get("cut_points")
        if g.get("descriptor"):
            what = f"descriptor `{g['descriptor']}`" + (f" (edge density from {meta.get('edge_density_source')})" if g["descriptor"] == "edge_density" else "") + (f", cut points q1 = {cut[0]:.4g}, q2 = {cut[1]:.4g}" if cut and all(is_finite(c) for c in cut) else "")
        else:
            what = f"user categories from `{g.get('source')}`"
        out.append({"grouping": grouping, "what": what, "counts": ", ".join(f"{k}: {v}" for k, v in counts.items()), "table": r.table(["group", "loss", *[f"{label(m)} gain" + (f" ({UNCALIBRATED_LABEL})" if m in uncalibrated else "") for m in metrics]], rows, ["l", "l"] + ["r"] * len(metrics)) if rows else None})
    return out


def category_figure(analysis: Mapping, path: str | Path, order: Sequence[str] | None = None, uncalibrated=frozenset()) -> Path | None:
    """Mean gain over the baseline with its bootstrap 95 % CI per group (x) and loss (colour), one
    panel per grouping (rows) and metric (columns); hollow markers: n too small to test."""
    groupings = list((analysis or {}).get("groupings") or {})
    metrics = (analysis or {}).get("metadata", {}).get("metrics", [])
    if not groupings or not metrics:
        return None
    fig = F.Figure(figsize=(3.3 * len(metrics), 2.7 * len(groupings)), layout="constrained")
    axes = fig.subplots(len(groupings), len(metrics), squeeze=False)
    arms = list(dict.fromkeys(t["arm"] for g in groupings for m in metrics for t in analysis["groupings"][g]["tests"].get(m, [])))
    if order:  # the report's arm order (arms.arm_order): same colours as every other figure
        arms = [a for a in order if a in arms] + [a for a in arms if a not in order]
    colors = F.dataset_colors(["baseline", *arms])
    for i, g in enumerate(groupings):
        entry = analysis["groupings"][g]
        groups = [x["group"] for x in entry["groups"]]
        for j, m in enumerate(metrics):
            ax = axes[i, j]
            rows = entry["tests"].get(m, [])
            if not rows:
                F._no_data(ax)
                continue
            width = 0.7 / max(1, len(arms))
            for k, arm in enumerate(arms):
                for t in (t for t in rows if t["arm"] == arm):
                    x = groups.index(t["group"]) + (k - (len(arms) - 1) / 2) * width
                    y = t["mean_gain"]
                    if not is_finite(y):
                        continue
                    err = [[y - t["ci95_low"]], [t["ci95_high"] - y]] if is_finite(t.get("ci95_low")) and is_finite(t.get("ci95_high")) else None
                    ax.errorbar(x, y, yerr=err, fmt="o", ms=5, color=colors[arm], mfc="white" if t["n_too_small"] else colors[arm], capsize=2, label=arm if (i, j, t["group"]) == (0, 0, groups[0]) else None)
            ax.axhline(0, color="0.5", lw=0.8, ls=":")
            ax.set_xticks(range(len(groups)), [f"{x}\n(n={n['n_images']})" for x, n in zip(groups, entry["groups"])], fontsize=7)
            ax.tick_params(axis="y", labelsize=7)
            if i == 0:
                ax.set_title(f"{label(m)} gain" + (f" ({UNCALIBRATED_LABEL})" if m in uncalibrated else ""), fontsize=9)
            if j == 0:
                ax.set_ylabel(g, fontsize=9)
            ax.grid(axis="y", alpha=0.3)
    axes[0, 0].legend(fontsize=7, loc="best")
    fig.suptitle("Gain over the baseline per image group (positive = better; hollow: n too small to test)", fontsize=10)
    return F._save(fig, path)


# ---------------------------------------------------------------------------------------------
# hypotheses


def hypothesis_uncalibrated(analysis: Mapping | None, uncalibrated=frozenset()) -> set[str]:
    """The report's uncalibrated metrics, plus FID where hypothesis_analysis.json says its
    Inception was random (hypotheses.expected_fid_table)."""
    analysis = analysis or {}
    if any(h.get("verdict") == NOT_JUDGED for h in analysis.get("expected_fid", [])) or "Inception" in ((analysis.get("metadata") or {}).get("not_comparable_reason") or ""):
        return {*uncalibrated, "fid"}
    return set(uncalibrated)


def point_labels(names: Sequence[str], uncalibrated=frozenset()) -> dict[str, str]:
    """The across-dataset points' column names, "(uncalibrated)" where the value comes from a
    randomly initialised network: one labelling for the table and its figure."""
    return {k: IMPROVEMENT_LABELS.get(k, k) + (f" ({UNCALIBRATED_LABEL})" if k.removesuffix("_improvement") in uncalibrated else "") for k in names}


def hypothesis_tables(analysis: Mapping | None, cross: Mapping | None = None, uncalibrated=frozenset()) -> dict | None:
    """The seed's FID expectations (verdict "not judged: uncalibrated network" with a random
    Inception; the measured FID and its interval printed by the report's one FID formatter, from
    the cross-evaluation cell where there is one), and the across-arm correlations."""
    if not analysis:
        return None
    uncalibrated = hypothesis_uncalibrated(analysis, uncalibrated)
    rows = []
    for h in analysis.get("expected_fid", []):
        cell = (((cross or {}).get("datasets") or {}).get(h["arm"]) or {}).get("all", {}).get("fid") or h
        measured = "n/a" if not is_finite(h.get("fid")) else f"{r.fmt(h['fid'], 'fid')} {r.fid_interval(cell)}".strip()
        if "fid" in uncalibrated:
            verdict = f"{NOT_JUDGED} (FID from a randomly initialised Inception)"
        else:
            verdict = h["verdict"] if h["verdict"] != "not comparable" else f"not comparable ({(analysis.get('metadata') or {}).get('not_comparable_reason') or 'see above'})"
        rows.append([h["arm"], f"{h['expected_low']:g}–{h['expected_high']:g} ± {h['tolerance']:g}", f"[{h['accepted_low']:g}, {h['accepted_high']:g}]", measured, h.get("n", "n/a"), verdict])
    corr = analysis.get("arm_correlations") or {}
    names = corr.get("names", [])
    points = [[p["dataset"], *[fmt(p.get(k), "fid" if k == "fid" else "time_s" if k == "time_s" else k.replace("_improvement", ""), k != "fid" and k != "time_s") for k in names]] for p in analysis.get("arm_points", [])]
    pairs = []
    for p in corr.get("pairs", []):
        pval = "n too small" if p.get("n_too_small") else r.fmt_p(p.get("p_exact"))
        pairs.append([IMPROVEMENT_LABELS.get(p["a"], p["a"]), IMPROVEMENT_LABELS.get(p["b"], p["b"]), f"{p['rho']:+.2f}" if is_finite(p.get("rho")) else "n/a", p.get("n"), pval])
    meta = analysis.get("metadata") or {}
    return {
        "expected": r.table(["loss", "seed's expected FID", "accepted range", "measured FID [95% CI]", "N", "verdict"], rows) if rows else None,
        "not_comparable": meta.get("not_comparable_reason"),
        "seed_setting": meta.get("seed_setting"),
        "model_kind": meta.get("model_kind"),
        "points": r.table(["dataset", *point_labels(names, uncalibrated).values()], points) if points else None,
        "pairs": r.table(["A", "B", "Spearman ρ", "n (datasets)", "exact permutation p"], pairs, ["l", "l", "r", "r", "r"]) if pairs else None,
        "n_points": corr.get("n_points"),
        "n_too_small": corr.get("n_too_small"),
        "alpha": meta.get("alpha"),
    }


# ---------------------------------------------------------------------------------------------
# figures and rendering


def make_figures(table_df: pd.DataFrame, datasets: Sequence[str], categories: Mapping | None, hypotheses: Mapping | None, fig_dir: Path, report_dir: Path, uncalibrated=frozenset()) -> dict:
    rel = lambda p: Path(os.path.relpath(p, report_dir)).as_posix()  # noqa: E731
    out: dict = {}
    metrics = [m for m in VISUAL_METRICS if m in table_df.columns]
    if metrics:
        out["visual"] = rel(F.distributions(table_df, datasets, metrics, {m: label(m) for m in metrics}, fig_dir / "visual_quality.png"))
    if categories:
        path = category_figure(categories, fig_dir / "category_gains.png", datasets, uncalibrated)
        if path:
            out["categories"] = rel(path)
    corr = (hypotheses or {}).get("arm_correlations") or {}
    if len(corr.get("names", [])) >= 2:
        title = f"Spearman rho across datasets (n = {corr['n_points']} datasets as points)" + ("\ndescriptive only: n too small for a p-value" if corr.get("n_too_small") else "")
        labels = point_labels(corr["names"], hypothesis_uncalibrated(hypotheses, uncalibrated))
        out["arm_correlations"] = rel(F.spearman_heatmaps({"datasets": corr}, labels, fig_dir / "arm_correlations.png", titles={"datasets": title}))
    return out


def definitions() -> dict[str, str]:
    return {m.rpartition(".")[2]: module_docstring(m) for m in ("metrics.visual_quality", "analysis.categories", "analysis.hypotheses")}


def render_sections(cross: Mapping, datasets: Sequence[str], table_df: pd.DataFrame, categories: Mapping | None, hypotheses: Mapping | None, fig_dir: Path, report_dir: Path, *, uncalibrated=frozenset()) -> str:
    """The Markdown of the three analysis sections (figures written to ``fig_dir``)."""
    context = {
        "visual": visual_quality_table(cross, datasets),
        "categories": category_tables(categories, uncalibrated),
        "category_meta": (categories or {}).get("metadata") or {},
        "hypotheses": hypothesis_tables(hypotheses, cross, uncalibrated),
        "figures": make_figures(table_df, datasets, categories, hypotheses, fig_dir, report_dir, uncalibrated),
        "definitions": definitions(),
    }
    return render_template(TEMPLATE, context)


def load_optional(path: str | Path | None) -> dict | None:
    return read_json(path) if path and Path(path).is_file() else None

