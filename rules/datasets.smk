# Per-arm datasets (PyTorch file + PNG tree) assembled from the per-image outputs.


rule build_dataset:
    input:
        json=per_image_outputs("{arm}", "json"),
        pt=per_image_outputs("{arm}", "pt"),
    output:
        pt=f"{RESULTS}/{{arm}}_dataset/pytorch/bsds500_{{label}}.pt",
        png=directory(f"{RESULTS}/{{arm}}_dataset/png"),
    wildcard_constraints:
        label=r"baseline|optimized_[a-z0-9_]+",
    log:
        f"{RESULTS}/logs/build_dataset/{{arm}}_{{label}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/build_dataset/{{arm}}_{{label}}.tsv"
    params:
        settings=lambda wildcards: arm_settings(config, wildcards.arm),
    script:
        "../workflow_scripts/build_dataset.py"
