"""The Markdown comparison report (``FULL_BSDS500_COMPARISON_REPORT.md``) and its figures.

Inputs are the evaluation outputs (evaluation.py: cross_evaluation_matrix.json,
statistical_analysis.json, performance_summary.json, per_image_metrics.csv) plus the per-image
records/.pt files and PNGs of every dataset (layout.py). Nothing here recomputes a statistic:
tables quote the JSON files, recommendations are derived from them by :func:`recommendations`,
and every definition is quoted from the docstring of the module that implements it (one source
of truth). Figures (figures.py) go to ``report_figures/`` next to the report and are linked with
relative paths.

Rendering: :func:`build_context` turns the inputs into plain strings/rows, the Jinja2 template
``templates/report.md.j2`` lays them out, :func:`write_report` does both and writes the files.
"""

from __future__ import annotations

import ast
import datetime as _dt
import importlib.util
import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from . import layout
from .config import synthetic_parts
from .evaluation import EVALUATED_METRICS, HIGHER_IS_BETTER, METRICS
from .fileio import atomic_path, read_json
from .layout import BASELINE

TEMPLATE = "report.md.j2"
TEMPLATES = Path(__file__).with_name("templates")
FIGURES_DIRNAME = "report_figures"

METRIC_LABELS = {
    "psnr": "PSNR (dB)",
    "ssim": "SSIM",
    "lpips_alex": "LPIPS-alex",
    "lpips_vgg": "LPIPS-vgg",
    "mse": "MSE",
    "mae": "MAE",
    "time_s": "time/image (s)",
    "fid": "FID",
    "kid": "KID",
}
# Display precision per metric (the JSON files keep full precision).
FORMATS = {"psnr": ".2f", "ssim": ".4f", "lpips_alex": ".4f", "lpips_vgg": ".4f", "mse": ".3e", "mae": ".4f", "time_s": ".2f", "fid": ".2f", "kid": ".4f"}
# What the recommendations are about: (purpose, metric), first present metric of each is used.
PURPOSES = (
    ("pixel fidelity", ("psnr", "mae")),
    ("structural similarity", ("ssim",)),
    ("perceptual quality", ("lpips_alex", "lpips_vgg")),
    ("distribution-level fidelity", ("fid",)),
)
OPTIMIZED_MARK = "†"


def _add_visual_labels() -> None:
    from .analysis_report import VISUAL_FORMATS, VISUAL_LABELS

    METRIC_LABELS.update(VISUAL_LABELS)
    FORMATS.update(VISUAL_FORMATS)


_add_visual_labels()


REPORT_PACKAGES = ("matplotlib", "jinja2", "pyyaml")


def _version(name: str) -> str | None:
    import importlib.metadata

    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def metric_label(metric: str, arrow: bool = True) -> str:
    label = METRIC_LABELS.get(metric, metric)
    if arrow and metric in HIGHER_IS_BETTER:
        label += " ↑" if HIGHER_IS_BETTER[metric] else " ↓"
    return label


# ---------------------------------------------------------------------------------------------
# number formatting (None / NaN / inf are "n/a")


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def fmt(v: Any, metric: str = "", signed: bool = False) -> str:
    if not _finite(v):
        return "n/a"
    spec = FORMATS.get(metric, ".4g")
    return format(v, ("+" if signed else "") + spec)


def fmt_p(p: Any) -> str:
    if not _finite(p):
        return "n/a"
    if p < 0.001:
        return f"{p:.1e}"
    return f"{p:.3f}" if p < 0.1 else f"{p:.2f}"


def mean_ci(cell: Mapping | None, metric: str) -> str:
    """'mean ± half-width of the 95 % t-interval' (the interval is symmetric)."""
    if not cell or not _finite(cell.get("mean")):
        return "n/a"
    lo, hi = cell.get("ci95_low"), cell.get("ci95_high")
    if _finite(lo) and _finite(hi):
        return f"{fmt(cell['mean'], metric)} ± {fmt((hi - lo) / 2, metric)}"
    return fmt(cell["mean"], metric)


