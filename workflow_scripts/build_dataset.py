"""Snakemake script: assemble one arm's dataset (.pt + PNG tree + manifest) from its per-image outputs."""

from pathlib import Path

from latentopt.data.datasets import build_dataset
from latentopt.core.joblog import job_log

sm = snakemake  # noqa: F821 - injected by Snakemake
with job_log(sm.log[0]) as log:
    meta = build_dataset(
        sm.config, sm.params.arm, [Path(p) for p in sm.input.json], [Path(p) for p in sm.input.pt],
        Path(sm.params.png), Path(sm.params.pt), manifest=Path(sm.output.manifest),
    )
    log(f"{sm.params.arm}: {meta['n_ok']}/{meta['n_images']} images, {len(meta['failed'])} failed")
