# The Markdown report (tables, statistics, figures, provenance) from the evaluation outputs.


rule report:
    input:
        cross=f"{EVAL}/cross_evaluation_matrix.json",
        stats=f"{EVAL}/statistical_analysis.json",
        performance=f"{EVAL}/performance_summary.json",
        table=f"{EVAL}/per_image_metrics.csv",
        categories=f"{EVAL}/category_analysis.json",
        hypotheses=f"{EVAL}/hypothesis_analysis.json",
        datasets=[t for arm in ARMS for t in dataset_targets(arm)],
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
