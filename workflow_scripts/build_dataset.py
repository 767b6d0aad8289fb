"""Snakemake script: assemble one arm's dataset (.pt + PNG tree + manifest) from the per-image outputs its chunk
manifests list."""

from pathlib import Path

from latentopt.core.joblog import job_log
from latentopt.data.datasets import build_dataset
from latentopt.workflow.chunks import listed

sm = snakemake  # noqa: F821 - injected by Snakemake
with job_log(sm.log[0]) as log:
    meta = build_dataset(
        sm.params.arm, [Path(p) for p in listed(sm.input.chunks, "json")], [Path(p) for p in listed(sm.input.chunks, "pt")],
        Path(sm.params.png), Path(sm.params.pt), manifest=Path(sm.output.manifest),
        settings=sm.params.settings, experiment_id=sm.params.experiment_id, synthetic=sm.params.synthetic,
    )
    log(f"{sm.params.arm}: {meta['n_ok']}/{meta['n_images']} images, {len(meta['failed'])} failed")
