"""What an optimization job computes with beyond its images, built once on its device: the
autoencoder, the loss, the per-image metric networks, the checkpoint store and the fingerprint."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from latentopt.core.fileio import as_json, sha256_json
from latentopt.core.stage_times import StageClock
from latentopt.metrics.lpips_network import lpips_network
from latentopt.models import autoencoders
from latentopt.optimize.checkpoints import CheckpointStore
from latentopt.optimize.decoder_step import DecoderStep
from latentopt.optimize.losses import build_loss
from latentopt.optimize.methods import method_class
from latentopt.optimize.work import WorkCounter
from latentopt.workflow import layout
from latentopt.workflow.settings import AdamSettings, ArmSettings, RunSettings


@dataclass
class JobContext:
    """What a job needs beyond the images; built once per job (:func:`build_context`)."""

    arm: str
    arm_settings: ArmSettings
    run: RunSettings
    step: DecoderStep
    model: torch.nn.Module
    device: torch.device
    loss_fn: Callable | None
    metric_nets: dict
    store: CheckpointStore | None
    fingerprint: str
    log: Callable[[str], None] = print
    cpu_model_factory: Callable[[], tuple] | None = None
    clock: StageClock | None = None  # where the job's wall time goes (stage_times)
    synthetic: tuple[str, ...] = ()  # what every record says is random or demo-only
    work: WorkCounter | None = None  # counted FLOPs of the job's passes, once per image shape

    def stage(self, name: str):
        return self.clock.stage(name) if self.clock is not None else contextlib.nullcontext()

    @property
    def settings(self) -> AdamSettings | None:
        """The arm's Adam settings (None for the baseline)."""
        return self.arm_settings.adam


def job_fingerprint(settings: dict, weights_sha256: str, results_dir: str | Path | None = None) -> str:
    """``settings``: :meth:`ArmSettings.params` (the rule's ``settings`` param), with paths under
    ``results_dir`` made relative to it (latentopt.workflow.layout.portable: a copied or moved results
    folder keeps its fingerprints, so its jobs restore their finished images); the weights are
    identified by their sha256."""
    settings = layout.portable(as_json(settings), str(results_dir)) if results_dir else settings
    return sha256_json({"settings": settings, "weights": weights_sha256})


def build_context(settings: ArmSettings, run: RunSettings, device: str, *, checkpoints: str | Path | None,
                  lpips_random_trunk: bool, log=print, model=None, synthetic=(), results_dir: str | Path | None = None) -> JobContext:
    """Everything a job computes with, on ``device``: ``model``, the autoencoder already loaded (on
    the CPU), moved instead of loaded again; ``checkpoints``, the folder of the job's checkpoints
    (None: none kept; the baseline keeps none either); ``lpips_random_trunk``: the per-image LPIPS
    network's trunk is random (``metric_networks.lpips_random_trunk``)."""

    def make(dev: torch.device, model=None):
        model = model.to(dev) if model is not None else autoencoders.load_autoencoder(settings.model, device=dev)
        if settings.channels_last:
            model = model.to(memory_format=torch.channels_last)
        loss_fn = None if settings.is_baseline else build_loss(settings.loss, device=dev)
        nets = {}
        try:
            nets["alex"] = lpips_network("alex", random_trunk=lpips_random_trunk, device=dev)
        except FileNotFoundError as exc:
            log(f"LPIPS not recorded per image: {exc}")
        return model, loss_fn, nets

    dev = torch.device(device)
    model, loss_fn, nets = make(dev, model)
    fingerprint = job_fingerprint(settings.params(), model.info["weights_sha256"], results_dir)
    store = None if settings.is_baseline or checkpoints is None else CheckpointStore(checkpoints, fingerprint)
    needs_grad = None if settings.is_baseline else method_class(settings.adam.method).needs_grad
    return JobContext(settings.arm, settings, run, DecoderStep.from_numerics(settings.numerics), model, dev, loss_fn,
                      nets, store, fingerprint, log, lambda: make(torch.device("cpu")), synthetic=tuple(synthetic),
                      work=WorkCounter(model, loss_fn, needs_grad, dev))
