# The per-image explorer (a static page next to the PNG trees it shows) and the landing page of
# `snakemake --report` (this run's banner and verdicts, links to the report page and the
# explorer), from the evaluation tables and the finished report.


# The page `snakemake --report` opens on: this run's landing page once the run has written it,
# the static workflow description before (latentopt.report.landing).
LANDING = layout.report_landing_file(RESULTS)


report: str(LANDING.resolve()) if LANDING.is_file() else "../report/workflow.rst"


rule explorer:
    input:
        metrics=str(rules.summarize_evaluation.output.table),
        categories=str(rules.analyze_categories.output.table),
        report=str(rules.report.output.report),
        datasets=[str(f) for f in expand(rules.build_dataset.output.manifest, arm=ARMS)],
    output:
        explorer=report(
            str(layout.explorer_file(RESULTS)),
            category="Image explorer",
            caption="../report/explorer.rst",
            labels={"item": "image explorer"},
        ),
        landing=str(layout.report_landing_file(RESULTS)),
    log:
        str(layout.log_file(RESULTS, "explorer")),
    conda:
        "../envs/pipeline.yaml"
    params:
        results=untracked(RESULTS),
        experiment_id=config["experiment_id"],
        report_page=untracked(str(layout.report_html_file(RESULTS))),
    script:
        "../workflow_scripts/make_explorer.py"
