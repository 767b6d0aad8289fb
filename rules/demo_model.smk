# The demo's own tiny autoencoder (model.kind demo_trained): trained on the CPU before the
# optimization jobs, which take it as an input; a second run reuses it.


rule train_demo_model:
    output:
        weights=str(demo_model_weights(config)),
        summary=str(demo_model_summary(config)),
    log:
        str(layout.log_file(RESULTS, "train_demo_model")),
    benchmark:
        str(layout.benchmark_file(RESULTS, "train_demo_model"))
    conda:
        "../envs/pipeline.yaml"
    threads: 1
    params:
        settings=asdict(demo_model_settings(config)),
    script:
        "../workflow_scripts/train_demo_model.py"
