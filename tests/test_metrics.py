"""latentopt.metrics.image_metrics on 8-bit images against scikit-image / numpy / the lpips package, and the
agreement of the 8-bit and batched-tensor entry points (one implementation)."""

from __future__ import annotations

import lpips as lpips_pkg
import numpy as np
import pytest
import skimage.data
import torch
from skimage.metrics import mean_squared_error, peak_signal_noise_ratio, structural_similarity

from latentopt.metrics.lpips_network import lpips_network
from latentopt.metrics import image_metrics as metrics


def degraded_pair(name: str, seed: int = 0, noise: float = 12.0, h: int = 48, w: int = 64):
    ref = getattr(skimage.data, name)()[80:80 + h, 100:100 + w]
    rng = np.random.default_rng(seed)
    pred = np.clip(ref.astype(np.float64) + rng.normal(0, noise, ref.shape), 0, 255)
    return np.round(pred).astype(np.uint8), ref


def sk_ssim_u8(pred: np.ndarray, ref: np.ndarray) -> float:
    return structural_similarity(ref, pred, gaussian_weights=True, sigma=1.5,
                                 use_sample_covariance=False, data_range=255, channel_axis=-1)


@pytest.fixture(scope="module")
def alex():
    return lpips_network("alex", random_trunk=True)


@pytest.mark.parametrize("name", ["astronaut", "coffee", "chelsea"])
def test_image_metrics_match_skimage_and_numpy(name):
    pred, ref = degraded_pair(name)
    m = metrics.image_metrics(pred, ref)
    assert set(m) == {"psnr", "ssim", "mse", "mae"}
    assert all(type(v) is float for v in m.values())
    p, r = pred.astype(np.float64), ref.astype(np.float64)
    assert m["psnr"] == pytest.approx(peak_signal_noise_ratio(ref, pred, data_range=255), abs=1e-10)
    assert m["mse"] == pytest.approx(mean_squared_error(ref, pred) / 255**2, rel=1e-12)
    assert m["mse"] == pytest.approx(np.mean((p / 255 - r / 255) ** 2), rel=1e-12)
    assert m["mae"] == pytest.approx(np.mean(np.abs(p - r)) / 255, rel=1e-12)
    expected_ssim = sk_ssim_u8(pred, ref)
    assert 0.2 < expected_ssim < 0.99
    assert m["ssim"] == pytest.approx(expected_ssim, abs=1e-9)


def test_image_metrics_random_arrays(rng):
    ref = rng.integers(0, 256, (30, 41, 3), dtype=np.uint8)
    pred = rng.integers(0, 256, (30, 41, 3), dtype=np.uint8)
    m = metrics.image_metrics(pred, ref)
    assert m["psnr"] == pytest.approx(peak_signal_noise_ratio(ref, pred, data_range=255), abs=1e-10)
    assert m["mse"] == pytest.approx(mean_squared_error(ref, pred) / 255**2, rel=1e-12)
    assert m["ssim"] == pytest.approx(sk_ssim_u8(pred, ref), abs=1e-9)


def test_identical_images():
    _, ref = degraded_pair("chelsea")
    m = metrics.image_metrics(ref, ref.copy())
    assert m["psnr"] == float("inf")
    assert m["mse"] == 0.0 and m["mae"] == 0.0
    assert m["ssim"] == pytest.approx(1.0, abs=1e-12)


def test_one_off_pixel_psnr():
    ref = np.full((16, 16, 3), 100, dtype=np.uint8)
    pred = ref.copy()
    pred[3, 4, 1] = 101
    mse = (1 / 255) ** 2 / ref.size
    m = metrics.image_metrics(pred, ref)
    assert m["mse"] == pytest.approx(mse, rel=1e-12)
    assert m["psnr"] == pytest.approx(10 * np.log10(1 / mse), rel=1e-12)


def test_lpips_metric_equals_lpips_package_on_im2tensor(alex):
    pred, ref = degraded_pair("coffee", h=64, w=64)
    m = metrics.image_metrics(pred, ref, {"alex": alex})
    with torch.no_grad():
        direct = alex(lpips_pkg.im2tensor(pred), lpips_pkg.im2tensor(ref)).item()
    assert direct > 1e-3
    assert m["lpips_alex"] == pytest.approx(direct, rel=1e-5, abs=1e-7)
    assert set(m) == {"psnr", "ssim", "mse", "mae", "lpips_alex"}
    # same network under two names -> two keys, same value
    m2 = metrics.image_metrics(pred, ref, {"a": alex, "b": alex})
    assert m2["lpips_a"] == m2["lpips_b"] == pytest.approx(m["lpips_alex"], abs=1e-7)


def test_tensor_metrics_batch_matches_image_metrics(alex):
    pairs = [degraded_pair(n, h=40, w=40) for n in ("astronaut", "coffee", "chelsea")]
    to_t = lambda u8: torch.from_numpy(u8 / 255.0).permute(2, 0, 1)  # noqa: E731
    pred = torch.stack([to_t(p) for p, _ in pairs])
    ref = torch.stack([to_t(r) for _, r in pairs])
    batched = metrics.tensor_metrics(pred, ref, {"alex": alex})
    assert set(batched) == {"psnr", "ssim", "mse", "mae", "lpips_alex"}
    for key, value in batched.items():
        assert value.shape == (3,) and not value.requires_grad
    for i, (p, r) in enumerate(pairs):
        single = metrics.image_metrics(p, r, {"alex": alex})
        for key in single:
            assert batched[key][i].item() == pytest.approx(single[key], rel=1e-6, abs=1e-8), key


def test_tensor_metrics_does_not_track_gradients_and_psnr_inf(rng):
    x = torch.rand(2, 3, 16, 16, requires_grad=True)
    out = metrics.tensor_metrics(x, x.detach())
    assert torch.isinf(out["psnr"]).all() and (out["psnr"] > 0).all()
    assert all(not v.requires_grad for v in out.values())


def test_input_validation():
    pred, ref = degraded_pair("chelsea")
    with pytest.raises(ValueError, match="uint8"):
        metrics.image_metrics(pred.astype(np.float32), ref)
    with pytest.raises(ValueError, match="shapes differ"):
        metrics.image_metrics(pred[:-1], ref)
    with pytest.raises(ValueError, match="H x W x 3"):
        metrics.image_metrics(pred[..., 0], ref[..., 0])
    with pytest.raises(ValueError, match="smaller than the 11x11"):
        metrics.image_metrics(pred[:8], ref[:8])
    with pytest.raises(ValueError, match="equal shape"):
        metrics.tensor_metrics(torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 17))
