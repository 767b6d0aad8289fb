"""Snakemake script: the quality gate of one loss, from its gate images' per-image records."""

from latentopt.optimize.gate import run_gate
from latentopt.core.fileio import write_text
from latentopt.core.joblog import job_log
from latentopt.workflow.chunks import listed

sm = snakemake  # noqa: F821 - injected by Snakemake
with job_log(sm.log[0]) as log:
    run_gate(sm.wildcards.arm, sm.params.loss, sm.params.gate, listed(sm.input.chunks, "json"), sm.output.verdict, log=log)
# after the verdict: what the loss's other jobs wait on (rules/common.smk gate_input)
write_text(sm.output.done, f"the quality gate of {sm.wildcards.arm} has run; verdict in {sm.output.verdict}\n")
