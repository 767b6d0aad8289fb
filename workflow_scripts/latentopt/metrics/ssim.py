"""Differentiable SSIM and MS-SSIM in torch, one value per image.

Definitions (x, y: images of shape [B, C, H, W] with values in [0, L], L = ``data_range``)
-----------------------------------------------------------------------------------------

Window.  ``w`` is the normalised 1-D Gaussian of odd length ``n = window_size`` and standard
deviation ``sigma``: ``w[i] = exp(-d_i**2 / (2 sigma**2)) / sum_j exp(-d_j**2 / (2 sigma**2))``
with ``d_i = i - (n - 1) / 2``. The 2-D window is the outer product ``w w^T``, applied separably
as two valid 1-D convolutions (computed as products with banded matrices). With the defaults
(11, 1.5) this is exactly the filter of scikit-image's
``structural_similarity(gaussian_weights=True, sigma=1.5)`` (scipy's Gaussian with
``truncate=3.5``, radius ``int(3.5 * 1.5 + 0.5) = 5``).

Local statistics.  For every channel separately and every *valid* window position (the window lies
entirely inside the image; no padding of any kind, so the output map is (H - n + 1) x (W - n + 1)
and no border value is biased by zeros or reflections), with ``G * .`` the windowed weighted sum::

    mu_x = G * x,   mu_y = G * y
    s_xx = G * (x * x) - mu_x**2                 (population variance: weights sum to 1,
    s_yy = G * (y * y) - mu_y**2                  no n / (n - 1) correction)
    s_xy = G * (x * y) - mu_x * mu_y             (population covariance)

    C1 = (k1 * L)**2,  C2 = (k2 * L)**2          (k1 = 0.01, k2 = 0.03)

    l  = (2 mu_x mu_y + C1) / (mu_x**2 + mu_y**2 + C1)          luminance
    cs = (2 s_xy + C2) / (s_xx + s_yy + C2)                      contrast-structure
    SSIM map = l * cs

SSIM(x, y) = mean of the SSIM map over channels and valid positions, one value per image.
This equals ``skimage.metrics.structural_similarity(a, b, gaussian_weights=True, sigma=1.5,
use_sample_covariance=False, data_range=L, channel_axis=-1)`` (skimage filters the whole image,
then discards a border of (n - 1) / 2 pixels, i.e. keeps exactly the valid positions).

MS-SSIM (Wang, Simoncelli & Bovik 2003) with M = len(weights) scales, weights beta_1..beta_M
(default 0.0448, 0.2856, 0.3001, 0.2363, 0.1333).  Scale 1 is the input; scale j + 1 is scale j
average-pooled over non-overlapping 2x2 blocks (an odd last row/column is dropped).  Per channel::

    CS_j   = mean over valid positions of cs at scale j            (j = 1 .. M - 1)
    SSIM_M = mean over valid positions of l * cs at scale M        (luminance only at the coarsest)
    MS-SSIM_c = SSIM_M**beta_M * prod_{j<M} CS_j**beta_j

and MS-SSIM(x, y) = mean over channels of MS-SSIM_c (each channel treated as a grey image, as
scikit-image does for SSIM).  Before the fractional power every CS_j and SSIM_M is clamped to at
least 1e-12 (a relu that also keeps the derivative of the power finite; values <= 0, possible for
anti-correlated images, contribute ~0 and no gradient).  Every scale must hold at least one window:
min(H, W) >= window_size * 2**(M - 1) (176 pixels for the defaults).

With a single weight (1.0,) MS-SSIM reduces to SSIM whenever every channel's SSIM is positive.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import torch
import torch.nn.functional as F  # avg_pool2d
from torch import Tensor

MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
_POWER_FLOOR = 1e-12


def gaussian_window(
    window_size: int,
    sigma: float,
    *,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> Tensor:
    """Normalised 1-D Gaussian of odd length ``window_size`` (sums to 1), shape [window_size]."""
    if isinstance(window_size, bool) or not isinstance(window_size, numbers.Integral):
        raise ValueError(f"window_size must be an odd positive int, got {window_size!r}")
    window_size = int(window_size)
    if window_size < 1 or window_size % 2 == 0:
        raise ValueError(
            f"window_size must be an odd positive int (the window needs a centre pixel), "
            f"got {window_size}"
        )
    if not (float(sigma) > 0):
        raise ValueError(f"sigma must be > 0, got {sigma!r}")
    d = torch.arange(window_size, dtype=torch.float64, device=device) - (window_size - 1) / 2
    g = torch.exp(-(d**2) / (2.0 * float(sigma) ** 2))
    return (g / g.sum()).to(dtype)


def _check_pair(x: Tensor, y: Tensor) -> None:
    if x.ndim != 4 or y.ndim != 4:
        raise ValueError(
            f"expected images of shape [B, C, H, W], got {tuple(x.shape)} and {tuple(y.shape)}"
        )
    if x.shape != y.shape:
        raise ValueError(f"image shapes differ: {tuple(x.shape)} vs {tuple(y.shape)}")


def _valid_band(length: int, window: Tensor) -> Tensor:
    """[length - n + 1, length] matrix whose row i holds the window at columns i .. i + n - 1:
    left-multiplying by it is a valid 1-D convolution (correlation) with the window."""
    n = window.numel()
    rows = length - n + 1
    start = torch.arange(rows, device=window.device)[:, None]
    index = start + torch.arange(n, device=window.device)
    band = torch.zeros(rows, length, dtype=window.dtype, device=window.device)
    return band.scatter_(1, index, window.expand(rows, n))


def _ssim_cs(
    x: Tensor,
    y: Tensor,
    window: Tensor,
    c1: float,
    c2: float,
) -> tuple[Tensor, Tensor]:
    """Per-channel means of the SSIM map and of the cs map over valid positions: two [B, C]."""
    b, c, h, w = x.shape
    n = window.numel()
    if h < n or w < n:
        raise ValueError(
            f"image of size {h}x{w} is smaller than the {n}x{n} SSIM window "
            f"(SSIM uses only valid window positions; use images at least {n}x{n} "
            f"or a smaller window_size)"
        )
    # The five quantities in one stack, each channel filtered separately. The separable valid
    # convolution is a product with two banded (Toeplitz) matrices: exact, and fast in float64.
    stack = torch.cat([x, y, x * x, y * y, x * y], dim=1)  # [B, 5C, H, W]
    win = window.to(dtype=x.dtype, device=x.device)
    filt = _valid_band(h, win) @ stack @ _valid_band(w, win).T  # [B, 5C, H-n+1, W-n+1]
    mu_x, mu_y, e_xx, e_yy, e_xy = filt.split(c, dim=1)
    s_xx = e_xx - mu_x * mu_x
    s_yy = e_yy - mu_y * mu_y
    s_xy = e_xy - mu_x * mu_y
    lum = (2 * mu_x * mu_y + c1) / (mu_x * mu_x + mu_y * mu_y + c1)
    cs = (2 * s_xy + c2) / (s_xx + s_yy + c2)
    return (lum * cs).mean(dim=(2, 3)), cs.mean(dim=(2, 3))


def ssim(
    x: Tensor,
    y: Tensor,
    *,
    window_size: int = 11,
    sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
    data_range: float = 1.0,
) -> Tensor:
    """SSIM per image (see module docstring), shape [B]; differentiable in x and y."""
    _check_pair(x, y)
    window = gaussian_window(window_size, sigma, dtype=x.dtype, device=x.device)
    s, _ = _ssim_cs(x, y, window, (k1 * data_range) ** 2, (k2 * data_range) ** 2)
    return s.mean(dim=1)


def ms_ssim_min_size(window_size: int = 11, scales: int = len(MS_SSIM_WEIGHTS)) -> int:
    """Smallest min(H, W) for which every one of ``scales`` scales holds a full window."""
    return window_size * 2 ** (scales - 1)


def ms_ssim(
    x: Tensor,
    y: Tensor,
    *,
    window_size: int = 11,
    sigma: float = 1.5,
    weights: Sequence[float] = MS_SSIM_WEIGHTS,
    k1: float = 0.01,
    k2: float = 0.03,
    data_range: float = 1.0,
) -> Tensor:
    """Multi-scale SSIM per image (see module docstring), shape [B]; differentiable."""
    _check_pair(x, y)
    scales = len(weights)
    if scales < 1:
        raise ValueError("ms_ssim needs at least one weight (one scale)")
    window = gaussian_window(window_size, sigma, dtype=x.dtype, device=x.device)
    need = ms_ssim_min_size(window_size, scales)
    h, w = x.shape[-2:]
    if min(h, w) < need:
        raise ValueError(
            f"ms_ssim with {scales} scales and window_size {window_size} needs images of at "
            f"least {need}x{need} pixels (window_size * 2**(scales - 1)); got {h}x{w}"
        )
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    beta = torch.as_tensor(list(weights), dtype=x.dtype, device=x.device)
    result = torch.ones(x.shape[:2], dtype=x.dtype, device=x.device)  # [B, C]
    for j in range(scales):
        s, cs = _ssim_cs(x, y, window, c1, c2)
        term = s if j == scales - 1 else cs
        result = result * term.clamp_min(_POWER_FLOOR) ** beta[j]
        if j < scales - 1:
            x = F.avg_pool2d(x, kernel_size=2, stride=2)
            y = F.avg_pool2d(y, kernel_size=2, stride=2)
    return result.mean(dim=1)
