# Analyses beyond the seed's tables: image categories and the seed's hypotheses.


rule analyze_categories:
    input:
        table=rules.summarize_evaluation.output.table,
        originals=per_image_prepared(),
        user_csv=config["analysis"]["categories"]["csv"] or [],
    output:
        table=f"{EVAL}/image_categories.csv",
        analysis=f"{EVAL}/category_analysis.json",
    log:
        f"{RESULTS}/logs/analyze_categories.log",
    benchmark:
        f"{RESULTS}/benchmarks/analyze_categories.tsv"
    conda:
        "../envs/pipeline.yaml"
    params:
        categories=config["analysis"]["categories"],
    script:
        "../workflow_scripts/analyze_categories.py"


rule test_hypotheses:
    input:
        cross=rules.summarize_evaluation.output.cross,
        table=rules.summarize_evaluation.output.table,
    output:
        analysis=f"{EVAL}/hypothesis_analysis.json",
    log:
        f"{RESULTS}/logs/test_hypotheses.log",
    benchmark:
        f"{RESULTS}/benchmarks/test_hypotheses.tsv"
    conda:
        "../envs/pipeline.yaml"
    params:
        hypotheses=config["analysis"]["hypotheses"],
    script:
        "../workflow_scripts/test_hypotheses.py"
