# Baseline (encode -> decode) and per-loss latent optimization: one GPU job per (arm, chunk),
# with one declared output pair per image. Each reads its arm's settings file (record_settings,
# below), through which a settings change reaches every job of the arm in one run. One rule per
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
                prepared=[
                    str(layout.prepared_record(RESULTS, chunk.split, i))
                    for i in chunk.image_ids
                ],
                gate=gate_input(chunk, arm),
                settings=str(layout.arm_settings_file(RESULTS, arm)),
                model=model_inputs(),
            output:
                json=[
                    str(layout.per_image(RESULTS, arm, chunk.split, i, "json"))
                    for i in chunk.image_ids
                ],
                pt=[
                    str(layout.per_image(RESULTS, arm, chunk.split, i, "pt"))
                    for i in chunk.image_ids
                ],
            log:
                f"{RESULTS}/logs/optimize/{arm}/{chunk.name}.log",
            benchmark:
                f"{RESULTS}/benchmarks/optimize/{arm}/{chunk.name}.tsv"
            conda:
                "../envs/pipeline.yaml"
            resources:
                **optimize_resources(config),
            params:
                arm=arm,
                split=chunk.split,
                image_ids=chunk.image_ids,
                settings=ARM_SETTINGS[arm],
            script:
                "../workflow_scripts/optimize_images.py"


rule record_settings:
    output:
        str(layout.arm_settings_file(RESULTS, "{arm}")),
    log:
        f"{RESULTS}/logs/record_settings/{{arm}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/record_settings/{{arm}}.tsv"
    localrule: True
    conda:
        "../envs/pipeline.yaml"
    params:
        settings=arm_settings_param,
    script:
        "../workflow_scripts/record_settings.py"
