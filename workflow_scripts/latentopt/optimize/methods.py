"""How a latent is updated: the optimization methods of ``losses.<arm>.method``, one interface.

Every method runs inside the same loop (:func:`latentopt.optimize.optimizer.optimize_latents`):
iteration t decodes the batch's latents z_t, evaluates the arm's loss on D(z_t) (the stopping rule,
best-latent selection, retry and records use it), then, unless the image stops, the method takes
one step with the loop's ``torch.optim.Adam`` (the same Adam state in checkpoints and when stopped
images leave the batch). A method says whether the loop must decode under autograd
(``needs_grad``) and puts the direction Adam follows into ``z.grad``:

* ``backprop`` (:mod:`latentopt.optimize.backprop`): the gradient of the summed loss,
  backpropagated through the decoder (fp16: dynamic gradient scaling);
* ``gradient_free`` (:mod:`latentopt.optimize.gradient_free`): the encoder-consistency residual
  E(D(z_t)) - z_0, forward passes only (Hong et al., NeurIPS 2024).

A new method is one module with a :class:`Method` subclass decorated with :func:`register`, and its
name in the schema's ``method`` enum.
"""

from __future__ import annotations

from typing import Callable, ClassVar

import torch


class Method:
    """One update rule. Built once per optimization run (:func:`build_method`)."""

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


METHODS: dict[str, type[Method]] = {}


def register(cls: type[Method]) -> type[Method]:
    METHODS[cls.name] = cls
    return cls


def method_class(name: str) -> type[Method]:
    """The method registered as ``name`` (its class: ``needs_grad`` without building it)."""
    try:
        return METHODS[name]
    except KeyError:
        raise ValueError(f"unknown method {name!r}; registered: {sorted(METHODS)}") from None


def build_method(name: str, **kwargs) -> Method:
    return method_class(name)(**kwargs)


from latentopt.optimize import backprop, gradient_free  # noqa: E402,F401  (they register themselves)
