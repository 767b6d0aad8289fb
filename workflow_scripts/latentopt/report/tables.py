"""The report's result tables. Each function returns a table dict (formatting.table) or None;
build_context (report/__init__.py) puts it into the template context."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from latentopt.analysis.input_failures import input_failures_table
from latentopt.analysis.statistics import n_too_small
from latentopt.workflow.objectives import NOT_JUDGED
from latentopt.core.numbers import is_finite
from latentopt.report.formatting import FAMILY_MARK, fid_interval, fmt, fmt_p, fmt_p_boot, interval, mean_ci, mean_only, metric_label, OPTIMIZED_MARK, retried_text, table, too_small
from latentopt.report.inputs import _get, _pair_row, best_datasets, oriented
from latentopt.report.conclusions import _disagree_shown as shown

# A cell whose (arm, metric) verdict differs between two test families (the success criterion's
# family: the arm's held-out metrics; the significance matrix's: the dataset pairs of a metric).
UNCALIBRATED_LABEL = "uncalibrated"


def fid_cell(cell: Mapping | None) -> str:
    """FID [95 % CI]; the re-centred lower bound is printed unclipped and marked when below 0."""
    if not cell or not is_finite(cell.get("fid")):
        return "n/a"
    if cell.get("n_too_small") or n_too_small(cell.get("n") or 0):
        return mean_only(cell["fid"], "fid", cell.get("n"))
    return f"{fmt(cell['fid'], 'fid')} {fid_interval(cell)}".strip()


def metric_table(cross: Mapping, split: str, datasets: Sequence[str], metrics: Sequence[str], optimized: Mapping[str, set], table_df: pd.DataFrame, uncalibrated=frozenset()) -> dict:
    """Rows = datasets, columns = metrics: mean ± 95 % CI half-width (FID: estimate [CI]); the best
    value of each column in bold (ties at the printed precision all bold; never a column from an
    uncalibrated network, whose header says "uncalibrated"), OPTIMIZED_MARK where the dataset's
    loss optimized that metric."""
    with_fid = "fid" in cross.get("metrics", [])
    cols = list(metrics) + (["fid"] if with_fid else [])
    best = {}
    for m in cols:
        key = "fid" if m == "fid" else "mean"
        # no bold for a value whose n is below the minimum: it is not shown
        best[m] = best_datasets({d: _get(cross["datasets"], d, split, m, key) for d in datasets if not n_too_small(_get(cross["datasets"], d, split, m, "n") or 0)}, m)
    rows = []
    sub = table_df if split == "all" else table_df[table_df["split"] == split]
    for d in datasets:
        rows_d = sub[sub["dataset"] == d]
        row = [d, f"{int((rows_d['status'] == 'ok').sum())}/{len(rows_d)}"]
        for m in cols:
            cell = _get(cross["datasets"], d, split, m)
            text = fid_cell(cell) if m == "fid" else mean_ci(cell, m)
            if d in best[m] and m not in uncalibrated and text != "n/a" and "n too small" not in text:
                text = f"**{text}**"
            if m in optimized.get(d, set()):
                text += f" {OPTIMIZED_MARK}"
            row.append(text)
        rows.append(row)
    header = ["dataset", "images ok"] + [metric_label(m) + (" [95% CI]" if m == "fid" else "") + (f" ({UNCALIBRATED_LABEL})" if m in uncalibrated else "") for m in cols]
    return table(header, rows)


def significance_matrix(tests: Mapping, metric: str, datasets: Sequence[str], alpha: float, *, uncalibrated=frozenset(), criteria: Mapping | None = None) -> dict | None:
    """Cell (row A, column B): mean of A − B over the paired images, [bootstrap 95 % CI], Holm-
    corrected Wilcoxon p and how many images had A − B > 0; bold when p_holm < alpha. The
    heading gives n, the number of tests in the Holm family and the smallest p it can reach;
    when that floor is >= alpha the test cells say "n too small" instead of a p. A metric from an
    uncalibrated network: no bold, the heading says "not judged". ``criteria`` (the success
    criteria of statistical_analysis.json): where the significance criterion's family (the arm's
    held-out metrics vs the baseline) reaches the other verdict for the same (arm, baseline)
    pair, the cell carries FAMILY_MARK and that family's p."""
    rows_all = _get(tests, metric, "all")
    if not rows_all:
        return None
    n = max((r.get("n", 0) for r in rows_all), default=0)
    m = len(rows_all)
    floor = min((r["p_wilcoxon_holm_min"] for r in rows_all if is_finite(r.get("p_wilcoxon_holm_min"))), default=None)
    can_reach = floor is not None and floor < alpha
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
            if n_too_small(r.get("n") or 0):
                row.append(too_small(r.get("n")))
                continue
            d, lo, hi = oriented(r, a)
            p = r.get("p_wilcoxon_holm")
            pos = r.get("n_pos") if r.get("a") == a else r.get("n_neg")
            count = f" ({pos}/{r.get('n')} > 0)" if pos is not None else ""
            if not can_reach:
                row.append(f"{fmt(d, metric, True)} {interval(lo, hi, metric, True)}{count}, test: n too small")
                continue
            text = f"{fmt(d, metric, True)} {interval(lo, hi, metric, True)} p={fmt_p(p)}{count}"
            significant = is_finite(p) and p < alpha
            other = criterion_test(criteria, a if b == "baseline" else b, metric) if "baseline" in (a, b) else None
            if other is not None and bool(other.get("significant")) != significant:
                text += f" {FAMILY_MARK} criterion family (held-out metrics of {other['arm']}, Holm over {other['m']}): p={fmt_p(other.get('p_holm'))}, {'significant' if other.get('significant') else 'not significant'}"
            row.append(f"**{text}**" if significant and metric not in uncalibrated else text)
        rows.append(row)
    return {"metric": metric, "label": metric_label(metric) + (f" ({NOT_JUDGED})" if metric in uncalibrated else ""), "n": n, "m_tests": m, "p_floor": fmt_p(floor), "can_reach": can_reach, "table": table(["row − column", *datasets], rows, ["l"] + ["r"] * len(datasets))}


