"""The study's outputs (``<results_dir>/study/``): study_analysis.json, study_report.md (the study
section under the banner and a header naming each model's own report), the same as one HTML
page, and the figures. Inputs: each model's evaluation outputs (its own one-model run) and the
compare_models rule's params (latentopt.workflow.study.study_params)."""

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
from latentopt.workflow import layout
from latentopt.workflow.config import demo_model_label, model_spec, study_synthetic_parts
from latentopt.workflow.messages import BANNER
from latentopt.workflow.objectives import arm_objectives
from latentopt.workflow.plan import build_plan


def model_description(config: dict) -> dict:
    """Label, decoder parameters and whether it is demo-only/random, of one model of a study
    (``config``: the model's own one-model config)."""
    model = config["model"]
    if model["kind"] == "demo_trained":
        label = f"{demo_model_label(config)}; widths {list(model['widths'])}"
    elif model["kind"] == "taesd":
        label = f"TAESD-format {model['variant']} ({Path(model['decoder']).name})"
    elif model["kind"] == "synthetic_kl":
        label = f"random AutoencoderKL (seed {model['seed']})"
    else:
        label = f"{model['kind']} {model['source']}" + (f"/{model['subfolder']}" if model.get("subfolder") else "")
    return {
        "label": label,
        "kind": model["kind"],
        "decoder_parameters": decoder_parameters(load_autoencoder(model_spec(config))),
        "synthetic": model["kind"] in ("synthetic_kl", "demo_trained"),
    }


def write_study_report(study: Mapping, model_configs: Mapping[str, dict], *, tables: Mapping[str, str], performance: Mapping[str, str],
                       reports: Mapping[str, str], outputs: Mapping[str, str], log: Callable[[str], None] = print) -> dict:
    """Write ``outputs`` (analysis, report, html, figures); returns the analysis. ``study``: the
    rule's params; ``model_configs``: {model: its one-model config}; ``tables``/``performance``/
    ``reports``: {model: that model's per_image_metrics.csv / performance_summary.json / report}."""
    frames, perf = load_model_outputs(tables, performance)
    first = next(iter(model_configs.values()))
    models = {m: model_description(model_configs[m]) for m in frames}
    for m, d in models.items():
        log(f"{m}: {d['label']}, {d['decoder_parameters']:,} decoder parameters")
    arms = sorted({a for m in frames for a in study["models"][m]["arms"]})
    losses = {"losses": {a: sub["losses"][a] for sub in model_configs.values() for a in sub["losses"]}, "metric_networks": first["metric_networks"]}
    gate = {(e.split, e.image_id) for e in build_plan(first).gate_entries}
    settings = {m: {a: arm_settings(b, model_configs[m]["run"]["batch_size"]) for a, b in model_configs[m]["losses"].items()} for m in frames}
    analysis = study_analysis(
        frames, perf, models, study["sweeps"],
        objectives=arm_objectives(losses, arms),
        evaluation=study["evaluation"],
        calibrated={"inception": not first["metric_networks"]["inception_synthetic"], "lpips": not first["metric_networks"]["lpips_random_trunk"]},
        settings=settings, gate_images=gate,
    )
    write_json(outputs["analysis"], analysis)
    report = Path(outputs["report"])
    Path(outputs["figures"]).mkdir(parents=True, exist_ok=True)
    figures = study_figures(analysis, frames, report.parent.parent, outputs["figures"], report.parent)
    synthetic = study_synthetic_parts(model_configs)
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
