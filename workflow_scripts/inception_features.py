"""Snakemake script: Inception (FID) features of the originals or of one dataset's PNGs."""

from latentopt.analysis.features import write_features
from latentopt.core.joblog import job_log
from latentopt.workflow.chunks import listed

sm = snakemake  # noqa: F821 - injected by Snakemake
with job_log(sm.log[0]) as log:
    # the prepared records (originals) or the arm's per-image records its chunk manifests list
    role = "record" if sm.wildcards.name == "original" else "json"
    write_features(sm.wildcards.name, listed(sm.input.chunks, role), sm.output.features, results=sm.params.results,
                   synthetic=sm.params.synthetic, device=sm.params.device, log=log)
