"""How the decoder runs inside the Adam loop: precision, precision schedule, gradient scaling and
torch.compile. Opt-in speed-ups; the defaults reproduce the plain eager step exactly.

Settings (``run.*`` in the config; see docs/configuration.md):

* ``precision`` -- fp32, tf32, bf16 or fp16 (:func:`latentopt.compute.precision.decode_precision`).
  fp16 (10 mantissa bits, against bf16's 7) is autocast with **dynamic gradient scaling**
  (``torch.amp.GradScaler``): the summed loss is multiplied by the scale before backward so the
  latent's small gradients survive fp16's range; a step whose gradient overflows is skipped and the
  scale halved (initial scale 2**10, see FP16_INIT_SCALE). The skip is for the whole batch, so in
  fp16 a batch is no longer exactly the same as its images run one by one.
* ``final_precision_steps`` K and ``final_precision`` -- a precision schedule: Adam iterations
  ``t >= iterations - K`` and the final evaluation of the last latent run the decoder in
  ``final_precision`` (fp32 or tf32) instead of ``precision``: reduced precision for most steps,
  the last ones exact enough to settle the result. An image that stops early (stopping rule) may
  never reach them. K = 0 (default): no schedule.
* ``compile.enabled`` -- ``torch.compile(decode, dynamic=False, mode=compile.mode)`` for the steps
  that need gradients, i.e. decoder forward **and** backward (AOTAutograd compiles the backward
  graph too). Inductor fuses each GroupNorm's normalisation with the SiLU after it (and the
  residual adds) into generated kernels, forward and backward: that is this project's "fused
  GroupNorm+SiLU"; there is no hand-written kernel. Details:

  - compiled once per process and model (:func:`compiled_decode` keeps it); ``dynamic=False``
    specialises on shapes, so every batch is **padded** with zero latents to ``run.batch_size``
    (the last, smaller batch of a job and images that stop early keep full-size batches; padded
    rows get no gradient and do not change the real rows, since the decoder treats each image
    independently; an out-of-memory retry pads to its halved size). Shapes compiled: one per
    (image shape, decoder precision), e.g. landscape and portrait BSDS500 images;
  - the forward-only final evaluation of the last latent runs eager (an inference graph would be
    one more compilation);
  - Inductor's on-disk caches (FX graph + AOTAutograd) live in ``compile.cache_dir`` (default
    ``<results_dir>/.inductor_cache``; an already set ``TORCHINDUCTOR_CACHE_DIR`` wins), shared by
    every job, so only the first job on a machine pays the code generation; later jobs still trace
    the model (seconds);
  - ``compile.mode`` "reduce-overhead" adds CUDA graphs (fixed shapes, which the padding gives).

The compiled decoder computes the same function with differently ordered floating-point
operations: results differ from eager in the last bits (measured in tests and in the benchmark);
the published decode and metrics stay exact-fp32 eager (:mod:`latentopt.optimize.exact`).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch

from latentopt.compute.precision import decode_precision
from latentopt.workflow.settings import DecoderNumerics

# GradScaler's default initial scale (2**16) overflowed the first steps of a 6-step TAEF2 run
# (psnr loss, 32x48, CPU): 3 of 6 Adam steps skipped while the scale halved to 8192; with 2**10
# none was skipped and the losses followed fp32 within 0.02 dB. Every skipped step is an
# iteration lost from a 50-iteration budget, so start low; the scaler still halves on overflow.
FP16_INIT_SCALE = 2.0**10
RECOMPILE_LIMIT = 64  # shapes x precisions a job may compile before dynamo falls back to eager


@dataclass(frozen=True)
class DecoderStep(DecoderNumerics):
    """The decoder numerics (:class:`latentopt.workflow.settings.DecoderNumerics`: fields, checks,
    ``from_config`` and ``of``) with the torch side that runs them."""

    @classmethod
    def from_numerics(cls, numerics: DecoderNumerics) -> "DecoderStep":
        return cls(**asdict(numerics))

    def schedule(self, iterations: int) -> str | Callable[[int], str]:
        """The ``precision`` argument of :func:`latentopt.optimize.optimizer.optimize_latents`: a plain
        name without a schedule, else iteration -> name."""
        if not self.final_precision_steps:
            return self.precision
        switch = iterations - self.final_precision_steps
        main, last = self.precision, self.final_precision
        return lambda it: last if it >= switch else main

    def grad_scaler(self, device: torch.device) -> torch.amp.GradScaler | None:
        """Dynamic loss scaling for fp16 (initial scale FP16_INIT_SCALE); None otherwise."""
        return torch.amp.GradScaler(device.type, init_scale=FP16_INIT_SCALE) if self.precision == "fp16" else None

    def warm_up(self, model, z0: torch.Tensor, iterations: int, batch_size: int | None = None) -> bool:
        """Compile the decoder for ``z0``'s batch (padded to ``batch_size``) before the Adam loop, so that the
        compilation is not counted as optimization time: one forward+backward on a copy of ``z0``
        under each precision of the schedule, once per process, model, shape and precision.
        Returns False when nothing is compiled (compile off)."""
        if not self.compile:
            return False
        schedule = self.schedule(iterations)
        precisions = {schedule} if isinstance(schedule, str) else {schedule(0), schedule(iterations)}
        rows = max(z0.shape[0], batch_size or 0)
        decode = self.decode(model, rows)
        for precision in sorted(precisions):
            key = (id(model), self.compile_mode, rows, tuple(z0.shape[1:]), str(z0.device), precision)
            if key in _WARM:
                continue
            z = z0.detach().clone().requires_grad_(True)
            with torch.enable_grad(), decode_precision(precision, z0.device):
                decode(z).float().sum().backward()
            _WARM.add(key)
        return True

    def decode(self, model, batch_size: int) -> Callable[[torch.Tensor], torch.Tensor]:
        """The decoder the Adam loop calls; compiled, it pads every batch to ``batch_size`` rows."""
        if not self.compile:
            return model.decode
        return padded(compiled_decode(model, self.compile_mode, self.cache_dir), model.decode, batch_size)


_COMPILED: dict[tuple[int, str], Callable] = {}
_WARM: set[tuple] = set()


def use_inductor_cache(cache_dir: str | None) -> str:
    """Point Inductor's on-disk caches at ``cache_dir`` unless TORCHINDUCTOR_CACHE_DIR is already
    set; return the folder in use. Must run before the first compilation of the process."""
    if cache_dir and not os.environ.get("TORCHINDUCTOR_CACHE_DIR"):
        Path(cache_dir).mkdir(parents=True, exist_ok=True)
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(Path(cache_dir).absolute())
    return os.environ.get("TORCHINDUCTOR_CACHE_DIR", "")


def clear_compiled() -> None:
    """Forget the compiled decoders of this process (the models they hold can be freed)."""
    _COMPILED.clear()
    _WARM.clear()


def compiled_decode(model, mode: str, cache_dir: str | None) -> Callable:
    """``torch.compile(model.decode, dynamic=False, mode=mode)``, built once per process and model."""
    key = (id(model), mode)
    if key not in _COMPILED:
        use_inductor_cache(cache_dir)
        # dynamo's (private) config, imported only here where it is changed, after the cache folder is set
        import torch._dynamo.config as dynamo_config

        name = "recompile_limit" if hasattr(dynamo_config, "recompile_limit") else "cache_size_limit"  # older torch
        setattr(dynamo_config, name, max(getattr(dynamo_config, name), RECOMPILE_LIMIT))
        _COMPILED[key] = torch.compile(model.decode, dynamic=False, mode=mode)
    return _COMPILED[key]


def padded(compiled: Callable, eager: Callable, batch_size: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """``compiled`` on ``z`` padded with zero latents to ``batch_size`` rows when gradients are
    needed (one shape per batch); ``eager`` for forward-only calls."""

    def decode(z: torch.Tensor) -> torch.Tensor:
        if not torch.is_grad_enabled():
            return eager(z)
        n = z.shape[0]
        if n < batch_size:
            z = torch.cat([z, z.new_zeros((batch_size - n, *z.shape[1:]))])
        return compiled(z)[:n]

    return decode
