"""The Markdown comparison report (``FULL_BSDS500_COMPARISON_REPORT.md``) and its figures.

Inputs are the evaluation outputs (analysis/summarize.py: cross_evaluation_matrix.json,
statistical_analysis.json, performance_summary.json, per_image_metrics.csv) plus the per-image
records/.pt files and PNGs of every dataset (layout.py). Nothing here recomputes a statistic:
tables quote the JSON files, recommendations are derived from them by :func:`recommendations`,
and every definition is quoted from the docstring of the module that implements it (one source
of truth). Figures (figures.py) go to ``report_figures/`` next to the report and are linked with
relative paths.

Rendering: :func:`build_context` turns the inputs into plain strings/rows; the Jinja2 templates
``templates/report.md.j2`` (the main report: banner, headline table, recommendations, criteria,
cost, key figures) and ``templates/appendix.md.j2`` (everything else) lay them out; html.py
renders both into one self-contained HTML page; :func:`write_report` does all and writes the
files. Arm order and colours: arms.arm_order (the config's loss order), everywhere. Metrics from
an uncalibrated network (objectives.uncalibrated_metrics) are listed, labelled, never judged.

Modules, one concern each: formatting (labels, numbers, table dicts), inputs (reading and looking
up the JSON files), arms (what each loss optimizes), definitions (docstrings quoted), tables
(result tables), conclusions (every decision rule: success criteria, recommendations), provenance,
figures (figure wiring), analysis (the visual-quality, image-category and hypothesis sections,
rendered by their own template and placed as one block). Adding a section: one function returning a table dict (tables.py, or a
new module), one entry in :func:`build_context`, and its place in the template.
"""

from __future__ import annotations

import datetime as _dt
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import yaml

from latentopt.workflow.analysis_settings import ReportSettings
from latentopt.workflow.metric_specs import EVALUATED_METRICS, METRICS
from latentopt.core.fileio import atomic_path
from latentopt.workflow.layout import BASELINE
from latentopt.workflow.objectives import NOT_JUDGED
from latentopt.analysis.statistics import MIN_N_INTERVAL
from latentopt.report.arms import arm_order, loss_description, optimized_metrics  # noqa: F401 - optimized_metrics: tests
from latentopt.report.conclusions import criteria_rules, recommendations, success_table
from latentopt.report.definitions import definitions, docstring_section, module_docstring  # noqa: F401 - tests
from latentopt.report.figures import make_figures
from latentopt.report.rendering import render_template
from latentopt.report.formatting import metric_label, OPTIMIZED_MARK, RANGE_MARK, retried_text, table
from latentopt.report.gate import gate_images_phrase, gate_section, load_gates
from latentopt.report.verdicts import verdicts, verdicts_lead
from latentopt.report.inputs import _datasets, _get, _splits, load_inputs
from latentopt.report.provenance import REPORT_PACKAGES, _version, dataset_metadata, model_provenance
from latentopt.report.tables import failed_images, fid_tables, metric_table, performance_table, significance_matrix, test_families, unreadable_images
from latentopt.core import provenance
from latentopt.report.html import render_html
from latentopt.report.analysis import load_optional, render_sections

TEMPLATE = "report.md.j2"
APPENDIX_TEMPLATE = "appendix.md.j2"
FIGURES_DIRNAME = "report_figures"


def iterations_text(limit, retry_counts) -> str:
    """The arms table's iteration limit, the retried images counted apart: "150, retried: 2 × 300"."""
    extra = retried_text(retry_counts)
    return f"{limit}, {extra}" if extra else str(limit)


def report_uncalibrated(uncalibrated, cross: Mapping | None = None) -> set[str]:
    """Metrics from an uncalibrated network: by the config (``uncalibrated``:
    objectives.uncalibrated_metrics) and by the evaluation's own record (an Inception reported
    uncalibrated)."""
    uncal = set(uncalibrated)
    calibrated = _get(cross, "metadata", "calibrated", default={}) or {}
    if any(ok is False for ok in calibrated.values()):
        uncal |= {"fid", "kid", "kid_unpaired"}
    return uncal


