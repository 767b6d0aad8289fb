# Preprocessed originals (the evaluation reference), one job per chunk of images.
for chunk in PLAN.chunks:

    rule:
        name:
            f"prepare_{chunk.name}"
        input:
            [str(e.path) for e in chunk.entries],
        output:
            [
                str(layout.prepared_record(RESULTS, chunk.split, i))
                for i in chunk.image_ids
            ],
        log:
            f"{RESULTS}/logs/prepare/{chunk.name}.log",
        conda:
            "../envs/pipeline.yaml"
        params:
            split=chunk.split,
            image_ids=chunk.image_ids,
            preprocess=config["preprocess"],
        script:
            "../workflow_scripts/prepare_images.py"