def criterion_test(criteria: Mapping | None, arm: str, metric: str) -> dict | None:
    """The significance criterion's test of ``arm`` vs the baseline on ``metric`` (None when the
    criterion did not scan that metric for that arm)."""
    e = _get(criteria, arm, "significance")
    if not e:
        return None
    t = next((t for t in e.get("detail") or [] if t.get("metric") == metric), None)
    return None if t is None else {**t, "arm": arm, "m": e.get("m_tests")}


def test_families(tests: Mapping, stats: Mapping, alpha: float) -> dict | None:
    """Every test family of statistical_analysis.json: n, number of tests, smallest attainable
    p, and whether a test of the family can reach alpha at all."""
    rows = []
    for metric, by_split in (tests or {}).items():
        for split, family in by_split.items():
            if not family:
                continue
            n = max(r.get("n", 0) for r in family)
            floor = min((r.get("p_wilcoxon_holm_min") for r in family if is_finite(r.get("p_wilcoxon_holm_min"))), default=None)
            reach = "yes" if floor is not None and floor < alpha else f"**no**: {too_small(n) if n_too_small(n) else 'n too small for this many tests'}"
            rows.append([metric_label(metric, False), split, n, len(family), "Wilcoxon signed-rank, Holm over the pairs", fmt_p(floor), reach])
    for split, family in (_get(stats, "fid_differences", default={}) or {}).items():
        if not family:
            continue
        n = max(r.get("n", 0) for r in family)
        n_boot = max((r.get("n_boot") or 0) for r in family)
        small = any(r.get("n_too_small") for r in family)
        m_fid = len(family)
        floor = min(1.0, m_fid / n_boot) if n_boot else None
        reach = f"**no**: {too_small(n)}" if small else ("yes" if floor is not None and floor < alpha else f"**no**: {n_boot} replicates, Holm over {m_fid} pairs")
        rows.append(["FID difference", split, n, m_fid, "paired bootstrap, Holm over the pairs (recommendations)", fmt_p(floor) if floor is not None else "n/a", reach])
    if not rows:
        return None
    return table(["metric", "split", "n (images)", "tests", "test", "smallest attainable p", f"can reach α = {alpha}?"], rows, ["l", "l", "r", "r", "l", "r", "l"])


