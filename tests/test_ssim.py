"""latentopt.metrics.ssim against independent references: scikit-image's structural_similarity and a
scipy.ndimage re-implementation of MS-SSIM, on random arrays and on real photos."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage as ndi
import skimage.data
import torch
import torch.nn.functional as F
from skimage.metrics import structural_similarity

from latentopt.metrics import ssim as S


def to_t(img: np.ndarray) -> torch.Tensor:
    """H x W x C float64 array -> [1, C, H, W] tensor."""
    return torch.from_numpy(np.ascontiguousarray(img, dtype=np.float64)).permute(2, 0, 1)[None]


def sk_ssim(a: np.ndarray, b: np.ndarray, sigma: float = 1.5, data_range: float = 1.0) -> float:
    return structural_similarity(
        a, b, gaussian_weights=True, sigma=sigma, use_sample_covariance=False,
        data_range=data_range, channel_axis=-1,
    )


def photo(name: str, top: int, left: int, h: int, w: int) -> np.ndarray:
    return getattr(skimage.data, name)()[top:top + h, left:left + w].astype(np.float64) / 255.0


def degrade(img: np.ndarray, rng: np.random.Generator, noise: float = 0.05) -> np.ndarray:
    blurred = ndi.gaussian_filter(img, sigma=(1.0, 1.0, 0))
    return np.clip(blurred + noise * rng.standard_normal(img.shape), 0.0, 1.0)


# ------------------------------------------------------------------ window


def test_gaussian_window_matches_scipy_kernel():
    delta = np.zeros(21)
    delta[10] = 1.0
    for size, sigma in [(11, 1.5), (15, 2.0)]:
        # scipy's radius is int(truncate * sigma + 0.5); truncate 3.5 gives 5 and 7 here
        kernel = ndi.gaussian_filter1d(delta, sigma, truncate=3.5, mode="constant")
        r = size // 2
        np.testing.assert_allclose(S.gaussian_window(size, sigma).numpy(), kernel[10 - r:11 + r],
                                   rtol=0, atol=1e-15)
        assert np.count_nonzero(kernel) == size
    w = S.gaussian_window(7, 1.5)
    assert w.shape == (7,) and abs(w.sum().item() - 1) < 1e-15
    assert torch.equal(w, w.flip(0))


@pytest.mark.parametrize("size", [10, 0, -3])
def test_gaussian_window_rejects_even_or_nonpositive(size):
    with pytest.raises(ValueError, match="odd"):
        S.gaussian_window(size, 1.5)


# ------------------------------------------------------------------ SSIM vs skimage


@pytest.mark.parametrize("shape", [(11, 11, 3), (23, 40, 3), (64, 37, 1), (50, 50, 4)])
def test_ssim_matches_skimage_random(rng, shape):
    a = rng.random(shape)
    b = np.clip(a + 0.2 * rng.standard_normal(shape), 0, 1)
    ours = S.ssim(to_t(a), to_t(b)).item()
    assert ours == pytest.approx(sk_ssim(a, b), abs=1e-9)
    # unrelated images too (low SSIM, negative covariances possible)
    c = rng.random(shape)
    assert S.ssim(to_t(a), to_t(c)).item() == pytest.approx(sk_ssim(a, c), abs=1e-9)


@pytest.mark.parametrize("name", ["astronaut", "coffee", "chelsea"])
def test_ssim_matches_skimage_photo(rng, name):
    ref = photo(name, 100, 120, 48, 64)
    pred = degrade(ref, rng)
    expected = sk_ssim(ref, pred)
    assert 0.3 < expected < 0.99  # a meaningful, non-trivial comparison
    assert S.ssim(to_t(pred), to_t(ref)).item() == pytest.approx(expected, abs=1e-9)


def test_ssim_other_window_and_data_range_match_skimage(rng):
    ref = photo("astronaut", 200, 200, 40, 45)
    pred = degrade(ref, rng, noise=0.1)
    # 15-tap window for sigma 2.0 (skimage: radius int(3.5 * 2 + 0.5) = 7)
    assert S.ssim(to_t(pred), to_t(ref), window_size=15, sigma=2.0).item() == pytest.approx(
        sk_ssim(ref, pred, sigma=2.0), abs=1e-9)
    # 8-bit scale with data_range 255
    r8, p8 = np.round(ref * 255), np.round(pred * 255)
    assert S.ssim(to_t(p8), to_t(r8), data_range=255.0).item() == pytest.approx(
        sk_ssim(r8, p8, data_range=255), abs=1e-9)


def test_ssim_identical_is_one_and_symmetric(rng):
    a, b = to_t(rng.random((20, 24, 3))), to_t(rng.random((20, 24, 3)))
    assert S.ssim(a, a).item() == pytest.approx(1.0, abs=1e-12)
    assert S.ssim(a, b).item() == pytest.approx(S.ssim(b, a).item(), abs=1e-14)


def test_ssim_batch_equals_one_at_a_time(rng):
    x = torch.from_numpy(rng.random((4, 3, 30, 26)))
    y = torch.from_numpy(rng.random((4, 3, 30, 26)))
    batch = S.ssim(x, y)
    assert batch.shape == (4,)
    for i in range(4):
        assert batch[i].item() == pytest.approx(S.ssim(x[i:i + 1], y[i:i + 1]).item(), abs=1e-14)


# ------------------------------------------------------------------ no padding


def zero_padded_ssim(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The common (biased) variant: 'same' convolution with zero padding, mean over all pixels."""
    c = x.shape[1]
    win = S.gaussian_window(11, 1.5, dtype=x.dtype)
    k = (win[:, None] * win[None, :]).expand(c, 1, 11, 11)
    f = lambda t: F.conv2d(t, k, padding=5, groups=c)  # noqa: E731
    mx, my = f(x), f(y)
    sxx, syy, sxy = f(x * x) - mx**2, f(y * y) - my**2, f(x * y) - mx * my
    c1, c2 = 0.01**2, 0.03**2
    m = (2 * mx * my + c1) * (2 * sxy + c2) / ((mx**2 + my**2 + c1) * (sxx + syy + c2))
    return m.mean(dim=(1, 2, 3))


