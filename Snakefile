# Per-image optimization of VAE latents on BSDS500: baseline + one dataset per loss, evaluation,
# statistics and a report. See README.md and docs/; every config key is in the schema.
import os
import sys

from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version

min_version("9.27.1")  # the version tested (requirements.txt)
sys.path.insert(0, os.path.join(workflow.basedir, "workflow_scripts"))

from latentopt.workflow.config import (
    ConfigError,
    coerce_config,
    expand_sweeps,
    validate_config,
)
from latentopt.workflow.study import is_study


configfile: os.path.join(workflow.basedir, "config.yaml")


try:  # --config hands nested values over as strings: give them the schema's types, then
    # validate (defaults filled in; one short line per problem, no schema dump), then expand
    # the sweeps (an entry listing values becomes one arm per combination; idempotent)
    expand_sweeps(validate_config(coerce_config(config)))
except ConfigError as exc:
    raise WorkflowError(f"invalid configuration: {exc}")


if is_study(
    config
):  # several autoencoders: each a one-model run of its own (rules/study.smk)

    include: "rules/study_common.smk"
    include: "rules/study.smk"

else:

    include: "rules/common.smk"
    include: "rules/prepare.smk"
    include: "rules/demo_model.smk"
    include: "rules/optimize.smk"
    include: "rules/gate.smk"
    include: "rules/datasets.smk"
    include: "rules/evaluate.smk"
    include: "rules/analysis.smk"
    include: "rules/report.smk"
    include: "rules/explorer.smk"


rule all:
    default_target: True
    input:
        all_targets(),
