# The Markdown report and its appendix, one HTML page of both (what `snakemake --report` opens
# on) and the figures, from the evaluation outputs.


# The global report text (the page `snakemake --report` opens on): rules/explorer.smk.


# The inputs are plain paths (str): with a rules.X.output reference among its inputs, Snakemake
# hashes each list input once per file in it when planning the job (quadratic: 12 s of a 3-model
# dry run at 500 images). The per-image records and .pt files the report also reads (loss
# curves, provenance) are not listed: every one of them is an input of its dataset's build, whose
# manifest is an input here, so a redone image reruns the report through it.
rule report:
    input:
        cross=str(rules.summarize_evaluation.output.cross),
        stats=str(rules.summarize_evaluation.output.stats),
        performance=str(rules.summarize_evaluation.output.performance),
        table=str(rules.summarize_evaluation.output.table),
        categories=str(rules.analyze_categories.output.analysis),
        hypotheses=str(rules.test_hypotheses.output.analysis),
        datasets=[str(f) for f in expand(rules.build_dataset.output.manifest, arm=ARMS)],
        prepared=prepared_manifests(),
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
            directory(str(layout.figures_dir(RESULTS))),
            patterns=["{name}.png"],
            category="Figures",
            caption="../report/figure.rst",
            labels={"figure": "{name}"},
        ),
    log:
        str(layout.log_file(RESULTS, "report")),
    benchmark:
        str(layout.benchmark_file(RESULTS, "report"))
    conda:
        "../envs/pipeline.yaml"
    params:
        settings=untracked(report_settings(config).params()),
    script:
        "../workflow_scripts/make_report.py"
