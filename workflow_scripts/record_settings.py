"""Snakemake script: the settings every result of one arm depends on (latentopt.workflow.config.arm_settings).
Its params are the settings: a change reruns this job, and with it every optimization job of the arm.
The results folder is recorded too: the check before planning (latentopt.workflow.integrity) compares
paths under it relative to it, so a copied or moved folder keeps its settings."""

from pathlib import Path

from latentopt.core.fileio import write_json

sm = snakemake  # noqa: F821 - injected by Snakemake
write_json(sm.output[0], {"arm": sm.wildcards.arm, "results_dir": sm.params.results_dir, "settings": dict(sm.params.settings)})
Path(sm.log[0]).write_text(f"recorded the settings of {sm.wildcards.arm} in {sm.output[0]}\n")
