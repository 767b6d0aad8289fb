"""Snakemake script: the per-image explorer page and the landing page of `snakemake --report`."""

from latentopt.core.joblog import job_log
from latentopt.report.explorer import write_explorer
from latentopt.report.landing import banner_parts, write_landing

sm = snakemake  # noqa: F821 - injected by Snakemake
with job_log(sm.log[0]) as log:
    with open(sm.input.report, encoding="utf-8") as f:
        synthetic = banner_parts(f.read())  # the report's banner: one source
    n = write_explorer(results=sm.params.results, metrics_csv=sm.input.metrics, categories_csv=sm.input.categories,
                       page=sm.output.explorer, title=sm.params.experiment_id, synthetic=synthetic)
    log(f"explorer: {n} images -> {sm.output.explorer}")
    write_landing(report_md=sm.input.report, landing=sm.output.landing, experiment_id=sm.params.experiment_id,
                  results=sm.params.results, report_page=sm.params.report_page,
                  explorer_page=sm.output.explorer)
    log(f"landing page of the Snakemake report -> {sm.output.landing}")