def interval(lo: Any, hi: Any, metric: str = "", signed: bool = False) -> str:
    if not (_finite(lo) and _finite(hi)):
        return ""
    return f"[{fmt(lo, metric, signed)}, {fmt(hi, metric, signed)}]"


def _cell(text: Any) -> str:
    """A Markdown table cell: no pipes or newlines."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def table(header: Sequence[str], rows: Sequence[Sequence[Any]], align: Sequence[str] | None = None) -> dict:
    """{"header", "rows", "align"} for the template's table macro; align entries 'l' or 'r'."""
    align = list(align or ["l"] + ["r"] * (len(header) - 1))
    return {
        "header": [_cell(h) for h in header],
        "rows": [[_cell(c) for c in row] for row in rows],
        "align": [":---" if a == "l" else "---:" for a in align],
    }


# ---------------------------------------------------------------------------------------------
# which metric each arm optimized


def optimized_metrics(spec: Mapping, config: Mapping) -> set[str]:
    """Evaluation metrics that the loss ``spec`` optimizes directly (the same quantity, or a
    monotone transform of it, on the same network): the 'optimized metric' flag of the tables.
    An SSIM loss counts only with the evaluation window (11 taps, sigma 1.5); an LPIPS loss only
    with the same trunk as the evaluation (calibrated vs. random)."""
    name = spec.get("name")
    if name == "weighted":
        out: set[str] = set()
        for term in spec.get("terms") or []:
            if term.get("weight", 0):
                out |= optimized_metrics({k: v for k, v in term.items() if k != "weight"}, config)
        return out
    if name in ("psnr", "mse"):
        return {"psnr", "mse"}
    if name == "l1":
        return {"mae"}
    if name in ("ssim", "improved_ssim"):
        return {"ssim"} if (spec.get("window_size", 11), float(spec.get("sigma", 1.5))) == (11, 1.5) else set()
    if name == "lpips":
        same_trunk = bool(spec.get("random_trunk", False)) == bool(config["metric_networks"]["lpips_random_trunk"])
        return {f"lpips_{spec.get('net', 'alex')}"} if same_trunk else set()
    return set()


def loss_description(spec: Mapping) -> str:
    """Compact text of a loss spec: ``improved_ssim(window_size=11, sigma=1.5)``,
    ``1·mse + 0.1·lpips(net=vgg)``."""
    if spec.get("name") == "weighted":
        return " + ".join(f"{t.get('weight')}·{loss_description({k: v for k, v in t.items() if k != 'weight'})}" for t in spec.get("terms") or [])
    params = ", ".join(f"{k}={v}" for k, v in spec.items() if k != "name")
    return f"{spec.get('name')}({params})" if params else str(spec.get("name"))


# ---------------------------------------------------------------------------------------------
# definitions quoted from the implementing modules


def module_docstring(module: str) -> str:
    """The module docstring of ``latentopt.<module>`` read from its source (no import)."""
    spec = importlib.util.find_spec(f"latentopt.{module}")
    if spec is None or spec.origin is None:
        return ""
    return ast.get_docstring(ast.parse(Path(spec.origin).read_text())) or ""


def docstring_section(doc: str, heading: str) -> str:
    """The text of the section of ``doc`` whose unindented heading line starts with ``heading``
    (heading included, body up to the next unindented line)."""
    lines = doc.splitlines()
    for i, line in enumerate(lines):
        if line.startswith(heading):
            out = [line]
            for nxt in lines[i + 1 :]:
                if nxt and not nxt[0].isspace():
                    break
                out.append(nxt)
            return "\n".join(out).rstrip()
    return ""


def docstring_until(doc: str, marker: str) -> str:
    """``doc`` up to (not including) the paragraph starting with ``marker`` (all of it when absent)."""
    idx = doc.find("\n\n" + marker)
    return (doc if idx < 0 else doc[:idx]).rstrip()


