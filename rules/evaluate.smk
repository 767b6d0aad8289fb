# Cross-metric evaluation of every dataset against the originals, then aggregation and statistics.


rule evaluate_dataset:
    input:
        json=per_image_outputs("{arm}", "json"),
        dataset=rules.build_dataset.output.manifest,
    output:
        table=f"{EVAL}/per_image/{{arm}}.csv",
    log:
        f"{RESULTS}/logs/evaluate/{{arm}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/evaluate/{{arm}}.tsv"
    conda:
        "../envs/pipeline.yaml"
    resources:
        gpu=optimize_resources(config)["gpu"],
    params:
        lpips_nets=config["evaluation"]["lpips_nets"],
        lpips_random_trunk=config["metric_networks"]["lpips_random_trunk"],
    script:
        "../workflow_scripts/evaluate_dataset.py"


rule inception_features:
    input:
        feature_inputs,
    output:
        features=f"{EVAL}/features/{{name}}.npz",
    log:
        f"{RESULTS}/logs/features/{{name}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/features/{{name}}.tsv"
    wildcard_constraints:
        name=layout.one_of(["original", *ARMS]),
    conda:
        "../envs/pipeline.yaml"
    resources:
        gpu=optimize_resources(config)["gpu"],
    params:
        synthetic=config["metric_networks"]["inception_synthetic"],
    script:
        "../workflow_scripts/inception_features.py"


rule summarize_evaluation:
    input:
        tables=expand(rules.evaluate_dataset.output.table, arm=ARMS),
        features=feature_files(),
    output:
        cross=f"{EVAL}/cross_evaluation_matrix.json",
        stats=f"{EVAL}/statistical_analysis.json",
        performance=f"{EVAL}/performance_summary.json",
        table=f"{EVAL}/per_image_metrics.csv",
    log:
        f"{RESULTS}/logs/summarize_evaluation.log",
    benchmark:
        f"{RESULTS}/benchmarks/summarize_evaluation.tsv"
    conda:
        "../envs/pipeline.yaml"
    params:
        evaluation=config["evaluation"],
    script:
        "../workflow_scripts/summarize_evaluation.py"
