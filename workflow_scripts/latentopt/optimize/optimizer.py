"""Adam on VAE latents with per-image stopping, exact batching and resumable state.

The direction Adam follows is the arm's method (:mod:`latentopt.optimize.methods`): the loss's
gradient backpropagated through the decoder (backprop) or the encoder-consistency residual
E(D(z)) - z_0 (gradient_free, forward passes only; the loss is then the monitored objective). The
learning rate of step t follows the arm's schedule (:mod:`latentopt.optimize.schedules`). Both
methods share everything below: batching, stopping, best latent, checkpoints, retry.

For a batch of B images the objective is the SUM of the per-image losses. Adam's update is
element-wise and image i's loss depends only on latent i, so every image follows exactly the
trajectory it would follow alone (a MEAN would rescale gradients by 1/B and, through Adam's eps,
change the trajectory). An image that has stopped is removed from the batch together with its rows
of Adam's moment estimates; the others continue unchanged.

Iteration t evaluates the loss of the current latent z_t, then (unless the image stops) takes one
Adam step. ``loss_history[t]`` is the loss of z_t; ``loss_history[0]`` is the loss of the encoder's
latent z_0. The returned latent is the BEST one seen, not the last (except rule ``reference``).

Stopping rules (per image, checked after recording loss_t for t >= 1):
  relative:  improvement_t = (best_{t-1} - loss_t) / |best_{t-1}|; the image stops when
             improvement_t < threshold for ``patience`` consecutive iterations;
  absolute:  the reference implementation's |loss_t - loss_{t-1}| < threshold (patience 1 takes
             the same stop decision, but the best evaluated latent is returned);
  none:      run all iterations;
  reference: the original implementation's loop exactly (mdipcit/Generative-Latent-Optimization,
             ``LatentOptimizer.optimize``): at iteration i it evaluates loss_i of z_i, takes an Adam
             step, and stops when i > 0 and |loss_i - loss_{i-1}| < threshold (patience ignored) or
             after ``iterations`` steps. It returns the latent AFTER that last step (never evaluated
             in the loop), counts that step (steps = len(history)), and reports history[-1] (the
             loss of the latent before the last step) as its final loss. Bit-identical to a plain
             transcription of that loop at batch size 1 (tests/test_reference_mode.py); the job runs
             it at batch size 1 (batching is mathematically, not numerically, equal: see docs/configuration.md).

Non-convergence protocol (:func:`optimize_with_retry`): an image whose loss never went below its
initial loss, or became non-finite, is optimized again from z_0 with ``lr * retry.lr_factor`` and
``ceil(iterations * retry.iterations_factor)`` iterations; its track records the first attempt.
Not applied under rule ``reference`` (the original has no retry).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import torch

from latentopt.compute.precision import decode_precision, exact_fp32
from latentopt.optimize.methods import build_method
from latentopt.optimize.schedules import learning_rate
from latentopt.workflow.settings import AdamSettings, StopRule

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class ImageTrack:
    """Per-image optimization record."""

    z0: torch.Tensor
    best_z: torch.Tensor
    best_loss: float = math.inf
    history: list[float] = field(default_factory=list)
    stale: int = 0
    steps: int = 0
    converged_at: int | None = None
    stop_reason: str | None = None
    time_s: float = 0.0
    returned: str = "best"  # "best" evaluated latent, or "last" (after the final step; reference)
    retry: dict | None = None  # non-convergence protocol: why, the first attempt, retry settings
    residual: list[float] | None = None  # gradient_free: mean (E(D(z_t)) - z_0)**2 of each z_t a kept step left

    @property
    def final_loss(self) -> float | None:
        """The loss the run reports as final: the best loss, or (rule reference) the original's
        losses[-1], the loss of the latent before its last step."""
        if not self.history:
            return None
        return self.history[-1] if self.returned == "last" else self.best_loss

    def update(self, loss: float, z: torch.Tensor, stop: StopRule) -> bool:
        """Record loss of the current latent; return True when the image should stop."""
        previous_best = self.best_loss
        previous = self.history[-1] if self.history else None
        self.history.append(loss)
        if stop.rule == "reference":
            self.returned = "last"
            return previous is not None and abs(loss - previous) < stop.threshold
        if loss < self.best_loss:
            self.best_loss = loss
            self.best_z = z.detach().to("cpu", copy=True)
        if previous is None or stop.rule == "none":
            return False
        if stop.rule == "relative":
            improvement = (previous_best - loss) / max(abs(previous_best), 1e-12)
            small = improvement < stop.threshold
        else:
            small = abs(loss - previous) < stop.threshold
        self.stale = self.stale + 1 if small else 0
        return self.stale >= stop.patience

    def to_state(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    @classmethod
    def from_state(cls, state: dict) -> "ImageTrack":
        return cls(**state)


def at_rows(fn: Callable[..., torch.Tensor], rows: int | None) -> Callable[..., torch.Tensor]:
    """``fn`` computed on its tensor arguments padded to ``rows`` rows (copies of their first row,
    detached: no gradient flows back through them); the first rows of the result (as many as the
    arguments had) returned. The decoder, the loss and the encoder of the Adam loop run at one batch
    size whatever the batch holds: floating-point kernels choose
    their blocking by the batch size (the demo decoder rounds differently at 1 row than at 2 or
    more), so without it an image's numbers would depend on how many images share its job, its
    batch, or are still running."""
    if not rows:
        return fn

    def padded(*tensors: torch.Tensor) -> torch.Tensor:
        n = tensors[0].shape[0]
        if n >= rows:
            return fn(*tensors)
        return fn(*(torch.cat([t, t[:1].detach().expand(rows - n, *t.shape[1:])]) for t in tensors))[:n]

    return padded


def _shrink_adam(opt: torch.optim.Adam, z: torch.Tensor, keep: list[int], settings: AdamSettings):
    """A new latent tensor and Adam holding only rows ``keep``, moments carried over exactly."""
    old_state = opt.state[z]
    new_z = z.detach()[keep].clone().requires_grad_(True)
    new_opt = torch.optim.Adam([new_z], lr=settings.lr, betas=settings.betas, eps=settings.eps)
    if old_state:
        new_opt.state[new_z] = {
            "step": old_state["step"].clone(),
            "exp_avg": old_state["exp_avg"][keep].clone(),
            "exp_avg_sq": old_state["exp_avg_sq"][keep].clone(),
        }
    return new_z, new_opt


def optimize_latents(
    decode: Callable[[torch.Tensor], torch.Tensor],
    targets: torch.Tensor,
    z0: torch.Tensor,
    loss_fn: LossFn,
    settings: AdamSettings,
    *,
    region: tuple[slice, slice] = (slice(None), slice(None)),
    precision: str | Callable[[int], str] = "fp32",
    grad_scaler: torch.amp.GradScaler | None = None,
    resume: dict | None = None,
    on_checkpoint: Callable[[dict], None] | None = None,
    time_limit_s: float | None = None,
    on_step: Callable[[int, int], None] | None = None,
    encode: Callable[[torch.Tensor], torch.Tensor] | None = None,
    rows: int | None = None,
) -> list[ImageTrack]:
    """Optimize a batch of latents; return one ImageTrack per image (in input order).

    targets: [B,3,H,W] in [0,1]; the loss compares ``decode(z)`` and ``targets`` on ``region``.
    resume: a state previously passed to ``on_checkpoint``; the run continues exactly from it.
    time_limit_s: wall-time budget for the batch (earlier attempts' time included); when spent,
    the images still running stop with reason "timeout".
    precision: the decoder's math (:func:`decode_precision`), or a function of the iteration
    returning it (a precision schedule, :mod:`latentopt.optimize.decoder_step`).
    grad_scaler: scales the summed loss before backward (fp16, method backprop); a step whose
    gradient overflows is skipped for the whole batch.
    encode: the encoder (method gradient_free: the residual E(D(z)) - z0 of each image's own z0).
    rows: the batch size every decode, loss and encode of the loop runs at (:func:`at_rows`): an
    image's result then depends on it, not on the images beside it.
    """
    decode, loss_fn = at_rows(decode, rows), at_rows(loss_fn, rows)
    encode = at_rows(encode, rows) if encode is not None else None
    device = z0.device
    n = z0.shape[0]
    rows, cols = region
    target_region = targets[:, :, rows, cols].float()
    if resume is None:
        tracks = [
            ImageTrack(z0=z0[i].detach().cpu().clone(), best_z=z0[i].detach().cpu().clone())
            for i in range(n)
        ]
        active = list(range(n))
        z = z0.detach().clone().float().requires_grad_(True)
        opt = torch.optim.Adam([z], lr=settings.lr, betas=settings.betas, eps=settings.eps)
        it, elapsed_before = 0, 0.0
    else:
        tracks = [ImageTrack.from_state(s) for s in resume["tracks"]]
        active = list(resume["active"])
        z = resume["z"].to(device).requires_grad_(True)
        opt = torch.optim.Adam([z], lr=settings.lr, betas=settings.betas, eps=settings.eps)
        if resume["adam"]:
            opt.state[z] = {k: v.to(device) for k, v in resume["adam"].items()}
        if grad_scaler is not None and resume.get("grad_scaler"):
            grad_scaler.load_state_dict(resume["grad_scaler"])
        it, elapsed_before = resume["iteration"], resume["elapsed_s"]
    start = time.perf_counter()
    method = build_method(settings.method, encode=encode, grad_scaler=grad_scaler)
    schedule = learning_rate(settings.schedule)

    def anchors() -> torch.Tensor:  # the active images' z_0 (what gradient_free's residual compares with)
        return torch.stack([tracks[i].z0 for i in active]).to(device).float()

    z0_active = anchors()

    def snapshot(next_iteration: int) -> dict:
        state = opt.state[z]
        return {
            "iteration": next_iteration,
            "active": list(active),
            "z": z.detach().cpu().clone(),
            "adam": {k: v.detach().cpu().clone() for k, v in state.items()} if state else {},
            "tracks": [t.to_state() for t in tracks],
            "elapsed_s": elapsed_before + time.perf_counter() - start,
            "grad_scaler": grad_scaler.state_dict() if grad_scaler is not None else None,
        }

    reference = settings.reference
    while active:
        step_start = time.perf_counter()
        final = it >= settings.iterations and not reference
        precision_now = precision(it) if callable(precision) else precision
        with torch.set_grad_enabled(method.needs_grad and not final):
            with decode_precision(precision_now, device):
                decoded = decode(z)
            with exact_fp32():
                losses = loss_fn(decoded[:, :, rows, cols].float(), target_region[active])
        values = losses.detach().float().cpu().tolist()
        stopping = []
        for j, idx in enumerate(active):
            if tracks[idx].update(values[j], z[j], settings.stopping):
                tracks[idx].converged_at = it
                tracks[idx].stop_reason = "converged"
                stopping.append(j)
        if not final:
            for group in opt.param_groups:
                group["lr"] = schedule(it, lr=settings.lr, iterations=settings.iterations,
                                       warmup_fraction=settings.warmup_fraction)
            diagnostic = method.step(opt, z, decoded, losses, z0=z0_active,
                                     precision=lambda: decode_precision(precision_now, device))
            if diagnostic is not None:
                for j, idx in enumerate(active):
                    tracks[idx].residual = (tracks[idx].residual or []) + [diagnostic[j]]
        step_time = time.perf_counter() - step_start
        for idx in active:
            tracks[idx].time_s += step_time / len(active)
            if not final:
                tracks[idx].steps += 1
        if reference:
            # the original returns the latent after the step just taken, and counts that step
            last = it + 1 >= settings.iterations
            for j, idx in enumerate(active):
                if j in stopping or last:
                    tracks[idx].best_z = z[j].detach().to("cpu", copy=True)
            if last:
                for idx in active:
                    tracks[idx].stop_reason = tracks[idx].stop_reason or "max_iterations"
                break
        if final:
            for idx in active:
                tracks[idx].stop_reason = tracks[idx].stop_reason or "max_iterations"
            break
        # Images that stopped at z_it did not need the step just taken: drop their rows.
        it += 1
        if stopping:
            if not reference:
                for j in stopping:
                    tracks[active[j]].steps -= 1
                    if tracks[active[j]].residual:  # the residual of z_it, whose step is not kept
                        tracks[active[j]].residual.pop()
            keep = [j for j in range(len(active)) if j not in stopping]
            active = [active[j] for j in keep]
            if not active:
                break
            z, opt = _shrink_adam(opt, z, keep, settings)
            z0_active = anchors()
        if on_step is not None:
            on_step(it, len(active))
        elapsed = elapsed_before + time.perf_counter() - start
        if time_limit_s is not None and elapsed > time_limit_s:
            for j, idx in enumerate(active):
                tracks[idx].stop_reason = "timeout"
                if reference:
                    tracks[idx].best_z = z[j].detach().to("cpu", copy=True)
            break
        if on_checkpoint is not None and it % settings.checkpoint_interval == 0:
            on_checkpoint(snapshot(it))
    return tracks


def non_convergence(track: ImageTrack) -> str | None:
    """Why an image needs the non-convergence protocol, or None: its loss became non-finite, or no
    evaluated latent had a lower loss than z_0 (the returned latent is then z_0 itself)."""
    if not track.history or track.stop_reason == "timeout":
        return None
    if not all(math.isfinite(v) for v in track.history):
        return "non-finite loss"
    if track.returned == "best" and not track.best_loss < track.history[0]:
        return "loss did not improve"
    return None


def optimize_with_retry(decode, targets, z0, loss_fn, settings: AdamSettings, *, log=print, retry_on_step=None,
                        **kwargs) -> list[ImageTrack]:
    """:func:`optimize_latents`, then the non-convergence protocol: images that did not improve
    (or became non-finite) are optimized again from z_0 with :meth:`AdamSettings.for_retry`. The
    retry keeps no checkpoints (a job killed during it redoes it). Its track replaces the first
    one and records the first attempt under ``retry``. Not under rule ``reference``.
    ``retry_on_step(iterations, indices)``: the ``on_step`` of the retry (its own number of
    iterations, the retried images' indices in the batch); without it the retry keeps ``on_step``."""
    tracks = optimize_latents(decode, targets, z0, loss_fn, settings, **kwargs)
    if settings.reference or not settings.retry.enabled:
        return tracks
    todo = [i for i, t in enumerate(tracks) if non_convergence(t)]
    if not todo:
        return tracks
    again = settings.for_retry()
    log(f"non-convergence protocol: {len(todo)} image(s) retried with lr {again.lr:g} "
        f"(x{settings.retry.lr_factor:g}) and {again.iterations} iterations (x{settings.retry.iterations_factor:g})")
    kwargs = {k: v for k, v in kwargs.items() if k not in ("resume", "on_checkpoint")}
    if retry_on_step is not None:
        kwargs["on_step"] = retry_on_step(again.iterations, todo)
    retried = optimize_latents(decode, targets[todo], z0[todo], loss_fn, again, **kwargs)
    for i, new in zip(todo, retried):
        first = tracks[i]
        new.time_s += first.time_s
        new.retry = {
            "reason": non_convergence(first),
            "first_attempt": {
                "lr": settings.lr,
                "iterations": settings.iterations,
                "steps": first.steps,
                "stop_reason": first.stop_reason,
                "initial_loss": first.history[0],  # non-finite values: null in the JSON record
                "best_loss": first.best_loss,
                "last_loss": first.history[-1],
            },
            "lr": again.lr,
            "iterations": again.iterations,
            "outcome": non_convergence(new) or "improved",
        }
        tracks[i] = new
    return tracks