def test_ssim_has_no_padding_bias_at_borders():
    # Two constant images: every valid window sees zero variance, so SSIM is exactly the
    # luminance term. Zero padding would darken the border means and invent variance there.
    a, b = 0.8, 0.6
    x = torch.full((1, 3, 24, 30), a, dtype=torch.float64)
    y = torch.full((1, 3, 24, 30), b, dtype=torch.float64)
    c1 = 0.01**2
    analytic = (2 * a * b + c1) / (a * a + b * b + c1)
    assert S.ssim(x, y).item() == pytest.approx(analytic, abs=1e-12)
    padded = zero_padded_ssim(x, y).item()
    assert abs(padded - analytic) > 1e-2


def test_ssim_excludes_border_like_skimage_but_padded_variant_does_not(rng):
    ref = photo("coffee", 50, 300, 40, 40)
    pred = degrade(ref, rng)
    expected = sk_ssim(ref, pred)
    ours = S.ssim(to_t(pred), to_t(ref)).item()
    padded = zero_padded_ssim(to_t(pred), to_t(ref)).item()
    assert ours == pytest.approx(expected, abs=1e-9)
    assert abs(padded - expected) > 1e-3


def test_ssim_border_pixels_only_enter_through_valid_windows(rng):
    # Changing a corner pixel changes only the one valid window that covers it.
    x = to_t(rng.random((11, 11, 1)))
    y = x.clone()
    y[..., 0, 0] += 0.5
    w = S.gaussian_window(11, 1.5)
    # single valid position: the 11x11 window covering the whole image
    g = w[:, None] * w[None, :]
    mx, my = (g * x[0, 0]).sum(), (g * y[0, 0]).sum()
    sxx = (g * x[0, 0] ** 2).sum() - mx**2
    syy = (g * y[0, 0] ** 2).sum() - my**2
    sxy = (g * x[0, 0] * y[0, 0]).sum() - mx * my
    c1, c2 = 1e-4, 9e-4
    manual = (2 * mx * my + c1) * (2 * sxy + c2) / ((mx**2 + my**2 + c1) * (sxx + syy + c2))
    assert S.ssim(x, y).item() == pytest.approx(manual.item(), abs=1e-14)


# ------------------------------------------------------------------ errors


def test_ssim_errors():
    x = torch.rand(1, 3, 10, 20)
    with pytest.raises(ValueError, match="smaller than the 11x11 SSIM window"):
        S.ssim(x, x)
    with pytest.raises(ValueError, match="odd"):
        S.ssim(torch.rand(1, 3, 20, 20), torch.rand(1, 3, 20, 20), window_size=8)
    with pytest.raises(ValueError, match="shapes differ"):
        S.ssim(torch.rand(1, 3, 20, 20), torch.rand(1, 3, 20, 21))
    with pytest.raises(ValueError, match=r"\[B, C, H, W\]"):
        S.ssim(torch.rand(3, 20, 20), torch.rand(3, 20, 20))


def test_ms_ssim_too_small_states_minimum():
    assert S.ms_ssim_min_size() == 176
    x = torch.rand(1, 3, 175, 300)
    with pytest.raises(ValueError, match="at least 176x176"):
        S.ms_ssim(x, x)
    with pytest.raises(ValueError, match="at least 28x28"):
        S.ms_ssim(torch.rand(1, 3, 27, 40), torch.rand(1, 3, 27, 40), window_size=7,
                  weights=(0.5, 0.3, 0.2))


