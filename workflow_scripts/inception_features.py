"""Snakemake script: Inception (FID) features of the originals or of one dataset's PNGs."""

from latentopt.analysis.features import write_features
from latentopt.core.joblog import job_log

sm = snakemake  # noqa: F821 - injected by Snakemake
with job_log(sm.log[0]) as log:
    write_features(sm.wildcards.name, sm.input.records, sm.output.features, results=sm.params.results,
                   synthetic=sm.params.synthetic, device=sm.params.device, log=log)
