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

A new method is one module with a subclass of :class:`latentopt.optimize.method.Method`, its class
in :data:`METHODS` below, and its name in the schema's ``method`` enum.
"""

from __future__ import annotations

from latentopt.optimize.backprop import Backprop
from latentopt.optimize.gradient_free import GradientFree
from latentopt.optimize.method import Method

METHODS: dict[str, type[Method]] = {cls.name: cls for cls in (Backprop, GradientFree)}


def method_class(name: str) -> type[Method]:
    """The method registered as ``name`` (its class: ``needs_grad`` without building it)."""
    try:
        return METHODS[name]
    except KeyError:
        raise ValueError(f"unknown method {name!r}; registered: {sorted(METHODS)}") from None


def build_method(name: str, **kwargs) -> Method:
    return method_class(name)(**kwargs)
