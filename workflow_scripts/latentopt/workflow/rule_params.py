"""Params that a rule hands to its job as they are (pure Python; rules/common.smk, rules/study_common.smk)."""

from __future__ import annotations

import inspect
from collections.abc import Mapping

# Snakemake reads which arguments a param function takes with inspect.signature, once per job and
# param (snakemake.common.get_function_params), unless the function names them in this attribute
# (snakemake.common.overwrite_function_params): at thousands of jobs the signatures were a tenth
# of a dry run's CPU.
_PARAMS_ATTR = "_overwrite_params"
_SIGNATURES = {}


def known_signature(func):
    """``func`` (a param, input or resource function) with its parameters read once per argument
    list, not once per job."""
    code = func.__code__
    names = code.co_varnames[: code.co_argcount]
    if names not in _SIGNATURES:
        _SIGNATURES[names] = inspect.signature(func).parameters
    setattr(func, _PARAMS_ATTR, _SIGNATURES[names])
    return func


def literal(value):
    """A param Snakemake must not format (source paths may hold '{' or '}')."""
    return known_signature(lambda wildcards: value)


def untracked(value):
    """A param handed to the job that is not a rerun trigger: where the job's work runs (device,
    GPU lock folder, threads) or a value whose change already reaches the job another way (its
    arm's settings file, its inputs). Snakemake leaves a param given by a function of `input` out
    of the params it records and compares (rules.Rule._is_deriving_function, persistence
    params_changed), so handing it over reruns nothing. Not formatted either (may hold braces)."""
    return known_signature(lambda wildcards, input: value)


# The keys of the evaluation block that say how the evaluate_dataset jobs run, not what they
# compute (batches of the metric networks, torch threads): handed to those jobs untracked and left
# out of the evaluation block the later jobs track (tracked_evaluation).
EVALUATION_RUN_KEYS = ("batch_size", "threads")


def tracked_evaluation(evaluation: Mapping) -> dict:
    """The evaluation block as a rerun trigger (summarize_evaluation's ``evaluation`` param, a
    study's comparison): all but EVALUATION_RUN_KEYS, so that changing those reruns nothing."""
    return {k: v for k, v in evaluation.items() if k not in EVALUATION_RUN_KEYS}
