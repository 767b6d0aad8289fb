# Helpers shared by the rules: config checks, the work plan, what a results
# folder already holds (verified), the results-folder lock, target lists.
from dataclasses import asdict

from snakemake.exceptions import WorkflowError
from snakemake.logging import logger

# The library's import path is set by the Snakefile (script jobs get workflow_scripts/ on
# sys.path from Snakemake itself: it is their directory).

from latentopt.workflow import (
    driverlock,
    integrity,
    layout,
    live,
    messages,
    repairs,
    stopping,
)
from latentopt.workflow.config import (
    ConfigError,
    arm_settings,
    check_config,
    demo_model_settings,
    demo_model_summary,
    demo_model_weights,
    synthetic_parts,
)
from latentopt.workflow.weights import ensure_weights, missing_weights_report
from latentopt.core.fileio import check_folder_path, check_writable
from latentopt.workflow.integrity import outputs_of
from latentopt.workflow.job_params import optimize_run_params
from latentopt.workflow.plan import build_plan, optimize_rule_name
from latentopt.workflow.rule_params import (
    known_signature,
    literal,
    tracked_evaluation,
    untracked,
)
from latentopt.workflow.analysis_settings import (
    category_settings,
    device_request,
    hypothesis_settings,
    report_settings,
    summary_settings,
)

try:
    check_config(
        config, losses=workflow.is_main_process
    )  # jobs re-read this file: stay light
    check_folder_path(
        config["results_dir"]
    )  # reads only: inspecting a read-only folder works
    PLAN = build_plan(config)
except (ConfigError, OSError, ValueError) as exc:
    raise WorkflowError(f"invalid configuration: {exc}")

RESULTS = config["results_dir"]
ARMS = PLAN.arms
# Where a job's work runs (run.device, the GPU lock folder, run.n_gpus), handed over untracked.
DEVICE = untracked(device_request(config))


# Before planning, in the driver: another driver on this results folder is named now, before
# Snakemake's own lock of the working directory (whose LockException advises --unlock); then every
# output is verified, reading only (latentopt.workflow.integrity.inspect): what fails is planned
# again with what depends on it (forced files, latentopt.workflow.repairs) and listed; a real run
# moves it aside before its first job (onstart), under the driver lock. In a study the study's
# driver does that for every model (rules/study_common.smk). Every declared output is a target of
# `rule all`.
if workflow.is_main_process:
    HELD = driverlock.held_message(RESULTS)
    if HELD:
        logger.warning(HELD)
    INSPECTION = integrity.inspect(config, PLAN, log=logger.warning)
    for line in INSPECTION.plan_lines():
        logger.warning(line)
    repairs.register(workflow, INSPECTION, log=logger.warning)
    # a dry run names every weight file a real run would need and lacks (nothing is downloaded)
    # (a study names them all at once: not again in each model's module)
    if (
        workflow.output_settings.dryrun
        and workflow.modifier.parent_modifier is None
        and (MISSING_WEIGHTS := missing_weights_report([config]))
    ):
        logger.warning(MISSING_WEIGHTS)

DRIVER_LOCK = None


def preflight():
    """Before the first job (not in dry runs): missing weights fetched (unless offline), failing
    naming any still missing (before anything is written); results dir writable; this driver alone
    on it (latentopt.workflow.driverlock); then what the check before planning found is acted on
    (latentopt.workflow.repairs.apply_all)."""
    global DRIVER_LOCK
    try:
        ensure_weights(config)
        check_writable(RESULTS)
        DRIVER_LOCK = driverlock.acquire(RESULTS, log=logger.warning)
        repairs.apply_all(workflow, log=logger.warning)
    except (OSError, driverlock.LockHeld, integrity.CannotRepair) as exc:
        release_lock()
        damaged = repairs.damaged_count(workflow)
        note = (
            f"; {damaged} damaged output(s) listed above stay where they are"
            if damaged
            else ""
        )
        raise WorkflowError(f"cannot start: {exc}{note}")


def release_lock():
    if DRIVER_LOCK is not None:
        DRIVER_LOCK.release()


def announce(lines):
    for line in lines:
        logger.info(line)


def html_report_command():
    settings = workflow.config_settings
    return messages.report_command(
        config,
        workflow.main_snakefile,
        settings.configfiles,
        settings.config_args or (),
    )


# The signal that stopped this driver, if any (latentopt.workflow.stopping; installed after
# Snakemake's own SIGTERM handler, which it wraps).
STOPS = stopping.StopWatch()


onstart:
    preflight()
    STOPS.install(logger)
    # the live status page (kept up to date by `--logger latentopt`)
    live.start(config)
    announce(messages.start_lines(config))