def definitions() -> dict[str, str]:
    fid_doc = module_docstring("fid")
    stats_doc = module_docstring("statistics")
    return {
        "metrics": module_docstring("metrics"),
        "losses": docstring_until(module_docstring("losses"), "Building losses"),
        "fid": docstring_section(fid_doc, "FID (") + "\n\n" + docstring_section(fid_doc, "Features"),
        "fid_bias": docstring_section(fid_doc, "FID bias"),
        "fid_ci": docstring_section(fid_doc, "FID confidence interval"),
        "fid_difference": docstring_section(fid_doc, "FID difference"),
        "kid": docstring_section(fid_doc, "KID"),
        "statistics": "\n\n".join(
            s for s in (docstring_section(stats_doc, h) for h in ("Missing values", "``summarize", "``paired_comparison", "``holm", "``pairwise_tests", "``spearman_matrix")) if s
        ),
    }


# ---------------------------------------------------------------------------------------------
# inputs


def load_inputs(cross: str | Path, stats: str | Path, performance: str | Path, table_csv: str | Path) -> dict:
    table = pd.read_csv(table_csv, dtype={"split": str, "image_id": str, "dataset": str})
    return {"cross": read_json(cross), "stats": read_json(stats), "performance": read_json(performance), "table": table}


def _datasets(cross: Mapping) -> list[str]:
    names = list(cross["datasets"])
    return [BASELINE, *[d for d in names if d != BASELINE]] if BASELINE in names else names


def _splits(cross: Mapping) -> list[str]:
    first = next(iter(cross["datasets"].values()), {})
    return [s for s in first if s != "all"]


def _get(d: Mapping | None, *keys, default=None):
    for k in keys:
        if not isinstance(d, Mapping) or k not in d or d[k] is None:
            return default
        d = d[k]
    return d


def _pair_row(rows: Sequence[Mapping], a: str, b: str) -> Mapping | None:
    for row in rows or []:
        if {row.get("a"), row.get("b")} == {a, b}:
            return row
    return None


def oriented(row: Mapping, a: str, key_diff: str = "mean_diff") -> tuple[Any, Any, Any]:
    """(diff, ci_low, ci_high) of a test row oriented as ``a`` minus the other dataset."""
    d, lo, hi = row.get(key_diff), row.get("ci95_low"), row.get("ci95_high")
    if row.get("a") == a:
        return d, lo, hi
    return (-d if _finite(d) else d), (-hi if _finite(hi) else None), (-lo if _finite(lo) else None)


def best_datasets(values: Mapping[str, Any], metric: str) -> set[str]:
    """The dataset(s) with the best finite value (ties all count)."""
    finite = {d: v for d, v in values.items() if _finite(v)}
    if not finite:
        return set()
    pick = max if HIGHER_IS_BETTER.get(metric, True) else min
    best = pick(finite.values())
    return {d for d, v in finite.items() if v == best}


# ---------------------------------------------------------------------------------------------
# tables


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


def success_table(stats: Mapping) -> dict | None:
    crit = stats.get("success_criteria") or {}
    if not crit:
        return None
    names = [("success_rate", "success rate", lambda v: f"{100 * v:.1f} %", lambda t: f"≥ {100 * t:.1f} %"),
             ("fid_improvement", "FID improvement vs baseline", lambda v: f"{100 * v:+.1f} %", lambda t: f"≥ {100 * t:.1f} %"),
             ("significance", "significantly better than baseline on", lambda v: ", ".join(v) or "none", lambda t: f"Holm p < {t}"),
             ("time_budget", "total time (h)", lambda v: f"{v:.3f}", lambda t: f"≤ {t}")]
    rows = []
    for arm, entry in crit.items():
        row = [arm]
        all_pass = True
        for key, _, show, _ in names:
            e = entry.get(key)
            if e is None:
                row.append("not evaluated")
                continue
            value = show(e["value"]) if e.get("value") is not None else "n/a"
            verdict = "PASS" if e.get("pass") else "**FAIL**"
            all_pass &= bool(e.get("pass"))
            row.append(f"{verdict}: {value}")
        row.append("PASS" if all_pass else "**FAIL**")
        rows.append(row)
    header = ["loss"] + [f"{label} ({thr(next(iter(crit.values()))[key]['threshold'])})" if next(iter(crit.values())).get(key) else label for key, label, _, thr in names] + ["all"]
    return table(header, rows, ["l"] * (len(names) + 2))


