"""Evaluation metrics between a reconstruction and its reference image.

Definitions.  Images are RGB. ``image_metrics`` maps 8-bit images to [0, 1] by dividing by 255
and computes every quantity in float64 (LPIPS in the network's float32); ``tensor_metrics`` works
in the dtype of its [0, 1] inputs. Means run over all 3 x H x W values of one image; each metric
is one number per image.

* ``mse``   = mean((pred - ref)**2) on the [0, 1] scale (= skimage ``mean_squared_error`` on the
  8-bit arrays divided by 255**2).
* ``mae``   = mean(|pred - ref|) on the [0, 1] scale.
* ``psnr``  = 10 log10(1 / mse) in dB (= skimage ``peak_signal_noise_ratio(ref, pred,
  data_range=255)`` on the 8-bit arrays); +inf when mse == 0. No epsilon (unlike the ``psnr``
  training loss, which uses 10 log10(mse + 1e-8)).
* ``ssim``  = SSIM with a Gaussian window of 11 taps and sigma 1.5, constants K1 = 0.01,
  K2 = 0.03, data range 1, population (co)variances, computed per RGB channel over valid window
  positions only (no padding) and averaged over channels and positions (= skimage
  ``structural_similarity(ref, pred, gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False, data_range=255, channel_axis=-1)``); see ``latentopt.metrics.ssim``.
* ``lpips_<name>`` = LPIPS v0.1 distance of the network given under <name> (e.g. ``alex``,
  ``vgg``), inputs mapped to [-1, 1] as 2 x - 1 (the lpips package's ``im2tensor`` convention,
  x / 127.5 - 1 on 8-bit values), spatially averaged.

``tensor_metrics`` is the single implementation (batched, on tensors in [0, 1], used by the
optimiser for logging); ``batch_image_metrics`` converts a batch of 8-bit pairs of one shape and
calls it once; ``image_metrics`` is its batch of one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from latentopt.metrics.lpips_network import lpips_distance
from latentopt.workflow.metric_specs import SSIM_WINDOW
from latentopt.metrics import ssim as _ssim
from latentopt.compute.precision import exact_fp32


def tensor_metrics(
    pred: Tensor,
    target: Tensor,
    lpips_nets: Mapping[str, torch.nn.Module] | None = None,
) -> dict[str, Tensor]:
    """Metrics per image for ``pred, target`` [B, 3, H, W] in [0, 1]: dict name -> Tensor[B]
    (detached, no graph). Keys: psnr, ssim, mse, mae, and lpips_<name> per given network."""
    if pred.shape != target.shape or pred.ndim != 4:
        raise ValueError(
            f"expected two [B, C, H, W] tensors of equal shape, got {tuple(pred.shape)} "
            f"and {tuple(target.shape)}"
        )
    with torch.no_grad(), exact_fp32():
        mse = per_image_mean((pred - target) ** 2)
        out = {
            "psnr": -10.0 * torch.log10(mse),  # log10(0) = -inf -> psnr = +inf
            "ssim": _ssim.ssim(pred, target, window_size=SSIM_WINDOW[0], sigma=SSIM_WINDOW[1], data_range=1.0),
            "mse": mse,
            "mae": per_image_mean((pred - target).abs()),
        }
        for name, net in (lpips_nets or {}).items():
            out[f"lpips_{name}"] = lpips_distance(net, pred, target)
    return out


def per_image_mean(t: Tensor) -> Tensor:
    """Mean over C x H x W of each image of a [B, ...] tensor: [B]."""
    return t.flatten(start_dim=1).mean(dim=1)


def _u8_to_tensor(img: np.ndarray, what: str) -> Tensor:
    """One 8-bit H x W x 3 image as a float64 [3, H, W] tensor in [0, 1]."""
    if not isinstance(img, np.ndarray) or img.dtype != np.uint8:
        raise ValueError(
            f"{what} must be a uint8 numpy array, got {type(img).__name__} "
            f"{getattr(img, 'dtype', '')}"
        )
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"{what} must be an H x W x 3 RGB image, got shape {img.shape}")
    return torch.from_numpy(img.astype(np.float64) / 255.0).permute(2, 0, 1)


def batch_image_metrics(
    preds_u8: Sequence[np.ndarray],
    refs_u8: Sequence[np.ndarray],
    lpips_nets: Mapping[str, torch.nn.Module] | None = None,
) -> list[dict[str, float]]:
    """Metrics of each 8-bit H x W x 3 reconstruction against its reference, all pairs of one
    shape, computed as one [B, 3, H, W] batch: one dict name -> float per pair, in order (psnr,
    ssim, mse, mae, lpips_<name> for each given network); see the module docstring."""
    if len(preds_u8) != len(refs_u8) or not preds_u8:
        raise ValueError(f"expected equally many predictions and references (at least one), got {len(preds_u8)} and {len(refs_u8)}")
    for pred_u8, ref_u8 in zip(preds_u8, refs_u8):
        if pred_u8.shape != ref_u8.shape:
            raise ValueError(f"image shapes differ: {pred_u8.shape} vs {ref_u8.shape}")
    if len({p.shape for p in preds_u8}) > 1:
        raise ValueError(f"a batch holds images of one shape, got {sorted({p.shape for p in preds_u8})}")
    pred = torch.stack([_u8_to_tensor(p, "pred_u8") for p in preds_u8])
    ref = torch.stack([_u8_to_tensor(r, "ref_u8") for r in refs_u8])
    values = {k: v.tolist() for k, v in tensor_metrics(pred, ref, lpips_nets).items()}
    return [{k: float(v[i]) for k, v in values.items()} for i in range(len(preds_u8))]


def image_metrics(
    pred_u8: np.ndarray,
    ref_u8: np.ndarray,
    lpips_nets: Mapping[str, torch.nn.Module] | None = None,
) -> dict[str, float]:
    """Metrics of one 8-bit H x W x 3 reconstruction against its reference: dict name -> float
    (psnr, ssim, mse, mae, lpips_<name> for each given network); the batch of one of
    :func:`batch_image_metrics`."""
    return batch_image_metrics([pred_u8], [ref_u8], lpips_nets)[0]