def build_context(settings: ReportSettings, inputs: Mapping, figures: Mapping, *, report_versions: Mapping | None = None, hardware: Mapping | None = None, analysis: str = "") -> dict:
    cross, stats, perf, table_df = inputs["cross"], inputs["stats"], inputs["performance"], inputs["table"]
    results = settings.results
    datasets = arm_order(list(settings.losses), _datasets(cross))
    arms = [d for d in datasets if d != BASELINE]
    metrics = [m for m in METRICS if m in cross.get("metrics", [])]
    uncal = report_uncalibrated(settings.uncalibrated, cross)
    alpha = settings.alpha
    optimized = {a: set(settings.objectives[a]) for a in arms if a in settings.objectives}
    splits = _splits(cross)
    report_versions = dict(report_versions or provenance.versions())
    for name in REPORT_PACKAGES:  # what renders the report, beyond provenance.PACKAGES
        report_versions.setdefault(name, _version(name))
    hardware = dict(hardware or provenance.hardware())

    synthetic = list(settings.synthetic.parts())
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
    sig_metrics = [m for m in EVALUATED_METRICS if m in tests]
    defs = definitions()
    return {
        "title": "Full BSDS500 comparison: per-image VAE latent optimization",
        "experiment_id": settings.experiment_id,
        "generated": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "synthetic": synthetic,
        "datasets": datasets,
        "arms": [{"name": a, "loss": loss_description(settings.losses[a]["loss"]) if a in settings.losses else "?", "iterations": iterations_text(_get(settings.losses, a, "iterations"), _get(perf, "datasets", a, "retry_iterations", default=[])), "lr": _get(settings.losses, a, "lr"), "optimized": ", ".join(metric_label(m, False) for m in sorted(optimized.get(a, ()))) or "none of the evaluation metrics"} for a in arms],
        "n_images": int(len(per_image)),
        "split_counts": split_counts,
        "n_paired": _get(stats, "metadata", "n_paired_images"),
        "alpha": alpha,
        "optimized_mark": OPTIMIZED_MARK,
        "headline": metric_table(cross, "all", datasets, metrics, optimized, table_df, uncal),
        "split_tables": [{"split": s, "table": metric_table(cross, s, datasets, metrics, optimized, table_df, uncal)} for s in splits] if len(splits) > 1 else [],
        "single_split": splits[0] if len(splits) == 1 else None,
        "significance": [t for t in (significance_matrix(tests, m, datasets, alpha, uncalibrated=uncal, criteria=stats.get("success_criteria")) for m in sig_metrics) if t],
        "fid": fid_tables(cross, stats, datasets, uncal),
        "uncalibrated": sorted(uncal),
        "not_judged": NOT_JUDGED,
        "fid_enabled": settings.fid,
        "performance": performance_table(perf, datasets),
        "success": success_table(stats, uncal, datasets),
        "quality_gate": gate_section(inputs.get("gates", [])),
        "gate_images": gate_images_phrase(inputs.get("gates", []), int(len(per_image))),
        "criteria_rules": criteria_rules(stats),
        "test_families": test_families(tests, stats, alpha),
        "min_n": MIN_N_INTERVAL,
        "range_mark": RANGE_MARK,
        "failed": failed_images(perf, datasets),
        "input_failures": unreadable_images(perf, datasets),
        "n_failed": sum(int(_get(perf, "datasets", d, "failed", default=0) or 0) for d in datasets),
        "n_failed_distinct": len({(f.get("split"), f.get("image_id")) for d in datasets for f in _get(perf, "datasets", d, "failed_images", default=[]) or []}),
        "recommendations": recommendations(cross, stats, perf, datasets, optimized, alpha, uncalibrated=uncal, gate_images=gate_images_phrase(inputs.get("gates", []), int(len(per_image)))),
        "verdicts_lead": verdicts_lead(alpha, bool(synthetic)),
        "verdicts": [v.text for v in verdicts(cross, stats, perf, datasets, optimized, alpha, uncalibrated=uncal)],
        "figures": figures,
        "definitions": defs,
        "config_yaml": yaml.safe_dump(settings.shown_config, sort_keys=False, allow_unicode=True).rstrip(),
        "models": model_provenance(results, table_df, datasets),
        "dataset_meta": dataset_metadata(results, datasets, report_versions),
        "metric_networks": list(settings.metric_networks),
        "versions": table(["package", "version"], [[k, v or "not installed"] for k, v in report_versions.items()], ["l", "l"]),
        "hardware": hardware,
        "devices": devices,
        "precision": settings.precision,
        "analysis": analysis,
    }


def render(context: Mapping, template: str = TEMPLATE) -> str:
    return render_template(template, context)


def appendix_path(report: str | Path) -> Path:
    """The appendix next to the report: <report stem>_APPENDIX.md (layout.report_appendix_file)."""
    return Path(report).with_name(Path(report).stem + "_APPENDIX.md")


def write_report(settings: ReportSettings, *, cross: str | Path, stats: str | Path, performance: str | Path, table_csv: str | Path, report: str | Path, fig_dir: str | Path | None = None, gates: Sequence[str | Path] = (), categories: str | Path | None = None, hypotheses: str | Path | None = None, appendix: str | Path | None = None, html: str | Path | None = None, log: Callable[[str], None] = print) -> Path:
    """Render the report, its appendix, the HTML page and the figures from the evaluation
    outputs; returns the report path. ``gates``: the quality gate's results;
    ``categories``/``hypotheses``: category_analysis.json / hypothesis_analysis.json (optional);
    ``appendix``/``html``: where the appendix and the HTML page go (default: next to the report,
    appendix_path / the report's name with .html)."""
    report = Path(report)
    fig_dir = Path(fig_dir) if fig_dir is not None else report.parent / FIGURES_DIRNAME
    inputs = {**load_inputs(cross, stats, performance, table_csv), "gates": load_gates(gates)}
    datasets = arm_order(list(settings.losses), _datasets(inputs["cross"]))
    figs = make_figures(settings.results, settings.losses, settings.objectives, settings.uncalibrated, inputs, datasets, fig_dir, report.parent, log)
    analysis = render_sections(inputs["cross"], datasets, inputs["table"], load_optional(categories), load_optional(hypotheses), fig_dir, report.parent, uncalibrated=report_uncalibrated(settings.uncalibrated, inputs["cross"]))
    log("analysis sections: visual quality, categories, hypotheses")
    appendix = Path(appendix) if appendix is not None else appendix_path(report)
    html = Path(html) if html is not None else report.with_suffix(".html")
    context = build_context(settings, inputs, figs, analysis=analysis)
    context.update(appendix_name=os.path.relpath(appendix, report.parent), report_name=report.name)
    text, text_appendix = render(context), render(context, APPENDIX_TEMPLATE)
    page = render_html(text, text_appendix, report.parent, title=context["title"], appendix_name=context["appendix_name"])
    for path, content in ((report, text), (appendix, text_appendix), (html, page)):
        with atomic_path(path) as tmp:
            tmp.write_text(content)
    log(f"report written: {report} ({len(text.splitlines())} lines), appendix {appendix} ({len(text_appendix.splitlines())} lines), HTML {html}")
    return report