def failed_images(perf: Mapping, datasets: Sequence[str]) -> dict | None:
    rows = []
    for d in datasets:
        for f in _get(perf, "datasets", d, "failed_images", default=[]) or []:
            rows.append([d, f.get("split"), f.get("image_id"), f.get("reason") or "(no reason recorded)"])
    return table(["dataset", "split", "image", "reason"], rows, ["l"] * 4) if rows else None


# ---------------------------------------------------------------------------------------------
# recommendations (derived from the numbers)


def recommendations(cross: Mapping, stats: Mapping, perf: Mapping, datasets: Sequence[str], optimized: Mapping[str, set], alpha: float) -> list[str]:
    """One sentence per purpose (pixel fidelity, structure, perception, FID): the loss with the
    best mean on that metric, its difference to the baseline with CI and Holm-corrected Wilcoxon
    p (FID: paired-bootstrap CI and p). "Use X" only when X is better than the baseline and
    significant at ``alpha``; otherwise the sentence says that no loss is shown to beat the
    baseline. Then the runner-up margin, a caveat when the winner optimized the metric itself
    (with the best loss on an independent metric of the same purpose), cost and success-criteria
    lines."""
    arms = [d for d in datasets if d != BASELINE]
    out = []
    tests = stats.get("tests") or {}
    for purpose, candidates in PURPOSES:
        metric = next((m for m in candidates if m in cross.get("metrics", [])), None)
        if metric is None:
            continue
        key = "fid" if metric == "fid" else "mean"
        label = metric_label(metric, False)
        finite = {a: v for a in arms if _finite(v := _get(cross["datasets"], a, "all", metric, key))}
        if not finite:
            out.append(f"For {purpose} ({label}): no loss arm has a value; nothing to recommend.")
            continue
        ranked = sorted(finite, key=lambda a: finite[a], reverse=HIGHER_IS_BETTER[metric])
        best = ranked[0]
        unit = " dB" if metric == "psnr" else ""
        value = f"{label} {fmt(finite[best], metric)}{unit}"
        cmp = _vs_baseline(stats, tests, best, metric, alpha)
        if cmp is None:
            text = f"For {purpose}: **{best}** has the best {label} among the losses ({fmt(finite[best], metric)}{unit}); no paired comparison with the baseline is available (too few images succeeded in every dataset)"
        else:
            evidence = f"{fmt(cmp['diff'], metric, True)}{unit} vs. baseline (95% CI {cmp['ci'] or 'n/a'}, {cmp['p_text']})"
            if cmp["better"] and cmp["significant"]:
                text = f"For {purpose}, use **{best}**: best {label} among the losses ({fmt(finite[best], metric)}{unit}), {evidence}"
            elif cmp["better"]:
                text = f"For {purpose}, no loss is shown to beat the baseline: the best loss, **{best}** ({value}), is {evidence} — not significant at α = {alpha}"
            else:
                text = f"For {purpose}, keep the **baseline**: no loss improves {label}; the best loss, {best} ({value}), is {evidence}"
        if len(ranked) > 1 and metric != "fid":
            row2 = _pair_row(_get(tests, metric, "all", default=[]), best, ranked[1])
            if row2:
                d, lo, hi = oriented(row2, best)
                p = row2.get("p_wilcoxon_holm")
                text += f"; vs. the runner-up {ranked[1]}: {fmt(d, metric, True)}{unit} {interval(lo, hi, metric, True)}, Holm p = {fmt_p(p)}"
                if not (_finite(p) and p < alpha):
                    text += " (not significant)"
        text += "."
        if metric in optimized.get(best, set()):
            others = [m for m in candidates if m != metric and m in cross.get("metrics", []) and m not in optimized.get(best, set())]
            text += f" Caveat: {best} optimized {label} directly, so leading on it is expected"
            if others:
                m2 = others[0]
                b2 = best_datasets({a: _get(cross["datasets"], a, "all", m2, "mean") for a in arms}, m2)
                text += f"; on {metric_label(m2, False)}, which it did not optimize, the best loss is {', '.join(sorted(b2)) or 'n/a'}"
            text += "."
        out.append(text)
    out.extend(_cost_lines(perf, arms))
    crit = stats.get("success_criteria") or {}
    if crit:
        passing = [a for a, e in crit.items() if all(v.get("pass") for v in e.values() if isinstance(v, Mapping))]
        failing = {a: [k for k, v in e.items() if isinstance(v, Mapping) and not v.get("pass")] for a, e in crit.items()}
        failing = {a: f for a, f in failing.items() if f}
        line = f"Losses meeting every success criterion: {', '.join(passing) if passing else 'none'}"
        if failing:
            line += "; failing: " + "; ".join(f"{a} ({', '.join(f)})" for a, f in failing.items())
        out.append(line + ".")
    return out


