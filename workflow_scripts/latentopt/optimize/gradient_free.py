"""Method ``gradient_free``: gradient-free decoder inversion (Hong et al., "Gradient-free decoder
inversion in latent diffusion models", NeurIPS 2024; smhongok/dec-inv, ``decoder_inv_nograd`` in
src/stable_diffusion/inverse_stable_diffusion.py).

The published routine, under ``torch.inference_mode()``::

    z0 = E(x); z = z0.clone(); m = v = 0
    for i in range(num_steps):
        grad = E(D(z)) - z0                       # the encoder-consistency residual
        m = b1*m + (1-b1)*grad; v = b2*v + (1-b2)*grad**2
        z -= lr_i * (m / (1-b1**(i+1))) / (sqrt(v / (1-b2**(i+1))) + eps)

with lr 0.01, betas (0.9, 0.999), eps 1e-4 in its all-fp16 run (1e-8 in fp32) and a cosine schedule
with 10 % warm-up. The target is z0 = E(x), the encoder's latent of the image, which is also the
starting point: here the job's exact-fp32 z_0 (the baseline's latent). Here:

* the step is the loop's ``torch.optim.Adam`` with the residual as ``z.grad`` (the same update,
  summed in another order: agreement to float rounding, tests/test_methods.py), so stopped images
  leave the batch and checkpoints resume exactly as for backprop. The residual of image i depends
  on latent i alone, so a batch follows each image's solo trajectory;
* no autograd: D(z_t) is the loop's forward pass (the same decode evaluates the monitored loss)
  and E(D(z_t)) runs under ``torch.no_grad`` in the loop's decoder precision (``run.precision``;
  the latent and Adam's moments stay fp32, so fp16 needs no larger eps, unlike dec-inv's fp16
  tensors, and no gradient scaling);
* D is this project's decode, clamped to [0, 1] (dec-inv encodes the unclamped decoder output),
  and E is the deterministic encoder (dec-inv's ``get_image_latents`` draws a posterior sample,
  for z0 and for every E(D(z)); the TAE encoders have no posterior);
* the arm's loss does not steer the update: it is the monitored objective (stopping rule,
  best-latent selection, retry, records), where dec-inv runs a fixed number of steps and returns
  the last latent (``stopping.rule: none`` and the loss's best latent is the closest setting).

Per image the track records ``residual``: mean((E(D(z_t)) - z0)**2) of every latent z_t a step
was taken from.
"""

from __future__ import annotations

import torch

from latentopt.optimize.method import Method


def residual(encode, decoded: torch.Tensor, z0: torch.Tensor) -> torch.Tensor:
    """E(D(z)) - z0 (fp32), without autograd."""
    with torch.no_grad():
        return encode(decoded).float() - z0


class GradientFree(Method):
    name = "gradient_free"
    needs_grad = False

    def step(self, opt, z, decoded, losses, *, z0, precision):
        if self.encode is None:
            raise ValueError("method gradient_free needs the encoder (optimize_latents(..., encode=model.encode))")
        with precision():
            r = residual(self.encode, decoded, z0)
        with torch.no_grad():
            z.grad = r
            opt.step()
            z.grad = None
        return r.pow(2).flatten(1).mean(1).cpu().tolist()