# ------------------------------------------------------------------ gradients


def test_ssim_gradcheck_and_finite_at_identity(rng):
    x = torch.from_numpy(rng.random((2, 2, 11, 13))).requires_grad_(True)
    y = torch.from_numpy(rng.random((2, 2, 11, 13)))
    assert torch.autograd.gradcheck(lambda a: S.ssim(a, y, window_size=7), (x,), fast_mode=True)
    assert torch.autograd.gradcheck(lambda a: S.ssim(a, y), (x,), fast_mode=True)
    x2 = y.clone().requires_grad_(True)
    S.ssim(x2, y).sum().backward()
    assert torch.isfinite(x2.grad).all()
    assert x2.grad.abs().max().item() < 1e-10  # SSIM is maximal (1) at x == y


# ------------------------------------------------------------------ MS-SSIM


def ref_ms_ssim(a: np.ndarray, b: np.ndarray, weights, sigma=1.5) -> float:
    """Independent MS-SSIM: scipy.ndimage Gaussian filtering, border cropping, numpy 2x2 means."""
    r = int(3.5 * sigma + 0.5)
    c1, c2 = 0.01**2, 0.03**2

    def f(t):
        return ndi.gaussian_filter(t, sigma, truncate=3.5, mode="reflect")[r:-r, r:-r]

    per_channel = []
    for ch in range(a.shape[2]):
        x, y = a[..., ch], b[..., ch]
        value = 1.0
        for j, wgt in enumerate(weights):
            mx, my = f(x), f(y)
            sxx, syy, sxy = f(x * x) - mx**2, f(y * y) - my**2, f(x * y) - mx * my
            cs = (2 * sxy + c2) / (sxx + syy + c2)
            if j == len(weights) - 1:
                term = np.mean(cs * (2 * mx * my + c1) / (mx**2 + my**2 + c1))
            else:
                term = np.mean(cs)
                h, w = (x.shape[0] // 2) * 2, (x.shape[1] // 2) * 2
                x = x[:h, :w].reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
                y = y[:h, :w].reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
            value *= max(term, 1e-12) ** wgt
        per_channel.append(value)
    return float(np.mean(per_channel))


def test_ms_ssim_matches_independent_reference_photo(rng):
    ref = photo("astronaut", 20, 150, 181, 190)  # odd sizes exercise the pooling crop
    pred = degrade(ref, rng)
    expected = ref_ms_ssim(ref, pred, S.MS_SSIM_WEIGHTS)
    assert 0.5 < expected < 0.999
    assert S.ms_ssim(to_t(pred), to_t(ref)).item() == pytest.approx(expected, abs=1e-10)


def test_ms_ssim_matches_independent_reference_random_small_window(rng):
    a = rng.random((61, 70, 3))
    b = np.clip(a + 0.1 * rng.standard_normal(a.shape), 0, 1)
    wts = (0.2, 0.3, 0.5)
    ours = S.ms_ssim(to_t(a), to_t(b), window_size=15, sigma=2.0, weights=wts).item()
    assert ours == pytest.approx(ref_ms_ssim(a, b, wts, sigma=2.0), abs=1e-10)


def test_ms_ssim_single_scale_is_ssim(rng):
    # (when every channel's SSIM is positive; the clamp only affects non-positive values)
    a = rng.random((30, 30, 3))
    b = np.clip(a + 0.3 * rng.standard_normal(a.shape), 0, 1)
    a, b = to_t(a), to_t(b)
    assert 0.1 < S.ssim(a, b).item() < 0.9
    assert S.ms_ssim(a, b, weights=(1.0,)).item() == pytest.approx(S.ssim(a, b).item(), abs=1e-14)


def test_ms_ssim_identity_batch_and_gradients(rng):
    x = torch.from_numpy(rng.random((2, 3, 176, 180)))
    assert torch.allclose(S.ms_ssim(x, x), torch.ones(2, dtype=torch.float64), atol=1e-12)
    y = torch.from_numpy(rng.random((2, 3, 176, 180)))
    batch = S.ms_ssim(x, y)
    for i in range(2):
        assert batch[i].item() == pytest.approx(S.ms_ssim(x[i:i + 1], y[i:i + 1]).item(), abs=1e-14)
    # finite gradients at x == y and for anti-correlated images (negative cs, clamped)
    for target in (x, 1.0 - x):
        p = x.clone().requires_grad_(True)
        S.ms_ssim(p, target).sum().backward()
        assert torch.isfinite(p.grad).all()
    q = (1.0 - x).clone().requires_grad_(True)
    val = S.ms_ssim(q, x)
    assert (val < 1e-3).all()
    val.sum().backward()
    assert torch.isfinite(q.grad).all()
