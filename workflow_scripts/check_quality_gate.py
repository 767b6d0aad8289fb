"""Snakemake script: the quality gate of one loss, from its gate images' per-image records."""

from latentopt.optimize.gate import run_gate
from latentopt.core.joblog import job_log

sm = snakemake  # noqa: F821 - injected by Snakemake
with job_log(sm.log[0]) as log:
    run_gate(sm.wildcards.arm, sm.params.loss, sm.params.gate, sm.input.records, sm.output[0], log=log)
