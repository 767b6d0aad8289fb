# Analyses beyond the seed's tables: image categories and the seed's hypotheses.


rule analyze_categories:
    input:
        table=rules.summarize_evaluation.output.table,
        prepared=prepared_manifests(),
        user_csv=config["analysis"]["categories"]["csv"] or [],
    output:
        table=str(layout.evaluation_file(RESULTS, "categories_table")),
        analysis=str(layout.evaluation_file(RESULTS, "categories")),
    log:
        str(layout.log_file(RESULTS, "analyze_categories")),
    benchmark:
        str(layout.benchmark_file(RESULTS, "analyze_categories"))
    conda:
        "../envs/pipeline.yaml"
    params:
        categories=config["analysis"]["categories"],
        settings=untracked(category_settings(config).params()),
    script:
        "../workflow_scripts/analyze_categories.py"


rule test_hypotheses:
    input:
        cross=rules.summarize_evaluation.output.cross,
        table=rules.summarize_evaluation.output.table,
    output:
        analysis=str(layout.evaluation_file(RESULTS, "hypotheses")),
    log:
        str(layout.log_file(RESULTS, "test_hypotheses")),
    benchmark:
        str(layout.benchmark_file(RESULTS, "test_hypotheses"))
    conda:
        "../envs/pipeline.yaml"
    params:
        hypotheses=config["analysis"]["hypotheses"],
        settings=untracked(hypothesis_settings(config).params()),
    script:
        "../workflow_scripts/test_hypotheses.py"
