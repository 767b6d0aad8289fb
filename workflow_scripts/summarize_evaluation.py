"""Snakemake script: cross-evaluation matrix, statistics and performance summary."""

from latentopt.analysis.evaluation import summarize_all
from latentopt.core.joblog import job_log

sm = snakemake  # noqa: F821 - injected by Snakemake
with job_log(sm.log[0]) as log:
    # the evaluation settings are the rule's param (its rerun trigger); the rest of the config
    # (metric networks, run settings for the performance summary) as the library reads it
    summarize_all({**sm.config, "evaluation": sm.params.evaluation}, list(sm.input.tables), list(sm.input.features),
                  dict(sm.output))
    log("evaluation summarized")
