# Baseline (encode -> decode) and per-loss latent optimization: one GPU job per (arm, chunk),
# whose one declared output is its chunk's manifest (the per-image .json/.pt it wrote, checksummed;
# latentopt.workflow.chunks): what Snakemake tracks grows with jobs, not images. Each job is handed what it uses as params, built once
# at parse time (its arm's settings: the rerun trigger and its fingerprint's input; the run's
# untracked values, rules/common.smk OPTIMIZE_RUN) and reads only its prepared records. Each also
# takes its arm's settings file as input (record_settings, below), through which a settings change
# reaches every job of the arm in one run. One rule per
# (arm, chunk), optimize_<chunk>_<arm> (latentopt.workflow.plan.optimize_rule_name): outputs
# without wildcards are found by Snakemake's output index at once, where an arm wildcard had
# every per-image file matched against every chunk's outputs (a 3-model study's dry run at 500
# images: 21 s before, 13 s after, with the plain-path inputs of rules/report.smk).
for arm in ARMS:
    for chunk in PLAN.chunks:

        rule:
            name:
                optimize_rule_name(chunk, arm)
            input:
                prepared=str(layout.prepared_manifest(RESULTS, chunk.name)),
                gate=gate_input(chunk, arm),
                settings=str(layout.arm_settings_file(RESULTS, arm)),
                model=model_inputs(),
            output:
                manifest=str(layout.chunk_manifest(RESULTS, arm, chunk.name)),
            log:
                str(layout.log_file(RESULTS, "optimize", f"{arm}/{chunk.name}")),
            benchmark:
                str(layout.benchmark_file(RESULTS, "optimize", f"{arm}/{chunk.name}"))
            conda:
                "../envs/pipeline.yaml"
            resources:
                **optimize_resources(config),
            params:
                arm=arm,
                split=chunk.split,
                image_ids=chunk.image_ids,
                settings=ARM_SETTINGS[arm],
                run=untracked(OPTIMIZE_RUN["run"]),
                lpips_random_trunk=untracked(OPTIMIZE_RUN["lpips_random_trunk"]),
                synthetic=untracked(OPTIMIZE_RUN["synthetic"]),
                results_dir=untracked(OPTIMIZE_RUN["results_dir"]),
            script:
                "../workflow_scripts/optimize_images.py"


rule record_settings:
    output:
        str(layout.arm_settings_file(RESULTS, "{arm}")),
    log:
        str(layout.log_file(RESULTS, "record_settings", "{arm}")),
    benchmark:
        str(layout.benchmark_file(RESULTS, "record_settings", "{arm}"))
    localrule: True
    conda:
        "../envs/pipeline.yaml"
    params:
        settings=arm_settings_param,
        results_dir=untracked(str(RESULTS)),
    script:
        "../workflow_scripts/record_settings.py"
