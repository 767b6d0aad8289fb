"""Tests for latentopt.metrics.fid and .inception: FID/KID numerics against independent references, and the
Inception wrapper with synthetic (seeded random) weights -- the real FID weights are not on
disk in the test environment and nothing may be downloaded."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import linalg

from latentopt.metrics import fid, inception
from latentopt.workflow.weights import MissingWeightsError

FID_FILE = "pt_inception-2015-12-05-6726825d.pth"


def _reference_fd(x: np.ndarray, y: np.ndarray) -> float:
    """Independent reference: symmetric form Tr((S1^1/2 S2 S1^1/2)^1/2) with scipy sqrtm."""
    mu1, mu2 = x.mean(0), y.mean(0)
    s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    root1 = np.real(linalg.sqrtm(s1))
    inner = np.real(linalg.sqrtm(root1 @ s2 @ root1))
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(inner))


def _feature_like(rng, n: int, d: int, k: int = 6) -> np.ndarray:
    """Non-negative, correlated, low-rank-plus-noise features (like pooled ReLU outputs)."""
    z = rng.normal(size=(n, k))
    w = rng.normal(size=(k, d))
    return np.maximum(z @ w / 2 + 0.3 * rng.normal(size=(n, d)), 0.0)


# ---------------------------------------------------------------------------- Frechet distance

def test_frechet_identical_is_zero(rng):
    x = rng.normal(size=(60, 8))
    assert abs(fid.frechet_distance(x, x.copy())) < 1e-8
    assert abs(fid.frechet_distance(x, x.copy(), method="exact")) < 1e-8


def test_frechet_matches_closed_form_sample_statistics(rng):
    d = 5
    a = rng.normal(size=(d, d))
    x = rng.normal(size=(400, d))
    y = rng.normal(size=(400, d)) @ a + 0.7
    ref = _reference_fd(x, y)
    assert fid.frechet_distance(x, y) == pytest.approx(ref, rel=1e-8)
    assert fid.frechet_distance(x, y, method="exact") == pytest.approx(ref, rel=1e-8)


def test_frechet_matches_population_closed_form(rng):
    # N(0, I) vs N(m, s^2 I): FID = ||m||^2 + d (1 - s)^2.
    d, n, s = 4, 40_000, 1.5
    m = np.array([0.5, -0.5, 1.0, 0.0])
    x = rng.normal(size=(n, d))
    y = m + s * rng.normal(size=(n, d))
    expected = float(m @ m + d * (1 - s) ** 2)  # 2.5
    assert fid.frechet_distance(x, y) == pytest.approx(expected, abs=0.05)


def test_exact_method_when_n_below_dim(rng):
    # n < d: singular covariances, the regime of 500 images x 2048 features. pytorch-fid's
    # sqrtm of the singular product S1 S2 is only accurate to ~1e-6 relative here; the Gram
    # form matches a 40-digit evaluation of the nuclear-norm identity.
    mpmath = pytest.importorskip("mpmath")
    n = 40
    x = _feature_like(rng, n, 96)
    y = x + 0.2 * rng.normal(size=x.shape)
    exact = fid.frechet_distance(x, y, method="exact")
    assert exact == pytest.approx(fid.frechet_distance(x, y), rel=1e-5)
    xc, yc = x - x.mean(0), y - y.mean(0)
    with mpmath.workdps(40):
        sv = mpmath.svd_r(mpmath.matrix((xc @ yc.T).tolist()), compute_uv=False)
        dm = x.mean(0) - y.mean(0)
        ref = (mpmath.mpf(float(dm @ dm)) + mpmath.mpf(float((xc**2).sum() / (n - 1)))
               + mpmath.mpf(float((yc**2).sum() / (n - 1))) - 2 * sum(sv) / (n - 1))
    assert exact == pytest.approx(float(ref), rel=1e-11)


@pytest.mark.parametrize("n,d", [(30, 64), (80, 6)])  # Gram branch and D x D branch
def test_bootstrap_replicate_equals_fid_of_resampled_rows(rng, n, d):
    x = _feature_like(rng, n, d)
    y = x + 0.3 * rng.normal(size=x.shape)
    idx = rng.integers(0, n, size=n)
    w = np.bincount(idx, minlength=n)
    replicate = fid._PairedFD(x, y)(w)
    assert replicate == pytest.approx(fid.frechet_distance(x[idx], y[idx]), rel=1e-6)


def test_fid_with_ci_contains_point_estimate(rng):
    x = _feature_like(rng, 60, 32)
    y = x + 0.3 * rng.normal(size=x.shape)
    r = fid.fid_with_ci(x, y, n_boot=100, seed=3)
    assert set(r) >= {"fid", "ci95_low", "ci95_high", "n", "n_boot"}
    assert r["n"] == 60 and r["n_boot"] == 100
    assert r["fid"] == pytest.approx(fid.frechet_distance(x, y))
    assert r["ci95_low"] < r["fid"] < r["ci95_high"]
    # Duplicated images inflate bootstrap FIDs: the raw distribution lies above the estimate.
    assert r["boot_bias"] > 0
    assert r["ci95_high"] - r["ci95_low"] == pytest.approx(
        r["ci95_high_raw"] - r["ci95_low_raw"])
    assert fid.fid_with_ci(x, y, n_boot=100, seed=3) == r  # seeded
    with pytest.raises(ValueError):
        fid.fid_with_ci(x, y[:-1], n_boot=10)


def test_fid_difference_ci(rng):
    x = _feature_like(rng, 60, 32)
    close = x + 0.1 * rng.normal(size=x.shape)
    far = x + 0.6 * rng.normal(size=x.shape)
    r = fid.fid_difference_ci(x, close, far, n_boot=100, seed=0)
    assert r["diff"] == pytest.approx(r["fid_a"] - r["fid_b"]) and r["diff"] < 0
    assert r["ci95_low"] <= r["diff"] <= r["ci95_high"] < 0
    assert r["p_boot"] < 0.05
    same = fid.fid_difference_ci(x, close, close.copy(), n_boot=50, seed=0)
    assert same["diff"] == pytest.approx(0.0, abs=1e-9)
    assert same["p_boot"] == 1.0


# ---------------------------------------------------------------------------- KID

def _brute_force_mmd2(x, y, paired):
    d, m = x.shape[1], x.shape[0]

    def k(u, v):
        return (u @ v / d + 1.0) ** 3

    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    if paired:
        xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    else:
        xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / m**2
    return xx + yy - 2 * xy


@pytest.mark.parametrize("paired", [False, True])
def test_kid_matches_brute_force_on_full_sets(rng, paired):
    x = rng.normal(size=(7, 5))
    y = rng.normal(size=(7, 5)) + 0.5
    r = fid.kid(x, y, subset_size=7, n_subsets=3, paired=paired)
    assert r["kid_mean"] == pytest.approx(_brute_force_mmd2(x, y, paired), rel=1e-10)
    assert r["kid_std"] == pytest.approx(0.0, abs=1e-12)  # every subset is the full set
    assert r["subset_size"] == 7


def test_kid_same_distribution_near_zero_and_shift_positive(rng):
    d = 32
    x = rng.normal(size=(200, d))
    y = rng.normal(size=(200, d))
    shifted = rng.normal(size=(200, d)) + 0.5
    same = fid.kid(x, y, subset_size=50, n_subsets=50, seed=0)
    diff = fid.kid(x, shifted, subset_size=50, n_subsets=50, seed=0)
    assert abs(same["kid_mean"]) < 0.05 * diff["kid_mean"]
    assert diff["kid_mean"] > 10 * diff["kid_std"] / np.sqrt(50)
    assert diff["kid_mean"] > 0.1


def test_kid_small_n_and_paired_bias(rng):
    r = fid.kid(rng.normal(size=(2, 4)), rng.normal(size=(3, 4)))
    assert r["subset_size"] == 2 and np.isfinite(r["kid_mean"])
    with pytest.raises(ValueError):
        fid.kid(rng.normal(size=(1, 4)), rng.normal(size=(3, 4)))
    # Reconstruction-like pairs: the unpaired estimator is pulled below 0 by same-image cross
    # terms; the paired U-statistic is not.
    x = _feature_like(rng, 100, 64)
    y = x + 0.05 * rng.normal(size=x.shape)
    unpaired = fid.kid(x, y, subset_size=100, n_subsets=1)
    paired = fid.kid(x, y, subset_size=100, n_subsets=1, paired=True)
    assert unpaired["kid_mean"] < 0
    assert abs(paired["kid_mean"]) < 0.1 * abs(unpaired["kid_mean"])


# ---------------------------------------------------------------------------- Inception

@pytest.fixture(scope="module")
def synthetic_model():
    model, calibrated = inception.load_inception(synthetic=True, seed=0)
    assert calibrated is False
    return model


def test_synthetic_inception_mixed_orientations(synthetic_model, tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    land_a = rng.integers(0, 256, size=(48, 64, 3), dtype=np.uint8)
    land_b = rng.integers(0, 256, size=(48, 64, 3), dtype=np.uint8)
    portrait = rng.integers(0, 256, size=(64, 48, 3), dtype=np.uint8)
    feats = inception.inception_features([land_a, land_b, portrait], synthetic_model, batch_size=16)
    assert feats.shape == (3, 2048) and np.all(np.isfinite(feats))
    assert feats.std() > 0 and not np.allclose(feats[0], feats[2])
    # One at a time, from a file path, in another order: the same rows.
    path = tmp_path / "portrait.png"
    Image.fromarray(portrait).save(path)
    again = inception.inception_features([str(path), land_a], synthetic_model, batch_size=1)
    np.testing.assert_allclose(again, feats[[2, 0]], rtol=1e-4, atol=1e-5)
    assert inception.inception_features([], synthetic_model).shape == (0, 2048)


def test_synthetic_inception_deterministic(synthetic_model):
    rng_state = torch.get_rng_state()
    again, calibrated = inception.load_inception(synthetic=True, seed=0)
    assert calibrated is False and not again.training
    assert torch.equal(torch.get_rng_state(), rng_state)  # global RNG untouched
    sd0, sd1 = synthetic_model.state_dict(), again.state_dict()
    assert sd0.keys() == sd1.keys()
    assert all(torch.equal(sd0[k], sd1[k]) for k in sd0)
    other, _ = inception.load_inception(synthetic=True, seed=1)
    w = "blocks.0.0.conv.weight"
    assert not torch.equal(sd0[w], other.state_dict()[w])


def test_missing_weights_raise_before_download(monkeypatch, tmp_path):
    import pytorch_fid.inception as pfi

    def no_download(*args, **kwargs):
        raise AssertionError("attempted to download the FID weights")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(pfi, "load_state_dict_from_url", no_download)
    with pytest.raises(MissingWeightsError, match=FID_FILE):
        inception.load_inception(synthetic=False)


def test_cached_weights_are_loaded_from_torch_home(monkeypatch, tmp_path):
    import pytorch_fid.inception as pfi

    # Stand-in checkpoint with the real file's layout: the state dict of pytorch-fid's
    # fid_inception_v3() network (built here without weights, then perturbed).
    built = []
    original = pfi._inception_v3
    monkeypatch.setattr(pfi, "_inception_v3",
                        lambda *a, **k: built.append(original(*a, **k)) or built[-1])
    monkeypatch.setattr(pfi, "load_state_dict_from_url", lambda *a, **k: built[-1].state_dict())
    pfi.fid_inception_v3()
    monkeypatch.undo()
    stand_in = {k: v + 0.01 if v.is_floating_point() else v
                for k, v in built[-1].state_dict().items()}
    checkpoints = tmp_path / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    torch.save(stand_in, checkpoints / FID_FILE)

    def no_download(*args, **kwargs):
        raise AssertionError("attempted to download the FID weights")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(pfi, "load_state_dict_from_url", no_download)
    model, calibrated = inception.load_inception(synthetic=False)
    assert calibrated is True and not model.training
    assert torch.equal(model.state_dict()["blocks.0.0.conv.weight"],
                       stand_in["Conv2d_1a_3x3.conv.weight"])
    assert torch.equal(model.state_dict()["blocks.3.1.branch_pool.conv.weight"],
                       stand_in["Mixed_7b.branch_pool.conv.weight"])
