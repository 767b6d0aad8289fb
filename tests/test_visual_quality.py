"""Visual-quality metrics against independent transcriptions (explicit shifts, the published
CIEDE2000 formulas and test pairs of Sharma et al. 2005), and their behaviour on constructed
degradations."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from latentopt.metrics import visual_quality as vq

# --------------------------------------------------------------------------------------------
# independent reference implementations (numpy only, written from the papers / MATLAB code)


def _luma(img):
    img = img.astype(float)
    return 0.299 * img[..., 0] + 0.587 * img[..., 1] + 0.114 * img[..., 2]


def _shift(x, dy, dx):
    """x[i + dy, j + dx] with zeros outside the image."""
    h, w = x.shape
    p = np.pad(x, 1)
    return p[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]


def _gmsd_reference(pred, ref, c=170.0):
    def grad(y):
        # MATLAB: conv2(Y, ones(2)/4, 'same') = mean of x[i..i+1, j..j+1] (zeros past the end)
        ave = (y + _shift(y, 1, 0) + _shift(y, 0, 1) + _shift(y, 1, 1)) / 4
        y = ave[::2, ::2]
        gx = sum(_shift(y, r, -1) - _shift(y, r, 1) for r in (-1, 0, 1)) / 3
        gy = sum(_shift(y, -1, col) - _shift(y, 1, col) for col in (-1, 0, 1)) / 3
        return np.sqrt(gx**2 + gy**2)

    m1, m2 = grad(_luma(pred)), grad(_luma(ref))
    q = (2 * m1 * m2 + c) / (m1**2 + m2**2 + c)
    return np.sqrt(((q - q.mean()) ** 2).sum() / (q.size - 1))


def _srgb_to_lab(img):
    c = img.astype(float) / 255
    lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    m = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]])
    xyz = lin @ m.T / np.array([0.95047, 1.0, 1.08883])
    d = 6 / 29
    f = np.where(xyz > d**3, np.cbrt(xyz), xyz / (3 * d * d) + 4 / 29)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], axis=-1)


def _ciede2000(lab1, lab2):
    L1, a1, b1 = np.moveaxis(np.asarray(lab1, float), -1, 0)
    L2, a2, b2 = np.moveaxis(np.asarray(lab2, float), -1, 0)
    cbar = (np.hypot(a1, b1) + np.hypot(a2, b2)) / 2
    g = 0.5 * (1 - np.sqrt(cbar**7 / (cbar**7 + 25.0**7)))
    a1p, a2p = (1 + g) * a1, (1 + g) * a2
    c1p, c2p = np.hypot(a1p, b1), np.hypot(a2p, b2)
    h1p = np.degrees(np.arctan2(b1, a1p)) % 360
    h2p = np.degrees(np.arctan2(b2, a2p)) % 360
    dL, dC = L2 - L1, c2p - c1p
    dh = h2p - h1p
    dh = np.where(dh > 180, dh - 360, np.where(dh < -180, dh + 360, dh))
    dh = np.where(c1p * c2p == 0, 0, dh)
    dH = 2 * np.sqrt(c1p * c2p) * np.sin(np.radians(dh / 2))
    Lbar, Cbar = (L1 + L2) / 2, (c1p + c2p) / 2
    hsum = h1p + h2p
    hbar = np.where(np.abs(h1p - h2p) <= 180, hsum / 2, np.where(hsum < 360, (hsum + 360) / 2, (hsum - 360) / 2))
    hbar = np.where(c1p * c2p == 0, hsum, hbar)
    T = 1 - 0.17 * np.cos(np.radians(hbar - 30)) + 0.24 * np.cos(np.radians(2 * hbar)) + 0.32 * np.cos(np.radians(3 * hbar + 6)) - 0.20 * np.cos(np.radians(4 * hbar - 63))
    dtheta = 30 * np.exp(-(((hbar - 275) / 25) ** 2))
    rc = 2 * np.sqrt(Cbar**7 / (Cbar**7 + 25.0**7))
    sl = 1 + 0.015 * (Lbar - 50) ** 2 / np.sqrt(20 + (Lbar - 50) ** 2)
    sc, sh = 1 + 0.045 * Cbar, 1 + 0.015 * Cbar * T
    rt = -np.sin(np.radians(2 * dtheta)) * rc
    return np.sqrt((dL / sl) ** 2 + (dC / sc) ** 2 + (dH / sh) ** 2 + rt * (dC / sc) * (dH / sh))


def _laplacian_variance_reference(img):
    y = _luma(img)
    lap = y[:-2, 1:-1] + y[2:, 1:-1] + y[1:-1, :-2] + y[1:-1, 2:] - 4 * y[1:-1, 1:-1]
    return lap.var()


# --------------------------------------------------------------------------------------------
# test images


def _photo_like(rng, h=61, w=83):
    """Smooth colour gradients + hard-edged shapes + a little texture (odd sizes on purpose)."""
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    img = np.stack([0.6 * xx + 0.2, 0.5 * yy + 0.3, 0.4 * (1 - xx) + 0.1], axis=-1)
    img[10:40, 15:50] = [0.9, 0.2, 0.1]
    img[((xx - 0.7) ** 2 + (yy - 0.4) ** 2) < 0.02] = [0.1, 0.3, 0.8]
    img += 0.03 * rng.standard_normal(img.shape)
    return np.clip(np.round(img * 255), 0, 255).astype(np.uint8)


def _blur(img, sigma):
    out = gaussian_filter(img.astype(float), sigma=(sigma, sigma, 0))
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(61, 83), (64, 48)])
def test_gmsd_matches_transcription_of_authors_code(rng, shape):
    ref = _photo_like(rng, *shape)
    for pred in (_blur(ref, 1.0), np.clip(ref.astype(int) + rng.integers(-20, 21, ref.shape), 0, 255).astype(np.uint8)):
        assert vq.gmsd(pred, ref) == pytest.approx(_gmsd_reference(pred, ref), rel=1e-10)


def test_ciede2000_transcription_reproduces_sharma_table():
    # (Lab1, Lab2, published Delta E00): pairs 1, 7, 17 and 25 of Sharma, Wu & Dalal (2005), Table 1
    pairs = [
        ((50.0, 2.6772, -79.7751), (50.0, 0.0, -82.7485), 2.0425),
        ((50.0, 0.0, 0.0), (50.0, -1.0, 2.0), 2.3669),
        ((50.0, 2.5, 0.0), (73.0, 25.0, -18.0), 27.1492),
        ((60.2574, -34.0099, 36.2677), (60.4626, -34.1751, 39.4387), 1.2644),
    ]
    for lab1, lab2, expected in pairs:
        assert _ciede2000(np.array(lab1), np.array(lab2)) == pytest.approx(expected, abs=1e-4)


def test_delta_e00_matches_independent_srgb_lab_ciede2000(rng):
    ref = _photo_like(rng)
    pred = np.clip(ref.astype(int) + np.array([12, -8, 5]) + rng.integers(-6, 7, ref.shape), 0, 255).astype(np.uint8)
    expected = float(np.mean(_ciede2000(_srgb_to_lab(ref), _srgb_to_lab(pred))))
    # the reference uses the 4-digit IEC 61966-2-1 matrix, skimage a 6-digit one
    assert vq.delta_e00(pred, ref) == pytest.approx(expected, rel=2e-3)


def test_sharpness_ratio_matches_explicit_laplacian(rng):
    ref = _photo_like(rng)
    pred = _blur(ref, 0.8)
    assert vq.laplacian_variance(ref) == pytest.approx(_laplacian_variance_reference(ref), rel=1e-12)
    assert vq.sharpness_ratio(pred, ref) == pytest.approx(_laplacian_variance_reference(pred) / _laplacian_variance_reference(ref), rel=1e-12)


def test_identical_images_are_perfect(rng):
    ref = _photo_like(rng)
    m = vq.visual_metrics(ref, ref)
    assert m["gmsd"] == 0.0 and m["delta_e00"] == 0.0 and m["sharpness_ratio"] == 1.0


def test_blur_lowers_sharpness_and_worsens_gmsd_monotonically(rng):
    ref = _photo_like(rng)
    sigmas = (0.6, 1.2, 2.4)
    gm = [vq.gmsd(_blur(ref, s), ref) for s in sigmas]
    sr = [vq.sharpness_ratio(_blur(ref, s), ref) for s in sigmas]
    assert 0 < gm[0] < gm[1] < gm[2]
    assert 1 > sr[0] > sr[1] > sr[2] > 0


def test_noise_raises_sharpness_ratio_above_one(rng):
    ref = _blur(_photo_like(rng), 1.5)
    noisy = np.clip(ref.astype(int) + rng.integers(-15, 16, ref.shape), 0, 255).astype(np.uint8)
    assert vq.sharpness_ratio(noisy, ref) > 1


def test_colour_shift_grows_delta_e_but_not_edges(rng):
    ref = _photo_like(rng)
    shifts = [np.clip(ref.astype(int) + np.array([d, 0, -d]), 0, 255).astype(np.uint8) for d in (4, 12)]
    de = [vq.delta_e00(p, ref) for p in shifts]
    assert 0 < de[0] < de[1]
    assert vq.gmsd(shifts[1], ref) < vq.gmsd(_blur(ref, 1.2), ref)


def test_flat_original_gives_nan_ratio_and_bad_input_is_named():
    flat = np.full((16, 16, 3), 128, np.uint8)
    assert np.isnan(vq.sharpness_ratio(flat, flat))
    with pytest.raises(ValueError, match="pred must be a uint8"):
        vq.visual_metrics(flat.astype(float), flat)
    with pytest.raises(ValueError, match="shapes differ"):
        vq.visual_metrics(flat, flat[:8])


def test_success_criteria_use_directional_visual_metrics_only():
    import pandas as pd

    from latentopt.analysis.criteria import success_criteria
    from latentopt.workflow.analysis_settings import SummarySettings
    from latentopt.workflow.synthetic import SyntheticParts

    settings = SummarySettings(experiment_id="t", synthetic=SyntheticParts(), n_boot=10, fid_n_boot=10, seed=0, alpha=0.05,
                               min_success_rate=0.9, min_fid_improvement=0.1, time_budget_hours=1,
                               objectives={"psnr": frozenset({"psnr", "mse"})}, uncalibrated=frozenset(), lpips_calibrated=True,
                               splits=("test",), limit_per_split=None, preprocess={"mode": "center_crop", "multiple": 8, "size": 512, "crop_box": None})
    table = pd.DataFrame([{"dataset": d, "split": "test", "image_id": "a", "status": "ok", "time_s": 1.0} for d in ("baseline", "psnr")])
    cross = {"datasets": {d: {"all": {}} for d in ("baseline", "psnr")}}
    row = {"a": "psnr", "b": "baseline", "p_wilcoxon": 0.001, "n": 20, "n_zero": 0}
    tests = {"gmsd": {"all": [{**row, "mean_diff": -0.02}]}, "sharpness_ratio": {"all": [{**row, "mean_diff": 0.3}]}}
    sig = success_criteria(settings, table, ["baseline", "psnr"], cross, tests)["psnr"]["significance"]
    assert sig["value"] == ["gmsd"] and [d["metric"] for d in sig["detail"]] == ["gmsd"]
