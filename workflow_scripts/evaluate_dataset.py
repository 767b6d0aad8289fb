"""Snakemake script: per-image metrics of one dataset's PNGs against the originals."""

from latentopt.analysis.scoring import evaluate_dataset
from latentopt.core.joblog import job_log
from latentopt.workflow.chunks import listed

sm = snakemake  # noqa: F821 - injected by Snakemake
with job_log(sm.log[0]) as log:
    evaluate_dataset(listed(sm.input.chunks, "json"), sm.output.table, results=sm.params.results, lpips_nets=sm.params.lpips_nets,
                     lpips_random_trunk=sm.params.lpips_random_trunk, device=sm.params.device, log=log)
