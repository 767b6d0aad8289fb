"""The study's outputs (``<results_dir>/study/``): study_analysis.json, study_report.md (the study
section under the banner and a header naming each model's own report), the same as one HTML
page, and the figures. Inputs: each model's evaluation outputs (its own one-model run), the
compare_models rule's params (latentopt.workflow.study.study_params) and its settings
(latentopt.workflow.analysis_settings.StudySettings)."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path

from latentopt.analysis.study import load_model_outputs, study_analysis
from latentopt.analysis.study_matching import arm_settings
from latentopt.core.fileio import atomic_path, write_json
from latentopt.models.autoencoders import decoder_parameters, load_autoencoder
from latentopt.report.html import render_html
from latentopt.report.study import render_study
from latentopt.report.study_figures import study_figures
from latentopt.workflow.analysis_settings import StudyModel, StudySettings
from latentopt.workflow.messages import BANNER
from latentopt.workflow.synthetic import study_parts
from latentopt.workflow.model_specs import SYNTHETIC_KINDS


def model_description(model: StudyModel) -> dict:
    """Label, decoder parameters and whether it is demo-only/random, of one model of a study."""
    if model.synthetic.demo_summary is not None:
        label = f"{model.synthetic.demo_label()}; widths {list(model.widths)}"
    else:
        label = model.label
    return {
        "label": label,
        "kind": model.kind,
        "decoder_parameters": decoder_parameters(load_autoencoder(dict(model.spec))),
        "synthetic": model.kind in SYNTHETIC_KINDS or bool(model.spec.get("synthetic")),
    }


def write_study_report(study: Mapping, settings: StudySettings, *, tables: Mapping[str, str], performance: Mapping[str, str],
                       reports: Mapping[str, str], outputs: Mapping[str, str], log: Callable[[str], None] = print) -> dict:
    """The compare_models job: write ``outputs`` (analysis, report, html, figures); returns the
    analysis. ``study``: the rule's params (latentopt.workflow.study.study_params); ``settings``:
    the models and their arms as the comparison uses them; ``tables``/``performance``/``reports``:
    {model: that model's per_image_metrics.csv / performance_summary.json / report}."""
    frames, perf = load_model_outputs(tables, performance)
    models = {m: model_description(settings.models[m]) for m in frames}
    for m, d in models.items():
        log(f"{m}: {d['label']}, {d['decoder_parameters']:,} decoder parameters")
    arms = sorted({a for m in frames for a in study["models"][m]["arms"]})
    records = {m: {a: arm_settings(b, settings.models[m].batch_size) for a, b in settings.models[m].losses.items()} for m in frames}
    analysis = study_analysis(
        frames, perf, models, study["sweeps"],
        objectives={a: set(settings.objectives[a]) for a in arms if a in settings.objectives},
        evaluation=study["evaluation"],
        calibrated=dict(settings.calibrated),
        settings=records, gate_images=set(settings.gate_images),
    )
    write_json(outputs["analysis"], analysis)
    report = Path(outputs["report"])
    Path(outputs["figures"]).mkdir(parents=True, exist_ok=True)
    figures = study_figures(analysis, frames, report.parent.parent, outputs["figures"], report.parent)
    synthetic = study_parts({m: s.synthetic for m, s in settings.models.items()})
    text = header(synthetic) + render_study(analysis, figures, own_reports(reports, report.parent))
    with atomic_path(report) as tmp:
        Path(tmp).write_text(text)
    with atomic_path(outputs["html"]) as tmp:
        Path(tmp).write_text(render_html(text, None, report.parent, title="latentopt study"))
    log(f"wrote {report}, {outputs['html']} and {outputs['analysis']}")
    return analysis


def header(synthetic: list[str]) -> str:
    """The title and, for demo/synthetic models, the banner (the verdicts follow right under it)."""
    lines = ["# Study report", ""]
    if synthetic:
        lines += [f"> [!WARNING]\n> **{BANNER}:** " + "; ".join(synthetic) + ". Do not quote these numbers.", ""]
    return "\n".join(lines) + "\n"


def own_reports(reports: Mapping[str, str], where: Path) -> str:
    return ("Each model's own report (its baseline, every loss arm, criteria, costs): "
            + ", ".join(f"[{m}]({Path(os.path.relpath(p, where)).as_posix()})" for m, p in reports.items()) + ".")