def _vs_baseline(stats: Mapping, tests: Mapping, arm: str, metric: str, alpha: float) -> dict | None:
    """Difference arm − baseline with its CI, p text, whether it is an improvement and whether
    it is significant (Holm-corrected Wilcoxon p < alpha; FID: bootstrap p < alpha)."""
    if metric == "fid":
        row = _pair_row(_get(stats, "fid_differences", "all", default=[]), arm, BASELINE)
        if row is None:
            return None
        d, lo, hi = oriented(row, arm, "diff")
        p, p_text = row.get("p_boot"), f"bootstrap p = {fmt_p(row.get('p_boot'))}"
    else:
        row = _pair_row(_get(tests, metric, "all", default=[]), arm, BASELINE)
        if row is None:
            return None
        d, lo, hi = oriented(row, arm)
        p, p_text = row.get("p_wilcoxon_holm"), f"Holm p = {fmt_p(row.get('p_wilcoxon_holm'))}"
    better = _finite(d) and (d > 0 if HIGHER_IS_BETTER[metric] else d < 0)
    return {"diff": d, "ci": interval(lo, hi, metric, True), "p_text": p_text, "better": better, "significant": _finite(p) and p < alpha}


def _cost_lines(perf: Mapping, arms: Sequence[str]) -> list[str]:
    times = {a: _get(perf, "datasets", a, "time_per_image_s", "mean") for a in arms}
    times = {a: t for a, t in times.items() if _finite(t)}
    if not times:
        return []
    fastest = min(times, key=times.get)
    slowest = max(times, key=times.get)
    line = f"Cheapest loss per image: **{fastest}** ({times[fastest]:.2f} s/image on average)"
    if slowest != fastest and times[fastest] > 0:
        line += f"; the most expensive, {slowest}, takes {times[slowest] / times[fastest]:.1f}× as long ({times[slowest]:.2f} s/image)"
    return [line + "."]


# ---------------------------------------------------------------------------------------------
# provenance


