"""Snakemake script: optimize (or, for the baseline, encode/decode) one chunk of images."""

import latentopt.core.stage_times  # noqa: F401 - first: its import time splits interpreter start from imports
from latentopt.compute.devices import job_device
from latentopt.optimize.job import optimize_chunk
from latentopt.core.joblog import job_log

sm = snakemake  # noqa: F821 - injected by Snakemake
stages = sm.log[0].removesuffix(".log") + ".stages.json"  # logs/optimize/<arm>/<chunk>.stages.json
with job_log(sm.log[0]) as log:
    # the GPU lease is entered inside, after the CPU-side start-up
    # params.settings (the rerun trigger) is checked against the config and fingerprints the results
    optimize_chunk(sm.config, sm.params.arm, sm.params.split, sm.params.image_ids, job_device(sm.config), log=log,
                   stages_path=stages, params=sm.params.settings)
