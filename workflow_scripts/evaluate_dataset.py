"""Snakemake script: per-image metrics of one dataset's PNGs against the originals, torch on the
job's threads (what the scheduler gave it: snakemake.threads)."""

from latentopt.analysis.scoring import evaluate_dataset
from latentopt.core.joblog import job_log
from latentopt.workflow.chunks import listed

sm = snakemake  # noqa: F821 - injected by Snakemake
with job_log(sm.log[0]) as log:
    evaluate_dataset(listed(sm.input.chunks, "json"), sm.output.table, results=sm.params.results, lpips_nets=sm.params.lpips_nets,
                     lpips_random_trunk=sm.params.lpips_random_trunk, batch_size=sm.params.batch_size, threads=sm.threads,
                     device=sm.params.device, log=log)
