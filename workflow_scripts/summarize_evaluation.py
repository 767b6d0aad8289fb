"""Snakemake script: cross-evaluation matrix, statistics and performance summary."""

from latentopt.analysis.summarize import summarize_all
from latentopt.core.joblog import job_log

sm = snakemake  # noqa: F821 - injected by Snakemake
with job_log(sm.log[0]) as log:
    summarize_all(sm.config, list(sm.input.tables), list(sm.input.features), dict(sm.output))
    log("evaluation summarized")
