"""Snakemake script: train the demo autoencoder (model.kind demo_trained) and write its files."""

from pathlib import Path

from latentopt.models.demo_model import TrainSettings, save, train
from latentopt.core.joblog import job_log

sm = snakemake  # noqa: F821 - injected by Snakemake
with job_log(sm.log[0]) as log:
    net, summary = train(TrainSettings(**sm.params.settings), log=log)
    weights, js = save(net, summary, Path(sm.output.weights).parent)
    log(f"wrote {weights} and {js}: {summary['description']}")
