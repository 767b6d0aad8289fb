"""Snakemake script: per-image metrics of one dataset's PNGs against the originals."""

from latentopt.compute.devices import job_device
from latentopt.analysis.scoring import per_image_table
from latentopt.core.fileio import atomic_path
from latentopt.core.joblog import job_log
from latentopt.metrics.lpips_network import lpips_network
from latentopt.workflow.plan import build_plan

sm = snakemake  # noqa: F821 - injected by Snakemake
with job_log(sm.log[0]) as log, job_device(sm.config) as device:
    nets = {net: lpips_network(net, random_trunk=sm.params.lpips_random_trunk, device=device) for net in sm.params.lpips_nets}
    table = per_image_table(sm.config, build_plan(sm.config), sm.wildcards.arm, nets)
    with atomic_path(sm.output[0]) as tmp:
        table.to_csv(tmp, index=False)
    log(f"{sm.wildcards.arm}: {int((table['status'] == 'ok').sum())}/{len(table)} images evaluated")
