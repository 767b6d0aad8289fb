# The Markdown report and its appendix, one HTML page of both (what `snakemake --report` opens
# on) and the figures, from the evaluation outputs.


report: "../report/workflow.rst"


rule report:
    input:
        cross=rules.summarize_evaluation.output.cross,
        stats=rules.summarize_evaluation.output.stats,
        performance=rules.summarize_evaluation.output.performance,
        table=rules.summarize_evaluation.output.table,
        categories=rules.analyze_categories.output.analysis,
        hypotheses=rules.test_hypotheses.output.analysis,
        datasets=expand(rules.build_dataset.output.manifest, arm=ARMS),
        records=[f for arm in ARMS for f in per_image_outputs(arm, "json")],
        pt=[f for arm in ARMS for f in per_image_outputs(arm, "pt")],
        originals=per_image_prepared(),
        gates=gate_files(),
    output:
        report=str(layout.report_file(RESULTS)),
        appendix=str(layout.report_appendix_file(RESULTS)),
        html=report(
            str(layout.report_html_file(RESULTS)),
            category="Comparison report",
            caption="../report/report_page.rst",
            labels={"item": "report and appendix"},
        ),
        figures=report(
            directory(f"{RESULTS}/report_figures"),
            patterns=["{name}.png"],
            category="Figures",
            caption="../report/figure.rst",
            labels={"figure": "{name}"},
        ),
    log:
        f"{RESULTS}/logs/report.log",
    benchmark:
        f"{RESULTS}/benchmarks/report.tsv"
    conda:
        "../envs/pipeline.yaml"
    script:
        "../workflow_scripts/make_report.py"