def model_provenance(results: str | Path, table_df: pd.DataFrame, datasets: Sequence[str]) -> dict:
    """Autoencoder identity per dataset from the per-image records (all distinct values)."""
    rows, files = [], {}
    for d in datasets:
        seen = {}
        for split, image_id in table_df.loc[table_df["dataset"] == d, ["split", "image_id"]].itertuples(index=False):
            path = layout.per_image(results, d, split, image_id, "json")
            if not path.is_file():
                continue
            rec = read_json(path)
            model = rec.get("model") or {}
            if not model:
                continue
            key = (model.get("kind"), model.get("source"), model.get("weights_sha256"), model.get("dtype"))
            seen.setdefault(key, set()).add(rec.get("device") or model.get("device") or "?")
            files.update(model.get("weight_files") or {})
        for (kind, source, sha, dtype), devices in seen.items():
            rows.append([d, kind, source, f"`{sha}`" if sha else "n/a", dtype, ", ".join(sorted(devices))])
    return {
        "table": table(["dataset", "kind", "source", "weights sha256", "dtype", "devices"], rows, ["l"] * 6) if rows else None,
        "files": [{"path": p, "sha256": s} for p, s in sorted(files.items())],
    }


def dataset_metadata(results: str | Path, datasets: Sequence[str], report_versions: Mapping) -> dict:
    """Per dataset file: creation time, image counts, and library versions recorded when the
    dataset was built where they differ from the versions the report was rendered with."""
    rows = []
    for d in datasets:
        path = layout.dataset_file(results, d)
        meta = _dataset_meta(path)
        if meta is None:
            rows.append([d, f"`{path.name}`", "missing/unreadable", "", ""])
            continue
        vers = meta.get("versions") or {}
        diff = {k: v for k, v in vers.items() if report_versions.get(k) != v}
        rows.append([d, f"`{path.name}`", meta.get("created_at", "n/a"), f"{meta.get('n_ok', 'n/a')}/{meta.get('n_images', 'n/a')}", ", ".join(f"{k} {v}" for k, v in diff.items()) or "same as below"])
    return table(["dataset", "file", "created", "ok/images", "library versions at build"], rows, ["l"] * 5)


def _dataset_meta(path: Path) -> dict | None:
    if not path.is_file():
        return None
    import torch

    try:
        data = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # noqa: BLE001 - an unreadable file is reported, not fatal
        return None
    return data.get("metadata") if isinstance(data, dict) else None


def metric_networks(config: Mapping) -> list[str]:
    """What the LPIPS and FID networks were (weights identified by torchvision's file names,
    which carry the first hex digits of the file's sha256)."""
    from .weights import TORCH_HUB_FILES

    mn = config["metric_networks"]
    nets = config["evaluation"]["lpips_nets"]
    out = []
    for net in nets:
        out.append(f"LPIPS-{net}: " + ("randomly initialised trunk (seeded) with the lpips package's linear layers — UNCALIBRATED" if mn["lpips_random_trunk"] else f"torchvision trunk `{TORCH_HUB_FILES[f'lpips_{net}'][0]}` + lpips v0.1 linear layers"))
    if config["evaluation"]["fid"]:
        out.append("FID/KID Inception: " + ("randomly initialised Inception-v3 — UNCALIBRATED" if mn["inception_synthetic"] else f"pytorch-fid FID-Inception `{TORCH_HUB_FILES['fid_inception'][0]}`"))
    else:
        out.append("FID/KID: not computed (evaluation.fid: false)")
    return out


# ---------------------------------------------------------------------------------------------
# figures


def _losses_histories(results: str | Path, table_df: pd.DataFrame, arms: Sequence[str]) -> dict[str, list[list[float]]]:
    import torch

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


def select_examples(table_df: pd.DataFrame, arm: str) -> list[tuple[str, str, str, float]]:
    """(kind, split, image_id, PSNR gain) for the best, median and worst image by ``arm``'s PSNR
    improvement over the baseline (images ok in both); duplicates dropped for tiny sets."""
    ok = table_df[table_df["status"] == "ok"]
    a = ok[ok["dataset"] == arm].set_index(["split", "image_id"])["psnr"]
    b = ok[ok["dataset"] == BASELINE].set_index(["split", "image_id"])["psnr"]
    gain = (a - b).dropna()
    gain = gain[gain.map(math.isfinite)]
    if gain.empty:
        return []
    order = gain.sort_values(ascending=False, kind="mergesort")
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
    from .images import read_rgb

    return read_rgb(path) if path.is_file() else None


