# Per-arm datasets (PyTorch file + PNG tree) assembled from the per-image outputs (listed by the
# arm's chunk manifests). The declared
# output is the manifest (written last): the dataset is built beside the previous one and swapped
# in, so a failed build never deletes a dataset that was complete (see latentopt.data.datasets).


rule build_dataset:
    input:
        chunks=chunk_manifests("{arm}"),
    output:
        manifest=str(layout.dataset_manifest(RESULTS, "{arm}")),
    log:
        str(layout.log_file(RESULTS, "build_dataset", "{arm}")),
    benchmark:
        str(layout.benchmark_file(RESULTS, "build_dataset", "{arm}"))
    conda:
        "../envs/pipeline.yaml"
    params:
        arm="{arm}",
        settings=arm_settings_param,
        pt=dataset_file_param,
        png=dataset_png_param,
        experiment_id=untracked(config["experiment_id"]),
        synthetic=untracked(OPTIMIZE_RUN["synthetic"]),
    script:
        "../workflow_scripts/build_dataset.py"
