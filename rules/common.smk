# Helpers shared by the rules: library import path, config checks, the work plan, target lists.
import os
import sys
from dataclasses import asdict

from snakemake.exceptions import WorkflowError

LIBRARY = os.path.join(workflow.basedir, "workflow_scripts")
sys.path.insert(0, LIBRARY)
# (script jobs get workflow_scripts/ on sys.path from Snakemake itself: it is their directory)

from latentopt import layout
from latentopt.config import (
    ConfigError,
    arm_settings,
    check_config,
    demo_model_settings,
    demo_model_summary,
    demo_model_weights,
    ensure_weights,
)
from latentopt.fileio import check_writable
from latentopt.plan import build_plan

try:
    check_config(
        config, losses=workflow.is_main_process
    )  # jobs re-read this file: stay light
    check_writable(config["results_dir"], probe=False)
    PLAN = build_plan(config)
except (ConfigError, OSError, ValueError) as exc:
    raise WorkflowError(f"invalid configuration: {exc}")

RESULTS = config["results_dir"]
EVAL = str(layout.evaluation_dir(RESULTS))
ARMS = PLAN.arms


def preflight():
    """Before the first job (not in dry runs): fetch missing weights (unless offline), fail
    naming any still missing; results dir writable."""
    try:
        ensure_weights(config)
        check_writable(RESULTS)
    except OSError as exc:
        raise WorkflowError(f"cannot start: {exc}")


onstart:
    preflight()


wildcard_constraints:
    arm="|".join(ARMS),
    split="|".join(PLAN.splits),


def model_inputs():
    """Files the optimization jobs load the autoencoder from that the pipeline makes itself."""
    if config["model"]["kind"] == "demo_trained":
        return [str(demo_model_weights(config))]
    return []


def per_image_outputs(arm, ext):
    """Every image's per-image output of one arm (arm may be the '{arm}' wildcard)."""
    return [
        str(layout.per_image(RESULTS, arm, split, e.image_id, ext))
        for split, entries in PLAN.splits.items()
        for e in entries
    ]


def gate_files():
    """The quality gate's result per loss (none when quality_gate.images_per_loss is 0)."""
    if not PLAN.gate_entries:
        return []
    return [str(layout.gate_file(RESULTS, a)) for a in ARMS if a != layout.BASELINE]


def gate_records(arm):
    return [
        str(layout.per_image(RESULTS, arm, e.split, e.image_id, "json"))
        for e in PLAN.gate_entries
    ]


def gate_input(chunk):
    """A loss's jobs after its gate wait for the gate's result. ancient(): a re-evaluated gate
    (e.g. a new threshold) does not redo finished images; kept in every mode, so that switching
    quality_gate.mode does not change the jobs' inputs (Snakemake's input trigger)."""

    def inputs(wildcards):
        if chunk.gate or wildcards.arm == layout.BASELINE or not PLAN.gate_entries:
            return []
        return [ancient(str(layout.gate_file(RESULTS, wildcards.arm)))]

    return inputs


def dataset_targets(arm):
    return [
        str(layout.dataset_file(RESULTS, arm)),
        str(layout.dataset_png_dir(RESULTS, arm)),
    ]


def optimize_resources(config):
    """GPU jobs ask for one GPU; memory and runtime grow with each retry (attempt)."""
    uses_gpu = config["run"]["device"] != "cpu"
    per_job_min = (
        config["run"]["images_per_job"] * config["run"]["timeout_per_image_s"] / 60
    )
    return {
        "gpu": 1 if uses_gpu else 0,
        "mem_mb": lambda wildcards, attempt: 16000 * attempt,
        "runtime": lambda wildcards, attempt: int(10 + per_job_min * attempt),
    }


def feature_inputs(name):
    """Inception features are computed from the originals or from one dataset's PNGs."""
    if name == "original":
        return per_image_prepared()
    return dataset_targets(name) + per_image_outputs(name, "json")


def per_image_prepared():
    return [
        str(layout.prepared_record(RESULTS, split, e.image_id))
        for split, entries in PLAN.splits.items()
        for e in entries
    ]


def feature_files():
    if not config["evaluation"]["fid"]:
        return []
    return expand(f"{EVAL}/features/{{name}}.npz", name=["original", *ARMS])


def all_targets():
    """The report, plus every per-image output: a deleted per-image file is then a missing
    target, so its job (and what depends on it) is redone."""
    per_image = [
        path
        for arm in ARMS
        for ext in ("json", "pt")
        for path in per_image_outputs(arm, ext)
    ]
    return per_image + gate_files() + [str(layout.report_file(RESULTS))]
