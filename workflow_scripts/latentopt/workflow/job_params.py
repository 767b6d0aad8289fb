"""What an optimization job is handed, built from the config once per run (torch-free).

The optimize rules (rules/optimize.smk) hand each job its arm's settings (:func:`arm_settings`,
the rerun trigger) and the values of :func:`optimize_run_params` (not rerun triggers: how and where
the job runs, what its outputs say about synthetic parts); the job script passes them, with the
job's input and output files, to :func:`latentopt.optimize.job.optimize_chunk`.
:func:`optimize_job_args` builds the same arguments for one chunk outside Snakemake (tests,
benchmarks).
"""

from __future__ import annotations

from dataclasses import asdict

from latentopt.workflow import layout
from latentopt.workflow.config import arm_settings, synthetic_spec
from latentopt.workflow.settings import RunSettings


def optimize_run_params(config: dict) -> dict:
    """The optimize jobs' params that are the same for every job of a run: ``run``
    (:class:`RunSettings`), ``lpips_random_trunk`` (the per-image LPIPS network), ``synthetic``
    (:func:`latentopt.workflow.config.synthetic_spec`), ``results_dir`` (where the references'
    checksums are checked and the checkpoints kept)."""
    return {
        "run": asdict(RunSettings.from_config(config)),
        "lpips_random_trunk": bool(config["metric_networks"]["lpips_random_trunk"]),
        "synthetic": synthetic_spec(config),
        "results_dir": str(config["results_dir"]),
    }


def optimize_job_args(config: dict, arm: str, split: str, image_ids: list[str], chunk: str | None = None) -> dict:
    """Every argument of :func:`latentopt.optimize.job.optimize_chunk` but ``device`` and ``log``,
    as the rule of this chunk hands them over (its inputs, outputs and params); given the ``chunk``'s
    name, also its manifest (the rule's declared output)."""
    results = config["results_dir"]
    return {
        "manifest": None if chunk is None else str(layout.chunk_manifest(results, arm, chunk)),
        "arm": arm,
        "split": split,
        "image_ids": list(image_ids),
        "prepared": [str(layout.prepared_record(results, split, i)) for i in image_ids],
        **layout.image_outputs(results, arm, split, image_ids),
        "settings": arm_settings(config, arm),
        **optimize_run_params(config),
    }
