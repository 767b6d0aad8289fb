"""Snakemake script: optimize (or, for the baseline, encode/decode) one chunk of images."""

from latentopt.devices import acquire_device
from latentopt.job import optimize_chunk
from latentopt.joblog import job_log

sm = snakemake  # noqa: F821 - injected by Snakemake
run = sm.config["run"]
lock_dir = run["gpu_lock_dir"] or f"{sm.config['results_dir']}/.gpu_locks"
with job_log(sm.log[0]) as log, acquire_device(run["device"], lock_dir, run["n_gpus"]) as device:
    optimize_chunk(sm.config, sm.wildcards.arm, sm.params.split, sm.params.image_ids, device, log=log)
