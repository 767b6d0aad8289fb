# Helpers of a study (config key `models`, rules/study.smk): its checks, the models' configs,
# the driver lock of the study's folder, target lists.
from snakemake.exceptions import WorkflowError
from snakemake.logging import logger

from latentopt.core.fileio import check_folder_path, check_writable
from latentopt.workflow import driverlock, integrity, live, messages, repairs, stopping
from latentopt.workflow.plan import build_plan
from latentopt.workflow.config import ConfigError, check_config, study_synthetic_parts
from latentopt.workflow.study import model_configs, study_dir, study_params
from latentopt.workflow.analysis_settings import study_settings
from latentopt.workflow.rule_params import untracked
from latentopt.workflow.weights import ensure_all_weights, missing_weights_report

try:
    check_config(config, losses=workflow.is_main_process)
    check_folder_path(config["results_dir"])
    MODEL_CONFIGS = model_configs(config)
except (ConfigError, OSError, ValueError) as exc:
    raise WorkflowError(f"invalid configuration: {exc}")

RESULTS = config["results_dir"]
STUDY = str(study_dir(config))

# Another driver on this study is named before any model's folder is checked (each model's
# rules check their own folder, reading only, when they are made, below; this driver acts on what
# they found, under the study's lock: one driver for the whole study).
if workflow.is_main_process:
    HELD = driverlock.held_message(RESULTS)
    if HELD:
        logger.warning(HELD)
    # a dry run names every weight file a real run would need and lacks (nothing is downloaded)
    if workflow.output_settings.dryrun and (
        MISSING_WEIGHTS := missing_weights_report(list(MODEL_CONFIGS.values()))
    ):
        logger.warning(MISSING_WEIGHTS)

DRIVER_LOCK = None


MODEL_LOCKS = []


def preflight():
    """Before the first job (not in dry runs): every model's weights (as a one-model run does),
    the results folder writable, this driver alone on the study's folder and on each model's
    (a one-model run on a model's folder is refused meanwhile); then what the check before
    planning found in each model's folder is acted on (latentopt.workflow.repairs.apply_all).
    """
    global DRIVER_LOCK
    try:
        ensure_all_weights(
            list(MODEL_CONFIGS.values())
        )  # one message naming every missing file
        check_writable(RESULTS)
        DRIVER_LOCK = driverlock.acquire(RESULTS, log=logger.warning)
        for sub in MODEL_CONFIGS.values():
            MODEL_LOCKS.append(
                driverlock.acquire(sub["results_dir"], log=logger.warning)
            )
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
    while MODEL_LOCKS:
        MODEL_LOCKS.pop().release()
    if DRIVER_LOCK is not None:
        DRIVER_LOCK.release()


# The signal that stopped this driver, if any; every model's results tree holds its own
# checkpoint store (latentopt.workflow.stopping).
STOPS = stopping.StopWatch()
MODEL_RESULTS = [c["results_dir"] for c in MODEL_CONFIGS.values()]


onstart:
    preflight()
    STOPS.install(logger)
    # the live status page (kept up to date by `--logger latentopt`)
    live.start(config)
    for line in messages.start_lines(config):
        logger.info(line)


onsuccess:
    release_lock()
    live.finish(config)
    synthetic = study_synthetic_parts(MODEL_CONFIGS)
    for line in messages.study_end_lines(config, list(MODEL_CONFIGS), synthetic):
        logger.info(line)
    for sub in MODEL_CONFIGS.values():
        others = integrity.other_arms_outputs(
            sub["results_dir"], build_plan(sub).arms
        )
        for line in messages.other_arms_lines(sub["results_dir"], others):
            logger.info(line)


onerror:
    release_lock()
    if STOPS.signal:
        logger.warning(stopping.stopped_paragraph(STOPS.signal, MODEL_RESULTS))
    live.finish(config)


def model_outputs(rule, key):
    """For every model, the path of one output of one of its rules (named as in the one-model workflow)."""
    return {
        m: getattr(getattr(rules, f"{m}_{rule}").output, key) for m in MODEL_CONFIGS
    }


def all_targets():
    """Every model's targets (those of its `all`) and the study's outputs, as plain paths: an
    input object of another rule here would make Snakemake hash the whole list once per path
    (minutes at 500 images)."""
    return [
        *[str(f) for m in MODEL_CONFIGS for f in getattr(rules, f"{m}_all").input],
        *map(str, rules.compare_models.output),
        *map(str, rules.study_explorer.output),
    ]
