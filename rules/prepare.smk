# Preprocessed originals (the evaluation reference), one job per chunk of images, whose one declared
# output is the chunk's manifest (its records and PNGs, checksummed; latentopt.workflow.chunks). The
# sources are params, not inputs: a name may hold characters Snakemake reads as wildcards, an entry may be a
# broken link, and a changed source is found by its checksum at planning (latentopt.workflow.integrity).
for chunk in PLAN.chunks:

    rule:
        name:
            f"prepare_{chunk.name}"
        output:
            manifest=str(layout.prepared_manifest(RESULTS, chunk.name)),
        log:
            str(layout.log_file(RESULTS, "prepare", chunk.name)),
        benchmark:
            str(layout.benchmark_file(RESULTS, "prepare", chunk.name))
        conda:
            "../envs/pipeline.yaml"
        params:
            split=chunk.split,
            image_ids=chunk.image_ids,
            sources=literal([str(e.path) for e in chunk.entries]),
            preprocess=config["preprocess"],
            results_dir=untracked(str(RESULTS)),
        script:
            "../workflow_scripts/prepare_images.py"
