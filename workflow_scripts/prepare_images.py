"""Snakemake script: write the preprocessed originals of one chunk (see latentopt.data.prepare)."""

from pathlib import Path

from latentopt.core.joblog import job_log
from latentopt.data.prepare import prepare_chunk
from latentopt.workflow.sources import ImageEntry

sm = snakemake  # noqa: F821 - injected by Snakemake
with job_log(sm.log[0]) as log:
    entries = [ImageEntry(sm.params.split, i, Path(p)) for i, p in zip(sm.params.image_ids, sm.params.sources)]
    prepare_chunk(entries, sm.params.preprocess, sm.params.results_dir, manifest=sm.output.manifest, log=log)
