"""Snakemake script: the study-wide image explorer (every model's arms side by side)."""

from latentopt.core.joblog import job_log
from latentopt.report.explorer import study_banner_parts, write_study_explorer

sm = snakemake  # noqa: F821 - injected by Snakemake
results = sm.params.results
with job_log(sm.log[0]) as log:
    with open(sm.input.report, encoding="utf-8") as f:
        synthetic = study_banner_parts(f.read())  # the study report's banner: one source
    models = {m: {"results": results[m], "metrics": sm.input[f"metrics_{m}"], "categories": sm.input[f"categories_{m}"]}
              for m in results}
    n = write_study_explorer(models=models, page=sm.output.explorer, title=f"{sm.params.experiment_id} (study)",
                             synthetic=synthetic)
    log(f"study explorer: {n} images, models {', '.join(models)} -> {sm.output.explorer}")
