# Cross-metric evaluation of every dataset against the originals, then aggregation and statistics.
# Each job reads the records its inputs are and its settings (latentopt.workflow.analysis_settings,
# built once here, handed over untracked); its rerun triggers are its inputs and its other params.


rule evaluate_dataset:
    input:
        chunks=chunk_manifests("{arm}"),
        dataset=rules.build_dataset.output.manifest,
    output:
        table=str(layout.per_arm_table(RESULTS, "{arm}")),
    log:
        str(layout.log_file(RESULTS, "evaluate", "{arm}")),
    benchmark:
        str(layout.benchmark_file(RESULTS, "evaluate", "{arm}"))
    conda:
        "../envs/pipeline.yaml"
    threads: config["evaluation"]["threads"]
    resources:
        gpu=optimize_resources(config)["gpu"],
    params:
        lpips_nets=config["evaluation"]["lpips_nets"],
        lpips_random_trunk=config["metric_networks"]["lpips_random_trunk"],
        batch_size=untracked(config["evaluation"]["batch_size"]),
        results=untracked(RESULTS),
        device=DEVICE,
    script:
        "../workflow_scripts/evaluate_dataset.py"


rule inception_features:
    input:
        unpack(feature_inputs),
    output:
        features=str(layout.features_file(RESULTS, "{name}")),
    log:
        str(layout.log_file(RESULTS, "features", "{name}")),
    benchmark:
        str(layout.benchmark_file(RESULTS, "features", "{name}"))
    wildcard_constraints:
        name=layout.one_of(["original", *ARMS]),
    conda:
        "../envs/pipeline.yaml"
    resources:
        gpu=optimize_resources(config)["gpu"],
    params:
        synthetic=config["metric_networks"]["inception_synthetic"],
        results=untracked(RESULTS),
        device=DEVICE,
    script:
        "../workflow_scripts/inception_features.py"


rule summarize_evaluation:
    input:
        tables=expand(rules.evaluate_dataset.output.table, arm=ARMS),
        features=feature_files(),
    output:
        cross=str(layout.evaluation_file(RESULTS, "cross")),
        stats=str(layout.evaluation_file(RESULTS, "stats")),
        performance=str(layout.evaluation_file(RESULTS, "performance")),
        table=str(layout.evaluation_file(RESULTS, "table")),
    log:
        str(layout.log_file(RESULTS, "summarize_evaluation")),
    benchmark:
        str(layout.benchmark_file(RESULTS, "summarize_evaluation"))
    conda:
        "../envs/pipeline.yaml"
    params:
        evaluation=tracked_evaluation(config["evaluation"]),
        settings=untracked(summary_settings(config).params()),
    script:
        "../workflow_scripts/summarize_evaluation.py"
