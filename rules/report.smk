# The Markdown report (tables, statistics, figures, provenance) from the evaluation outputs.


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
        report=report(str(layout.report_file(RESULTS)), category="Comparison report"),
        figures=report(
            directory(f"{RESULTS}/report_figures"),
            patterns=["{name}.png"],
            category="Comparison report",
        ),
    log:
        f"{RESULTS}/logs/report.log",
    benchmark:
        f"{RESULTS}/benchmarks/report.tsv"
    conda:
        "../envs/pipeline.yaml"
    script:
        "../workflow_scripts/make_report.py"
