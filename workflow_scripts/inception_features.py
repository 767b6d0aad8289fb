"""Snakemake script: Inception (FID) features of the originals or of one dataset's PNGs."""

import numpy as np

from latentopt.compute.devices import job_device
from latentopt.analysis.features import dataset_features, original_features
from latentopt.analysis.scoring import per_image_status
from latentopt.metrics.fid import load_inception
from latentopt.core.fileio import atomic_path
from latentopt.core.joblog import job_log
from latentopt.workflow.plan import build_plan

sm = snakemake  # noqa: F821 - injected by Snakemake
name = sm.wildcards.name
with job_log(sm.log[0]) as log, job_device(sm.config) as device:
    model, calibrated = load_inception(device=device, synthetic=sm.params.synthetic)
    plan = build_plan(sm.config)
    if name == "original":
        feats = original_features(sm.config, plan, model, device)
    else:
        feats = dataset_features(sm.config, per_image_status(sm.config, plan, name), model, device)
    with atomic_path(sm.output[0]) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, calibrated=calibrated, **feats)
    log(f"{name}: {len(feats['keys'])} images, calibrated={calibrated}")
