"""Snakemake script: optimize (or, for the baseline, encode/decode) one chunk of images."""

import latentopt.core.stage_times  # noqa: F401 - first: its import time splits interpreter start from imports
from latentopt.core.joblog import job_log
from latentopt.optimize.job import optimize_chunk
from latentopt.workflow.chunks import by_image
from latentopt.workflow.layout import image_outputs

sm = snakemake  # noqa: F821 - injected by Snakemake
stages = sm.log[0].removesuffix(".log") + ".stages.json"  # logs/optimize/<arm>/<chunk>.stages.json
with job_log(sm.log[0]) as log:
    # params.settings (the rerun trigger) are the job's settings and its fingerprint's input;
    # the GPU lease of params.run is entered inside, after the CPU-side start-up
    # the prepared records its input manifest lists; its per-image files, then its manifest (the
    # declared output; latentopt.workflow.chunks)
    ids = sm.params.image_ids
    prepared = by_image(sm.input.prepared, "record")
    optimize_chunk(sm.params.arm, sm.params.split, ids, prepared=[prepared[i] for i in ids],
                   **image_outputs(sm.params.results_dir, sm.params.arm, sm.params.split, ids),
                   manifest=sm.output.manifest, settings=sm.params.settings, run=sm.params.run,
                   lpips_random_trunk=sm.params.lpips_random_trunk, synthetic=sm.params.synthetic,
                   results_dir=sm.params.results_dir, log=log, stages_path=stages)