def _kid_text(k: Mapping, n_f) -> str:
    if not k or not is_finite(k.get("kid_mean")):
        return "n/a"
    if k.get("n_too_small"):
        return too_small(k.get("n"))
    text = fmt(k.get("kid_mean"), "kid")
    if k.get("subset_size") and n_f and k["subset_size"] < n_f:
        text += f" ± {fmt(k.get('kid_std'), 'kid')} (std over {k.get('n_subsets')} subsets of {k.get('subset_size')})"
    else:
        text += f" (one subset of all {k.get('subset_size')} images: no spread)"
    return text


def fid_tables(cross: Mapping, stats: Mapping, datasets: Sequence[str], uncalibrated=frozenset()) -> dict | None:
    """FID with its CI per dataset, paired KID (the estimator of this design) beside the
    standard unpaired KID (torchmetrics' definition), a flag where FID and paired KID move in
    opposite directions vs the baseline, and the paired FID differences."""
    if "fid" not in cross.get("metrics", []):
        return None
    agreement = _get(stats, "fid_kid_agreement", default={}) or {}
    rows = []
    for d in datasets:
        f = _get(cross["datasets"], d, "all", "fid") or {}
        k = _get(cross["datasets"], d, "all", "kid") or {}
        ku = _get(cross["datasets"], d, "all", "kid_unpaired") or {}
        agree = agreement.get(d)
        flag = "—" if agree is None else _direction_text(agree, "fid" in uncalibrated)
        small = f.get("n_too_small") or n_too_small(f.get("n") or 0)
        ci = f"CI: {too_small(f.get('n'))}" if small else (fid_interval(f) or "n/a")
        rows.append([d, f.get("n", "n/a"), fmt(f.get("fid"), "fid"), ci, fmt(f.get("boot_bias"), "fid", True) if not small else "—", f.get("n_boot", "n/a"), _kid_text(k, f.get("n")), _kid_text(ku, f.get("n")), flag])
    main = table(["dataset", "N images", "FID ↓", "95% CI (re-centred bootstrap)", "bootstrap bias", "replicates", "paired KID ↓ (unbiased, same-image terms left out)", "standard KID ↓ (unpaired, torchmetrics' definition)", "FID vs paired KID direction (vs baseline)"], rows)
    diff_rows = []
    for r in _get(stats, "fid_differences", "all", default=[]) or []:
        if r.get("n_too_small"):
            diff_rows.append([r["a"], r["b"], fmt(r.get("fid_a"), "fid"), fmt(r.get("fid_b"), "fid"), too_small(r.get("n")), "—", "—", r.get("n", "n/a")])
            continue
        diff_rows.append([r["a"], r["b"], fmt(r.get("fid_a"), "fid"), fmt(r.get("fid_b"), "fid"), fmt(r.get("diff"), "fid", True), interval(r.get("ci95_low"), r.get("ci95_high"), "fid", True) or "n/a", fmt_p_boot(r.get("p_boot"), r.get("n_boot")), r.get("n", "n/a")])
    diffs = table(["A", "B", "FID(A)", "FID(B)", "FID(A) − FID(B)", "95% CI", "p (bootstrap, uncorrected)", "N"], diff_rows, ["l", "l"] + ["r"] * 6) if diff_rows else None
    disagree = [] if "fid" in uncalibrated else [d for d in datasets if d in agreement and _disagree_shown(agreement[d])]
    return {"table": main, "differences": diffs, "disagree": disagree, "uncalibrated": "fid" in uncalibrated}


