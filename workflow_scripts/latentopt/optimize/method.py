"""The interface of an optimization method (:mod:`latentopt.optimize.methods` lists them)."""

from __future__ import annotations

from typing import Callable, ClassVar

import torch


class Method:
    """One update rule. Built once per optimization run
    (:func:`latentopt.optimize.methods.build_method`)."""

    name: ClassVar[str]
    needs_grad: ClassVar[bool]  # decode z_t under autograd (the loss's backward is the direction)

    def __init__(self, *, encode: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 grad_scaler: torch.amp.GradScaler | None = None):
        self.encode = encode
        self.grad_scaler = grad_scaler

    def step(self, opt: torch.optim.Adam, z: torch.Tensor, decoded: torch.Tensor, losses: torch.Tensor, *,
             z0: torch.Tensor, precision) -> list[float] | None:
        """One Adam step of the rows of ``z`` (the active images): ``decoded`` = D(z) under the
        loop's decoder precision ``precision`` (a context manager factory), ``losses`` their
        per-image losses, ``z0`` their encoder latents. Returns a per-image diagnostic recorded in
        the track (``residual``), or None."""
        raise NotImplementedError
