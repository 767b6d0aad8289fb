"""Snakemake script: optimize (or, for the baseline, encode/decode) one chunk of images."""

from latentopt.devices import job_device
from latentopt.job import optimize_chunk
from latentopt.joblog import job_log

sm = snakemake  # noqa: F821 - injected by Snakemake
with job_log(sm.log[0]) as log:
    # the GPU lease is entered inside, after the CPU-side start-up
    optimize_chunk(sm.config, sm.wildcards.arm, sm.params.split, sm.params.image_ids, job_device(sm.config), log=log)