def _disagree_shown(agree: Mapping) -> bool:
    return shown(agree)


def _direction_text(agree: Mapping, uncalibrated: bool) -> str:
    """FID vs paired KID direction vs the baseline: "disagree" only when both differences print
    nonzero; no verdict at all from an uncalibrated Inception."""
    numbers = f"FID {fmt(agree['fid_diff'], 'fid', True)}, paired KID {fmt(agree['kid_diff'], 'kid', True)}"
    if uncalibrated:
        return f"{NOT_JUDGED} ({numbers})"
    if agree["agree"]:
        return "same direction"
    if not _disagree_shown(agree):
        return f"no direction at the printed precision ({numbers})"
    return f"**disagree**: {numbers}"


def performance_table(perf: Mapping, datasets: Sequence[str]) -> dict:
    """Per dataset: images, batch-level cost (the batch is the unit: its compute time on the
    device clock divided by its images / image-iterations, mean ± t-interval over batches),
    batch-to-batch noise, the per-image share of wall time, iterations, memory."""
    rows = []
    for d in datasets:
        p = _get(perf, "datasets", d) or {}
        t = p.get("time_per_image_s") or {}
        bc = p.get("batch_costs") or {}
        conv = p.get("converged_fraction")
        noise = bc.get("noise_cv")
        rows.append([
            d,
            f"{p.get('succeeded', 0)}/{p.get('images', 0)}",
            bc.get("n_batches", "n/a"),
            ", ".join(bc.get("clock") or []) or "not recorded",
            mean_ci(bc.get("compute_per_image_s"), "time_s") if bc else "n/a",
            (mean_ci(bc.get("compute_per_image_iteration_s"), "time_iter") if bc and is_finite(_get(bc, "compute_per_image_iteration_s", "mean")) else "n/a"),
            (f"{100 * noise:.0f} %" if not n_too_small(bc.get("n_batches") or 0) else too_small(bc.get("n_batches"))) if is_finite(noise) else "n/a",
            fmt(t.get("mean"), "time_s"),
            f"{p['total_time_s'] / 3600:.3f}" if is_finite(p.get("total_time_s")) else "n/a",
            iterations_cell(p),
            f"{100 * conv:.0f} %" if is_finite(conv) else "n/a",
            f"{p['peak_memory_mb']:.0f}" if is_finite(p.get("peak_memory_mb")) else "n/a",
            ", ".join(p.get("devices") or []) or "n/a",
        ])
    return table(["dataset", "ok/images", "batches", "clock", "compute/image (s), mean ± 95% CI over batches", "compute/image-iteration (ms), mean ± 95% CI", "batch-to-batch CV", "wall time/image (s), per-image share", "total wall (h)", "iterations (mean; retried apart)", "stopped early", "peak memory (MB)", "devices"], rows)


def iterations_cell(p: Mapping) -> str:
    """Mean iterations of the images that were not retried, the retried ones counted apart with
    the retry's own totals ("30, retried: 2 × 60")."""
    it = p.get("iterations_not_retried") if "iterations_not_retried" in p else p.get("iterations")
    text = fmt((it or {}).get("mean")) if it else ("—" if p.get("retried_images") else "n/a")
    extra = retried_text(p.get("retry_iterations"))
    return f"{text}, {extra}" if extra else text


def failed_images(perf: Mapping, datasets: Sequence[str]) -> dict | None:
    rows = []
    for d in datasets:
        for f in _get(perf, "datasets", d, "failed_images", default=[]) or []:
            rows.append([d, f.get("split"), f.get("image_id"), f.get("reason") or "(no reason recorded)"])
    return table(["dataset", "split", "image", "reason"], rows, ["l"] * 4) if rows else None


def unreadable_images(perf: Mapping, datasets: Sequence[str]) -> dict | None:
    """Images that could not be read at all (latentopt.analysis.input_failures), one row per image."""
    t = input_failures_table(perf, datasets)
    return table(t["header"], t["rows"], ["l"] * len(t["header"])) if t else None

