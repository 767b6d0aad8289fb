"""Encode and decode in exact fp32, one image at a time: the baseline, the starting point and the
published decode of an optimization do not depend on its speed settings (``run.precision``)."""

from __future__ import annotations

import torch

from latentopt.compute.precision import exact_fp32


def _exact_one_by_one(fn, batch: torch.Tensor) -> torch.Tensor:
    """``fn`` applied to each image of ``batch`` alone, in exact fp32, without gradients. One at a
    time: on an H100, cuDNN's default fp32 convolution choice for the SD-VAE was measured 4-7x
    slower at batch 2-4 than at batch 1, and the last batch of a job is often that small."""
    with torch.no_grad(), exact_fp32():
        return torch.cat([fn(batch[i : i + 1]).float() for i in range(batch.shape[0])])


def encode_exact(model, x: torch.Tensor) -> torch.Tensor:
    """z0 = encode(x) in exact fp32, whatever run.precision the optimization uses: the baseline
    and the starting point do not depend on the speed setting."""
    return _exact_one_by_one(model.encode, x)


def decode_exact(model, z: torch.Tensor) -> torch.Tensor:
    """The published decode of latents, in exact fp32 whatever run.precision the optimization
    used: outputs and metrics depend on the latent alone."""
    return _exact_one_by_one(model.decode, z)