onsuccess:
    release_lock()
    live.finish(config)
    announce(
        messages.end_lines(config, html_report_command(), synthetic_parts(config))
    )
    announce(
        messages.other_arms_lines(
            RESULTS, integrity.other_arms_outputs(RESULTS, ARMS)
        )
    )


onerror:
    release_lock()
    if STOPS.signal:
        logger.warning(stopping.stopped_paragraph(STOPS.signal, [RESULTS]))
    live.finish(config)


wildcard_constraints:
    arm=layout.one_of(ARMS),
    split=layout.one_of(PLAN.splits),


def model_inputs():
    """Files the optimization jobs load the autoencoder from that the pipeline makes itself."""
    if config["model"]["kind"] == "demo_trained":
        return [str(demo_model_weights(config))]
    return []


def chunk_manifests(arm):
    """The manifests of one arm's optimization jobs (arm may be the '{arm}' wildcard): they list
    every image's per-image files (latentopt.workflow.chunks)."""
    return [str(layout.chunk_manifest(RESULTS, arm, c.name)) for c in PLAN.chunks]


def gate_files():
    """The quality gate's result per loss (none when quality_gate.images_per_loss is 0)."""
    return [str(layout.gate_file(RESULTS, a)) for a in PLAN.gate_arms]


def gate_manifests(arm):
    return [
        str(layout.chunk_manifest(RESULTS, arm, c.name)) for c in PLAN.chunks if c.gate
    ]


def gate_input(chunk, arm):
    """A loss's jobs after its gate wait for the gate to have run (its .gate/<loss>.done, written
    after the verdict), kept in every mode so that switching quality_gate.mode does not change the
    jobs' inputs. A plain edge, not ancient(): when the gate runs again (a settings change, a
    stopped run's resume, a new threshold, a damaged verdict), the jobs after it run again too and
    restore every image whose fingerprint still matches (latentopt.optimize.records.restorable):
    a settings change reaches them in the same run. (Through an ancient() edge, Snakemake skipped
    their input checks once the gate job had to run, and a config change stopped half-way kept
    results of the old settings until a second run.) Not the verdict itself: a deleted or damaged
    verdict would be missing when planning."""
    if chunk.gate or arm not in PLAN.gate_arms:  # the baseline, or no gate in this plan
        return []
    return [str(layout.gate_done(RESULTS, arm))]


# Everything the optimization of one arm depends on, built once: rule params (the rerun trigger
# of the arm's optimize and build_dataset jobs) and the jobs' fingerprint input.
ARM_SETTINGS = {arm: arm_settings(config, arm) for arm in ARMS}
# What every optimize job is handed besides its arm's settings, built once (untracked params:
# how and where the jobs run, what their records say is synthetic; latentopt.workflow.job_params).
OPTIMIZE_RUN = optimize_run_params(config)


def arm_settings_param(wildcards):
    return ARM_SETTINGS[wildcards.arm]


def dataset_file_param(wildcards):
    return str(layout.dataset_file(RESULTS, wildcards.arm))


def dataset_png_param(wildcards):
    return str(layout.dataset_png_dir(RESULTS, wildcards.arm))


def gate_loss_param(wildcards):
    """The loss spec a quality gate judges (its metric and threshold follow from it)."""
    return config["losses"][wildcards.arm]["loss"]


def optimize_resources(config):
    """GPU jobs ask for one GPU; memory and runtime grow with each retry (attempt)."""
    uses_gpu = config["run"]["device"] != "cpu"
    per_job_min = (
        config["run"]["images_per_job"] * config["run"]["timeout_per_image_s"] / 60
    )
    return {
        "gpu": 1 if uses_gpu else 0,
        "mem_mb": known_signature(lambda wildcards, attempt: 16000 * attempt),
        "runtime": known_signature(
            lambda wildcards, attempt: int(10 + per_job_min * attempt)
        ),
    }


def feature_inputs(wildcards):
    """Inception features are computed from the originals (the prepared records the preparation
    manifests list) or from one dataset's PNGs (its manifest and the per-image records its chunk
    manifests list)."""
    if wildcards.name == "original":
        return {"chunks": prepared_manifests()}
    return {
        "manifest": str(layout.dataset_manifest(RESULTS, wildcards.name)),
        "chunks": chunk_manifests(wildcards.name),
    }


def prepared_manifests():
    """The manifests of the preparation jobs (they list every prepared record)."""
    return [str(layout.prepared_manifest(RESULTS, c.name)) for c in PLAN.chunks]


def feature_files():
    if not config["evaluation"]["fid"]:
        return []
    return expand(rules.inception_features.output.features, name=["original", *ARMS])


def all_targets():
    """Every declared output (latentopt.workflow.layout.declared_outputs, the list integrity
    verifies; a per-image file is verified through its chunk's manifest, and a deleted or damaged
    one has its manifest planned again)."""
    return [str(out.path) for out in outputs_of(config, PLAN)]
