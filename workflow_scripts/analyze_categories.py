"""Snakemake script: image descriptors, category groups and per-group gains."""

from latentopt.analysis.categories import write_category_analysis
from latentopt.core.joblog import job_log
from latentopt.workflow.chunks import listed
from latentopt.workflow.analysis_settings import CategorySettings

sm = snakemake  # noqa: F821 - injected by Snakemake
with job_log(sm.log[0]) as log:
    result = write_category_analysis(listed(sm.input.prepared, "record"), sm.input.table, sm.output.table, sm.output.analysis,
                                     categories=sm.params.categories, settings=CategorySettings.from_params(sm.params.settings))
    log(f"categories: edge density from {result['metadata']['edge_density_source']}, groupings {list(result['groupings'])}")
