"""Snakemake script: cross-evaluation matrix, statistics and performance summary."""

from latentopt.analysis.summarize import summarize_all
from latentopt.core.joblog import job_log
from latentopt.workflow.analysis_settings import SummarySettings

sm = snakemake  # noqa: F821 - injected by Snakemake
with job_log(sm.log[0]) as log:
    settings = SummarySettings.from_params(sm.params.settings, evaluation=sm.params.evaluation)
    summarize_all(settings, list(sm.input.tables), list(sm.input.features), dict(sm.output))
    log("evaluation summarized")
