# Per-arm datasets (PyTorch file + PNG tree) assembled from the per-image outputs. The declared
# output is the manifest (written last): the dataset is built beside the previous one and swapped
# in, so a failed build never deletes a dataset that was complete (see latentopt.data.datasets).
for arm in ARMS:

    rule:
        name:
            f"build_dataset_{arm}"
        input:
            json=per_image_outputs(arm, "json"),
            pt=per_image_outputs(arm, "pt"),
        output:
            manifest=str(layout.dataset_manifest(RESULTS, arm)),
        log:
            f"{RESULTS}/logs/build_dataset/{arm}.log",
        benchmark:
            f"{RESULTS}/benchmarks/build_dataset/{arm}.tsv"
        conda:
            "../envs/pipeline.yaml"
        params:
            arm=arm,
            settings=arm_settings(config, arm),
            pt=str(layout.dataset_file(RESULTS, arm)),
            png=str(layout.dataset_png_dir(RESULTS, arm)),
        script:
            "../workflow_scripts/build_dataset.py"