def make_figures(results: str | Path, config: Mapping, inputs: Mapping, datasets: Sequence[str], fig_dir: Path, report_dir: Path, log: Callable[[str], None]) -> dict:
    """Write every figure; returns {name: {"path": relative path, ...}} for the template."""
    from . import figures as F

    fig_dir.mkdir(parents=True, exist_ok=True)
    table_df = inputs["table"]
    cross = inputs["cross"]
    arms = [d for d in datasets if d != BASELINE]
    metrics = [m for m in METRICS if m in table_df.columns]
    labels = {m: metric_label(m) for m in (*METRICS, "time_s")}
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
        corr_labels = {f"{m}_improvement": f"{METRIC_LABELS.get(m, m)} gain" for m in METRICS} | {"time_s": "time/image (s)"}
        out["spearman"] = rel(F.spearman_heatmaps(corr, corr_labels, fig_dir / "spearman_correlations.png"))
    log("figures: time, trade-off, correlations")
    grids = []
    if arms:
        ranking_arm = arms[0]
        for kind, split, image_id, gain in select_examples(table_df, ranking_arm):
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
                        label += f", {METRIC_LABELS[lp]} {fmt(r.get(lp), lp)}"
                else:
                    label += "\n(failed)"
                panels.append((label, img))
            crop_ref = 1 if len(panels) > 1 and panels[1][1] is not None else 0
            title = f"{kind} image by {ranking_arm}'s PSNR gain over baseline: {split}/{image_id} ({gain:+.2f} dB)"
            path = F.image_grid(panels, crop_ref, title, fig_dir / f"examples_{kind}.png")
            grids.append({"kind": kind, "split": split, "image_id": image_id, "gain": f"{gain:+.2f}", "path": rel(path)})
        out["grids_arm"] = ranking_arm
    out["grids"] = grids
    log(f"figures: {len(grids)} image grids")
    return out


# ---------------------------------------------------------------------------------------------
# context and rendering


