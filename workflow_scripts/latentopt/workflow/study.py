"""A study: several autoencoders in one run (config key ``models``), pure Python.

Each model of a study gets a complete one-model results tree of its own, ``<results_dir>/<name>/``:
the same rules (imported once per model as a Snakemake module, rules/study.smk) run on a config
derived here, :func:`model_configs`, which is exactly a one-model config. So everything a one-model
run does (layout, integrity checks, resume, quality gate, progress, SLURM resources) works per
(model, arm) unchanged, and ``<results_dir>/study/`` compares the models.

A config without ``models`` is a one-model run and writes today's tree at ``<results_dir>``.
"""

from __future__ import annotations

import copy
from pathlib import Path

from latentopt.workflow.plan import selected_losses
from latentopt.workflow.rule_params import tracked_evaluation
from latentopt.workflow.sweeps import sweep_groups

STUDY_DIR = "study"
# keys of a study config that a model's own config does not have
STUDY_KEYS = ("models", "use_models")


class StudyError(ValueError):
    """A study setting that cannot work; the message starts with the key."""


def is_study(config: dict) -> bool:
    return bool(config.get("models"))


def selected_models(config: dict) -> list[str]:
    chosen = config.get("use_models")
    return list(config["models"]) if chosen is None else list(chosen)


def check_study(config: dict) -> None:
    """What the schema cannot say about ``models``, ``use_models`` and ``losses.<arm>.models``."""
    models = config.get("models") or {}
    if not models:
        if config.get("use_models") is not None:
            raise StudyError("use_models: only with `models` (a study); this config has one `model`")
        for arm, block in config["losses"].items():
            if "models" in block:
                raise StudyError(f"losses.{arm}.models: only with `models` (a study); this config has one `model`")
        return
    unknown = [m for m in config.get("use_models") or [] if m not in models]
    if unknown:
        raise StudyError(f"use_models: {unknown} not defined under models (defined: {sorted(models)})")
    for arm, block in config["losses"].items():
        bad = [m for m in block.get("models", []) if m not in models]
        if bad:
            raise StudyError(f"losses.{arm}.models: {bad} not defined under models (defined: {sorted(models)})")


def model_results_dir(config: dict, name: str) -> Path:
    return Path(config["results_dir"]) / name


def study_dir(config: dict) -> Path:
    return Path(config["results_dir"]) / STUDY_DIR


def model_config(config: dict, name: str) -> dict:
    """The one-model config of model ``name`` of a (validated) study config: ``model`` is that
    entry, ``results_dir`` is <results_dir>/<name>, the experiment id gets the model's name, and
    ``losses`` keeps the arms that run for it (``losses.<arm>.models``), without that key."""
    sub = {k: copy.deepcopy(v) for k, v in config.items() if k not in STUDY_KEYS}
    sub["model"] = copy.deepcopy(config["models"][name])
    sub["results_dir"] = str(model_results_dir(config, name))
    sub["experiment_id"] = f"{config['experiment_id']}.{name}"
    sub["losses"] = {
        arm: {k: v for k, v in block.items() if k != "models"}
        for arm, block in sub["losses"].items()
        if name in block.get("models", [name])
    }
    if sub.get("use_losses") is not None:
        sub["use_losses"] = [a for a in sub["use_losses"] if a in sub["losses"]]
    if not sub["losses"]:
        raise StudyError(f"models.{name}: no loss arm runs for this model (losses.<arm>.models)")
    return sub


def model_configs(config: dict) -> dict[str, dict]:
    """Every selected model's one-model config, in the config's order."""
    return {name: model_config(config, name) for name in selected_models(config)}


def arm_methods(config: dict) -> dict[str, str]:
    """Each loss arm's optimization method (``losses.<arm>.method``, the schema's default filled)."""
    return {arm: block["method"] for arm, block in config["losses"].items()}


def study_sweeps(config: dict) -> dict[str, dict[str, dict]]:
    """Per swept entry, its selected arms and their swept values ({psnr: {psnr-lr0.1: {lr: 0.1}}};
    latentopt.workflow.sweeps.sweep_groups; entries without a sweep are absent)."""
    chosen = set(selected_losses(config))
    groups = {base: {g["arm"]: g["values"] for g in arms if g["arm"] in chosen} for base, arms in sweep_groups(config).items()}
    return {base: arms for base, arms in groups.items() if arms}


def study_params(config: dict) -> dict:
    """What the comparison of the models depends on beyond their evaluation outputs (the
    compare_models rule's params, each read by its script): the models in order with the loss
    arms each runs (use_losses and losses.<arm>.models applied), each arm's method, the sweeps
    (base entry -> {arm: swept values}) and the evaluation settings (bootstrap, alpha, seed)."""
    return {
        "models": {name: {"arms": selected_losses(sub)} for name, sub in model_configs(config).items()},
        "methods": arm_methods(config),
        "sweeps": study_sweeps(config),
        "evaluation": copy.deepcopy(tracked_evaluation(config["evaluation"])),
    }
