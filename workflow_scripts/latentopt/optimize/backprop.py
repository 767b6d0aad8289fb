"""Method ``backprop``: Adam on the gradient of the arm's loss, backpropagated through the decoder.

The batch's objective is the SUM of the per-image losses, so each image's latent gets exactly the
gradient of its own loss (see :mod:`latentopt.optimize.optimizer`). With fp16's dynamic gradient
scaling (:meth:`latentopt.optimize.decoder_step.DecoderStep.grad_scaler`) the summed loss is scaled
before backward and a step whose gradient overflows is skipped for the whole batch.
"""

from __future__ import annotations

from latentopt.optimize.method import Method


class Backprop(Method):
    name = "backprop"
    needs_grad = True

    def step(self, opt, z, decoded, losses, *, z0, precision):
        opt.zero_grad(set_to_none=True)
        if self.grad_scaler is None:
            losses.sum().backward()
            opt.step()
        else:
            self.grad_scaler.scale(losses.sum()).backward()
            self.grad_scaler.step(opt)
            self.grad_scaler.update()
        return None
