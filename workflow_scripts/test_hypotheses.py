"""Snakemake script: the seed's expected FID ranges vs measured FID, per-arm correlations."""

from latentopt.analysis.hypotheses import write_hypothesis_analysis
from latentopt.core.joblog import job_log
from latentopt.workflow.analysis_settings import HypothesisSettings

sm = snakemake  # noqa: F821 - injected by Snakemake
with job_log(sm.log[0]) as log:
    result = write_hypothesis_analysis(sm.input.cross, sm.input.table, sm.output.analysis, hypotheses=sm.params.hypotheses,
                                       settings=HypothesisSettings.from_params(sm.params.settings))
    log(f"hypotheses: {[(r['arm'], r['verdict']) for r in result['expected_fid']]}")
