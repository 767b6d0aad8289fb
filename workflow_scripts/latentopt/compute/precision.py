"""Numeric precision of the math: the optimization's decoder runs at ``run.precision``; everything
that is measured or published runs in exact fp32.

``run.precision`` (fp32, tf32, bf16 or fp16) only speeds up the decoder inside the Adam loop. The loss,
the encode of z0, the final decode of the best latent and every metric run under
:func:`exact_fp32`: no TF32 tensor-core rounding (PyTorch enables TF32 for cuDNN convolutions by
default), no autocast. This matters: SSIM subtracts nearly equal moments (E[x^2] - E[x]^2), and
measured on an H100 a TF32 Gaussian filter moved SSIM by 0.09 while PSNR stayed within 0.001 dB.
The settings are restored on exit, so a context never leaks into later code.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch

PRECISIONS = ("fp32", "tf32", "bf16", "fp16")
AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


@contextlib.contextmanager
def _tf32(enabled: bool) -> Iterator[None]:
    """TF32 for cuDNN convolutions and CUDA matmuls on or off; the previous flags restored on exit."""
    saved = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    torch.backends.cudnn.allow_tf32 = enabled
    torch.backends.cuda.matmul.allow_tf32 = enabled
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


@contextlib.contextmanager
def exact_fp32() -> Iterator[None]:
    """Plain fp32 math on every device: autocast off (CPU and CUDA), TF32 off."""
    with torch.autocast("cpu", enabled=False), torch.autocast("cuda", enabled=False), _tf32(False):
        yield


@contextlib.contextmanager
def decode_precision(precision: str, device: torch.device) -> Iterator[None]:
    """The optimization's decoder math: fp32 exact; tf32 = fp32 storage, TF32 tensor cores for
    convolutions and matmuls (CUDA only; the CPU has no TF32); bf16 / fp16 = autocast to bfloat16 /
    float16 (the latent, the loss and Adam stay fp32; fp16 needs gradient scaling, see
    :mod:`latentopt.optimize.decoder_step`)."""
    if precision not in PRECISIONS:
        raise ValueError(f"run.precision must be one of {PRECISIONS}, got {precision!r}")
    if precision in AUTOCAST_DTYPES:
        with _tf32(False), torch.autocast(device_type=device.type, dtype=AUTOCAST_DTYPES[precision]):
            yield
    else:
        with _tf32(precision == "tf32"):
            yield
