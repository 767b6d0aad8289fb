# Per-image optimization of VAE latents on BSDS500: baseline + one dataset per loss, evaluation,
# statistics and a report. See README.md; every config key is in the schema below.
import os

from snakemake.utils import min_version, validate

min_version("9.0")


configfile: os.path.join(workflow.basedir, "config.yaml")


validate(
    config,
    os.path.join(workflow.basedir, "workflow_scripts/latentopt/config.schema.yaml"),
)


include: "rules/common.smk"
include: "rules/prepare.smk"
include: "rules/optimize.smk"
include: "rules/datasets.smk"
include: "rules/evaluate.smk"
include: "rules/analysis.smk"
include: "rules/report.smk"


rule all:
    default_target: True
    input:
        all_targets(),
