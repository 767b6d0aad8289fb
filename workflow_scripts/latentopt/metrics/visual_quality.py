"""Visual-quality metrics of a reconstruction against its original (numpy/scipy/scikit-image).

All three take the two published 8-bit H x W x 3 RGB images (reconstruction ``pred``, original
``ref``). Luma is ITU-R BT.601, Y = 0.299 R + 0.587 G + 0.114 B on the 0..255 scale.

* ``gmsd`` (edge preservation, lower is better, 0 = identical gradients): gradient-magnitude
  similarity deviation of Xue, Zhang, Mou & Bovik (IEEE TIP 2014), as in the authors' MATLAB code:
  both lumas are averaged over 2 x 2 blocks and subsampled by 2 (MATLAB ``conv2(Y, ones(2)/4,
  'same')`` then ``Y(1:2:end, 1:2:end)``, i.e. zero padding past the last row/column of an odd-
  sized image); Prewitt derivatives hx = [1 0 -1; 1 0 -1; 1 0 -1] / 3 and hy = hx' with zero
  padding (``conv2(..., 'same')``); gradient magnitudes m = sqrt(gx^2 + gy^2); similarity map
  GMS = (2 m_pred m_ref + c) / (m_pred^2 + m_ref^2 + c) with c = 170 (0..255 scale);
  GMSD = the standard deviation of the GMS map with ddof = 1 (MATLAB ``std2``).
* ``delta_e00`` (colour fidelity, lower is better, 0 = identical colours): mean over pixels of the
  CIEDE2000 colour difference (Sharma, Wu & Dalal 2005; kL = kC = kH = 1) between the CIELAB
  values of the two images (sRGB, D65, 2-degree observer: ``skimage.color.rgb2lab`` then
  ``skimage.color.deltaE_ciede2000``). Roughly: 1 is a just-noticeable difference.
* ``sharpness_ratio`` (blur vs. added high frequencies, 1 = as sharp as the original):
  var(L(pred)) / var(L(ref)), L = the 4-neighbour Laplacian [[0, 1, 0], [1, -4, 1], [0, 1, 0]]
  of the luma, evaluated on interior pixels only (no padding), population variance (ddof = 0).
  Below 1: the reconstruction has less Laplacian energy (blur); above 1: more (noise, ringing,
  over-sharpening). It has no "better" direction; NaN when the original is flat (var = 0).
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import convolve
from skimage.color import deltaE_ciede2000, rgb2lab

# Names, directions of "better" and the target of sharpness_ratio: latentopt.workflow.metric_specs.
GMSD_C = 170.0
LUMA = np.array([0.299, 0.587, 0.114])
_PREWITT_X = np.array([[1.0, 0.0, -1.0]] * 3) / 3.0
_LAPLACIAN = np.array([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])


def _check(pred: np.ndarray, ref: np.ndarray) -> None:
    for name, img in (("pred", pred), ("ref", ref)):
        if not isinstance(img, np.ndarray) or img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
            raise ValueError(f"{name} must be a uint8 H x W x 3 RGB array, got {getattr(img, 'dtype', type(img).__name__)} {getattr(img, 'shape', '')}")
    if pred.shape != ref.shape:
        raise ValueError(f"image shapes differ: {pred.shape} vs {ref.shape}")


def luma(img_u8: np.ndarray) -> np.ndarray:
    """BT.601 luma on the 0..255 scale (float64, H x W)."""
    return img_u8.astype(np.float64) @ LUMA


def _gradient_magnitude(y: np.ndarray) -> np.ndarray:
    gx = convolve(y, _PREWITT_X, mode="constant", cval=0.0)
    gy = convolve(y, _PREWITT_X.T, mode="constant", cval=0.0)
    return np.sqrt(gx**2 + gy**2)


def _half(y: np.ndarray) -> np.ndarray:
    """2 x 2 block mean, zero-padded to even size (MATLAB conv2 'same' + 1:2:end)."""
    h, w = y.shape
    padded = np.pad(y, ((0, h % 2), (0, w % 2)))
    return padded.reshape(padded.shape[0] // 2, 2, padded.shape[1] // 2, 2).mean(axis=(1, 3))


def gmsd(pred: np.ndarray, ref: np.ndarray) -> float:
    _check(pred, ref)
    mp, mr = _gradient_magnitude(_half(luma(pred))), _gradient_magnitude(_half(luma(ref)))
    gms = (2.0 * mp * mr + GMSD_C) / (mp**2 + mr**2 + GMSD_C)
    return float(gms.std(ddof=1)) if gms.size > 1 else float("nan")


def delta_e00(pred: np.ndarray, ref: np.ndarray) -> float:
    _check(pred, ref)
    return float(np.mean(deltaE_ciede2000(rgb2lab(ref), rgb2lab(pred))))


def laplacian_variance(img_u8: np.ndarray) -> float:
    """Population variance of the 4-neighbour Laplacian of the luma over interior pixels."""
    lap = convolve(luma(img_u8), _LAPLACIAN, mode="constant")[1:-1, 1:-1]
    return float(lap.var()) if lap.size else float("nan")


def sharpness_ratio(pred: np.ndarray, ref: np.ndarray) -> float:
    _check(pred, ref)
    denominator = laplacian_variance(ref)
    return laplacian_variance(pred) / denominator if denominator > 0 else float("nan")


def visual_metrics(pred: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    """{gmsd, delta_e00, sharpness_ratio} of one 8-bit reconstruction against its original."""
    return {"gmsd": gmsd(pred, ref), "delta_e00": delta_e00(pred, ref), "sharpness_ratio": sharpness_ratio(pred, ref)}
