# Baseline (encode -> decode) and per-loss latent optimization: one GPU job per (arm, chunk),
# with one declared output pair per image.
for chunk in PLAN.chunks:

    rule:
        name:
            f"optimize_{chunk.name}"
        input:
            prepared=[
                str(layout.prepared_record(RESULTS, chunk.split, i))
                for i in chunk.image_ids
            ],
            gate=gate_input(chunk),
            model=model_inputs(),
        output:
            json=[
                str(layout.per_image(RESULTS, "{arm}", chunk.split, i, "json"))
                for i in chunk.image_ids
            ],
            pt=[
                str(layout.per_image(RESULTS, "{arm}", chunk.split, i, "pt"))
                for i in chunk.image_ids
            ],
        log:
            f"{RESULTS}/logs/optimize/{{arm}}/{chunk.name}.log",
        benchmark:
            f"{RESULTS}/benchmarks/optimize/{{arm}}/{chunk.name}.tsv"
        conda:
            "../envs/pipeline.yaml"
        resources:
            **optimize_resources(config),
        params:
            split=chunk.split,
            image_ids=chunk.image_ids,
            settings=arm_settings_param,
        script:
            "../workflow_scripts/optimize_images.py"