def build_context(config: Mapping, inputs: Mapping, figures: Mapping, *, report_versions: Mapping | None = None, hardware: Mapping | None = None, analysis: str = "") -> dict:
    from . import provenance

    cross, stats, perf, table_df = inputs["cross"], inputs["stats"], inputs["performance"], inputs["table"]
    results = config["results_dir"]
    datasets = _datasets(cross)
    arms = [d for d in datasets if d != BASELINE]
    metrics = [m for m in METRICS if m in cross.get("metrics", [])]
    alpha = config["evaluation"]["success_criteria"]["alpha"]
    optimized = {a: optimized_metrics(config["losses"][a]["loss"], config) for a in arms if a in config["losses"]}
    splits = _splits(cross)
    report_versions = dict(report_versions or provenance.versions())
    for name in REPORT_PACKAGES:  # what renders the report, beyond provenance.PACKAGES
        report_versions.setdefault(name, _version(name))
    hardware = dict(hardware or provenance.hardware())

    synthetic = list(synthetic_parts(config))
    for src in (cross, stats, perf):
        for part in _get(src, "metadata", "synthetic", default=[]) or []:
            if part not in synthetic:
                synthetic.append(part)
    calibrated = _get(cross, "metadata", "calibrated", default={}) or {}
    for net, ok in calibrated.items():
        if ok is False and not any(net.lower() in part.lower() for part in synthetic):
            synthetic.append(f"{net}: network reported as uncalibrated by the evaluation")

    per_image = table_df.drop_duplicates(["split", "image_id"])
    split_counts = per_image.groupby("split").size().to_dict()
    devices = sorted({dev for d in datasets for dev in (_get(perf, "datasets", d, "devices", default=[]) or [])})

    tests = stats.get("tests") or {}
    sig_metrics = [m for m in (*EVALUATED_METRICS, "time_s") if m in tests]
    defs = definitions()
    config_plain = json.loads(json.dumps(dict(config), default=str))
    return {
        "title": "Full BSDS500 comparison: per-image VAE latent optimization",
        "experiment_id": config.get("experiment_id"),
        "generated": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "synthetic": synthetic,
        "datasets": datasets,
        "arms": [{"name": a, "loss": loss_description(config["losses"][a]["loss"]) if a in config["losses"] else "?", "iterations": _get(config, "losses", a, "iterations"), "lr": _get(config, "losses", a, "lr"), "optimized": ", ".join(metric_label(m, False) for m in sorted(optimized.get(a, ()))) or "none of the evaluation metrics"} for a in arms],
        "n_images": int(len(per_image)),
        "split_counts": split_counts,
        "n_paired": _get(stats, "metadata", "n_paired_images"),
        "alpha": alpha,
        "optimized_mark": OPTIMIZED_MARK,
        "headline": metric_table(cross, "all", datasets, metrics, optimized, table_df),
        "split_tables": [{"split": s, "table": metric_table(cross, s, datasets, metrics, optimized, table_df)} for s in splits] if len(splits) > 1 else [],
        "single_split": splits[0] if len(splits) == 1 else None,
        "significance": [t for t in (significance_matrix(tests, m, datasets, alpha) for m in sig_metrics) if t],
        "fid": fid_tables(cross, stats, datasets),
        "fid_enabled": bool(config["evaluation"]["fid"]),
        "performance": performance_table(perf, datasets),
        "success": success_table(stats),
        "failed": failed_images(perf, datasets),
        "n_failed": sum(int(_get(perf, "datasets", d, "failed", default=0) or 0) for d in datasets),
        "n_failed_distinct": len({(f.get("split"), f.get("image_id")) for d in datasets for f in _get(perf, "datasets", d, "failed_images", default=[]) or []}),
        "recommendations": recommendations(cross, stats, perf, datasets, optimized, alpha),
        "figures": figures,
        "definitions": defs,
        "config_yaml": yaml.safe_dump(config_plain, sort_keys=False, allow_unicode=True).rstrip(),
        "models": model_provenance(results, table_df, datasets),
        "dataset_meta": dataset_metadata(results, datasets, report_versions),
        "metric_networks": metric_networks(config),
        "versions": table(["package", "version"], [[k, v or "not installed"] for k, v in report_versions.items()], ["l", "l"]),
        "hardware": hardware,
        "devices": devices,
        "precision": config["run"]["precision"],
        "analysis": analysis,
    }


def render(context: Mapping) -> str:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )
    return env.get_template(TEMPLATE).render(**context)


def write_report(config: Mapping, *, cross: str | Path, stats: str | Path, performance: str | Path, table_csv: str | Path, report: str | Path, fig_dir: str | Path | None = None, categories: str | Path | None = None, hypotheses: str | Path | None = None, log: Callable[[str], None] = print) -> Path:
    """Render the report and its figures from the evaluation outputs; returns the report path.
    ``categories``/``hypotheses``: category_analysis.json / hypothesis_analysis.json (optional)."""
    from .analysis_report import load_optional, render_sections

    report = Path(report)
    fig_dir = Path(fig_dir) if fig_dir is not None else report.parent / FIGURES_DIRNAME
    inputs = load_inputs(cross, stats, performance, table_csv)
    datasets = _datasets(inputs["cross"])
    figs = make_figures(config["results_dir"], config, inputs, datasets, fig_dir, report.parent, log)
    analysis = render_sections(inputs["cross"], datasets, inputs["table"], load_optional(categories), load_optional(hypotheses), fig_dir, report.parent)
    log("analysis sections: visual quality, categories, hypotheses")
    text = render(build_context(config, inputs, figs, analysis=analysis))
    with atomic_path(report) as tmp:
        tmp.write_text(text)
    log(f"report written: {report}")
    return report
