"""Counted work of an optimization job, per image: FLOPs (:mod:`latentopt.compute.flops`) of the
passes one image goes through, counted once per job and image shape, times how often each ran.

Passes, each counted for ONE image of the job's shape (the cost of a convolution is linear in the
batch, so a batch of B costs B times this; the zero rows a compiled decoder pads a batch with are
padding, not work, and not counted):

* ``encode``: E(x), the encoder's latent z_0 (every arm, the baseline included);
* ``decode``: D(z), the published decode of the returned latent (every arm);
* ``evaluation``: one loop evaluation without a step: D(z_t) and the arm's loss on it;
* ``iteration``: one loop iteration with its step, as the method runs it. backprop: D(z_t) under
  autograd, the loss, and the backward through loss network and decoder to the latent (frozen
  weights: no weight gradients). gradient_free: D(z_t), the loss (the monitored objective) and
  E(D(z_t)) (no backward).

Per image: ``encode + decode + steps_run * iteration + evaluations_only * evaluation``, where
steps_run counts every evaluation a step was computed from (a step the loop computed for an image
that then stopped on that evaluation is counted: it was run) and evaluations_only the rest (the
final evaluation of the last latent of a run that used all its iterations). A non-convergence
retry adds its first attempt's steps and evaluations. The baseline is ``encode + decode``. The
job's decode of z_0 for the initial metrics is measurement, not method, and is not counted.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from latentopt.compute.flops import COUNTER, TERA, count_flops


@dataclass(frozen=True)
class PassFlops:
    """FLOPs of each pass for one image of one shape."""

    encode: int
    decode: int
    evaluation: int | None  # None: the baseline (no loop)
    iteration: int | None

    @classmethod
    def count(cls, model, loss_fn, needs_grad: bool | None, shape: tuple[int, ...], region: tuple[slice, slice],
              device: torch.device) -> "PassFlops":
        """Count the passes on zero/constant tensors of one image of ``shape`` ([C, H, W], the
        model input); ``loss_fn`` None and ``needs_grad`` None: the baseline."""
        x = torch.full((1, *shape), 0.5, device=device)
        with torch.no_grad():
            z = model.encode(x).float()
        encode = count_flops(lambda: _no_grad(model.encode, x))
        decode = count_flops(lambda: _no_grad(model.decode, z))
        if loss_fn is None:
            return cls(encode, decode, None, None)
        rows, cols = region
        target = x[:, :, rows, cols].float()

        def evaluate(latent):
            return loss_fn(model.decode(latent)[:, :, rows, cols].float(), target)

        evaluation = count_flops(lambda: _no_grad(evaluate, z))
        if needs_grad:
            def step():
                latent = z.detach().clone().requires_grad_(True)
                with torch.enable_grad():
                    evaluate(latent).sum().backward()
            iteration = count_flops(step)
        else:
            def step():
                with torch.no_grad():
                    decoded = model.decode(z)
                    loss_fn(decoded[:, :, rows, cols].float(), target)
                    model.encode(decoded)
            iteration = count_flops(step)
        return cls(encode, decode, evaluation, iteration)


def _no_grad(fn, *args):
    with torch.no_grad():
        return fn(*args)


def _loop_counts(steps: int, evaluations: int, stop_reason: str | None, reference: bool) -> tuple[int, int]:
    """(steps run, evaluations without a step) of one attempt: a converged image's last evaluation
    had its step computed (then dropped) except under rule reference, which keeps that step."""
    run = steps + (1 if stop_reason == "converged" and not reference else 0)
    return run, max(evaluations - run, 0)


def image_work(passes: PassFlops, track=None, reference: bool = False) -> dict:
    """The counted work of one image (module docstring) from its optimizer track (None: baseline)."""
    flops = passes.encode + passes.decode
    steps_run = evaluations_only = 0
    if track is not None and passes.iteration is not None:
        steps_run, evaluations_only = _loop_counts(track.steps, len(track.history), track.stop_reason, reference)
        first = (track.retry or {}).get("first_attempt")
        if first:  # the first attempt's evaluations: one per step and the final one, unless it timed out
            evals = first["steps"] + (0 if first["stop_reason"] == "timeout" else 1)
            run, only = _loop_counts(first["steps"], evals, first["stop_reason"], reference)
            steps_run, evaluations_only = steps_run + run, evaluations_only + only
        flops += steps_run * passes.iteration + evaluations_only * passes.evaluation
    return {
        "tflop": flops / TERA,
        "tflop_per_iteration": None if passes.iteration is None else passes.iteration / TERA,
        "steps_counted": steps_run,
        "evaluations_counted": evaluations_only,
        "passes_tflop": {k: (None if v is None else v / TERA) for k, v in asdict(passes).items()},
        "counter": COUNTER,
    }


class WorkCounter:
    """The job's passes, counted once per (image shape, region) on first use."""

    def __init__(self, model, loss_fn, needs_grad: bool | None, device: torch.device):
        self.model, self.loss_fn, self.needs_grad, self.device = model, loss_fn, needs_grad, device
        self._passes: dict[tuple, PassFlops] = {}

    def passes(self, shape: tuple[int, ...], region: tuple[slice, slice]) -> PassFlops:
        key = (tuple(shape), tuple((s.start, s.stop) for s in region))
        if key not in self._passes:
            self._passes[key] = PassFlops.count(self.model, self.loss_fn, self.needs_grad, tuple(shape), region, self.device)
        return self._passes[key]
