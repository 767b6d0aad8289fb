"""latentopt.optimize.losses: per-image values against numpy / scikit-image / the lpips package, gradients,
batching, the registry and spec errors, and the LPIPS network's weights handling."""

from __future__ import annotations

import lpips as lpips_pkg
import numpy as np
import pytest
import scipy.ndimage as ndi
import skimage.data
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from latentopt.optimize import losses as L
from latentopt.metrics import lpips_network as N
from latentopt.metrics import ssim as S
from latentopt.workflow.weights import MissingWeightsError

# A random trunk keeps every test offline (no torchvision checkpoint on this machine); the
# calibrated linear layers ship with the lpips wheel.
LPIPS_ALEX = {"name": "lpips", "net": "alex", "random_trunk": True}
LPIPS_VGG = {"name": "lpips", "net": "vgg", "random_trunk": True}

ALL_SPECS = [
    {"name": "mse"},
    {"name": "l1"},
    {"name": "psnr"},
    {"name": "ssim"},
    {"name": "improved_ssim", "window_size": 7, "sigma": 1.5},
    {"name": "ms_ssim"},
    LPIPS_ALEX,
    {"name": "weighted", "terms": [{"name": "mse", "weight": 1.0},
                                   {"name": "ssim", "weight": 0.5}]},
]


def spec_id(spec):
    return spec["name"] if spec["name"] != "improved_ssim" else "improved_ssim_7"


def photo_batch(size: int = 176, noise: float = 0.05, seed: int = 0, dtype=torch.float64):
    """[2, 3, size, size] crops of two real photos and degraded versions (pred, target)."""
    rng = np.random.default_rng(seed)
    refs = [skimage.data.astronaut()[60:60 + size, 180:180 + size],
            skimage.data.chelsea()[40:40 + size, 120:120 + size]]
    target = np.stack(refs).astype(np.float64) / 255.0
    pred = ndi.gaussian_filter(target, sigma=(0, 0.8, 0.8, 0))
    pred = np.clip(pred + noise * rng.standard_normal(pred.shape), 0, 1)
    t = lambda a: torch.from_numpy(a).permute(0, 3, 1, 2).to(dtype).contiguous()  # noqa: E731
    return t(pred), t(target)


def np_img(t: torch.Tensor) -> np.ndarray:
    return t.detach().permute(1, 2, 0).numpy().astype(np.float64)


# ------------------------------------------------------------------ values vs references


def test_mse_l1_psnr_match_numpy_and_skimage(rng):
    pred = torch.from_numpy(rng.random((3, 3, 20, 17)))
    target = torch.from_numpy(rng.random((3, 3, 20, 17)))
    mse, l1, psnr = L.mse(pred, target), L.l1(pred, target), L.psnr(pred, target)
    for i in range(3):
        p, t = pred[i].numpy(), target[i].numpy()
        m = np.mean((p - t) ** 2)
        assert mse[i].item() == pytest.approx(m, rel=1e-13)
        assert l1[i].item() == pytest.approx(np.mean(np.abs(p - t)), rel=1e-13)
        assert psnr[i].item() == pytest.approx(10 * np.log10(m + 1e-8), rel=1e-12)
        # -loss is PSNR in dB; the 1e-8 is negligible at this error level
        assert -psnr[i].item() == pytest.approx(peak_signal_noise_ratio(t, p, data_range=1.0),
                                                abs=1e-5)


def test_psnr_loss_is_finite_at_identity():
    x = torch.rand(2, 3, 8, 8, dtype=torch.float64)
    assert torch.allclose(L.psnr(x, x), torch.full((2,), -80.0, dtype=torch.float64))


def test_ssim_losses_match_skimage_on_photos():
    pred, target = photo_batch(size=64)
    for i in range(2):
        p, t = np_img(pred[i]), np_img(target[i])
        for sigma, loss in [(1.5, L.ssim(pred, target)),
                            (1.5, L.improved_ssim(pred, target)),
                            (2.0, L.improved_ssim(pred, target, window_size=15, sigma=2.0))]:
            ref = structural_similarity(t, p, gaussian_weights=True, sigma=sigma,
                                        use_sample_covariance=False, data_range=1.0,
                                        channel_axis=-1)
            assert 0.05 < 1 - ref < 0.8
            assert loss[i].item() == pytest.approx(1 - ref, abs=1e-9)


def test_improved_ssim_7_window_matches_scipy_reference():
    # skimage fixes the window at 11 taps for sigma 1.5, so build the 7/1.5 reference with scipy:
    # radius int(2.0 * 1.5 + 0.5) = 3 -> 7 taps; crop the 3-pixel border (valid positions).
    pred, target = photo_batch(size=40)
    c1, c2 = 1e-4, 9e-4
    for i in range(2):
        p, t = np_img(pred[i]), np_img(target[i])
        f = lambda a: ndi.gaussian_filter(a, (1.5, 1.5, 0), truncate=2.0)[3:-3, 3:-3]  # noqa: E731
        mp, mt = f(p), f(t)
        spp, stt, spt = f(p * p) - mp**2, f(t * t) - mt**2, f(p * t) - mp * mt
        ssim_map = (2 * mp * mt + c1) * (2 * spt + c2) / ((mp**2 + mt**2 + c1) * (spp + stt + c2))
        got = L.improved_ssim(pred, target, window_size=7, sigma=1.5)[i].item()
        assert got == pytest.approx(1 - ssim_map.mean(), abs=1e-10)


def test_ms_ssim_loss_is_one_minus_ms_ssim():
    pred, target = photo_batch()
    expected = 1 - S.ms_ssim(pred, target)
    assert torch.allclose(L.ms_ssim(pred, target), expected, rtol=0, atol=1e-15)
    assert ((expected > 0.01) & (expected < 0.9)).all()


# ------------------------------------------------------------------ LPIPS


@pytest.fixture(scope="module")
def alex():
    return N.lpips_network("alex", random_trunk=True)


def test_lpips_loss_equals_lpips_package_with_im2tensor(alex):
    # Independent construction of the same network: the package itself, under the documented
    # seed, called on lpips.im2tensor inputs (x / 127.5 - 1 on 8-bit images).
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(N.RANDOM_TRUNK_SEED)
        direct_net = lpips_pkg.LPIPS(pretrained=True, net="alex", pnet_rand=True, verbose=False)
    direct_net.eval()
    ours_sd, direct_sd = alex.state_dict(), direct_net.state_dict()
    assert ours_sd.keys() == direct_sd.keys()
    assert all(torch.equal(ours_sd[k], direct_sd[k]) for k in ours_sd)

    a8 = skimage.data.coffee()[100:164, 200:264]
    rng = np.random.default_rng(1)
    b8 = np.clip(a8 + rng.normal(0, 20, a8.shape), 0, 255).astype(np.uint8)
    with torch.no_grad():
        direct = direct_net(lpips_pkg.im2tensor(b8), lpips_pkg.im2tensor(a8)).item()
    to01 = lambda u8: torch.from_numpy(u8 / 255.0).permute(2, 0, 1)[None].float()  # noqa: E731
    ours = L.lpips(to01(b8), to01(a8), net="alex", random_trunk=True)
    assert ours.shape == (1,)
    assert direct > 1e-3
    assert ours.item() == pytest.approx(direct, rel=1e-5, abs=1e-7)


def test_lpips_network_cached_eval_frozen(alex):
    assert N.lpips_network("alex", True, "cpu") is alex
    assert N.lpips_network("alex", True, torch.device("cpu")) is alex
    assert not alex.training
    assert all(not p.requires_grad for p in alex.parameters())


def test_lpips_linear_layers_are_the_calibrated_ones(alex):
    shipped = torch.load(lpips_pkg.__path__[0] + "/weights/v0.1/alex.pth", map_location="cpu")
    sd = alex.state_dict()
    for k, v in shipped.items():
        assert torch.equal(sd[k], v), k


def test_missing_trunk_weights_raise_before_any_download(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(N, "_LPIPS_CACHE", {})
    with pytest.raises(MissingWeightsError, match="alexnet-owt-7be5be79.pth"):
        N.lpips_network("alex", random_trunk=False)
    with pytest.raises(MissingWeightsError, match="vgg16-397923af.pth"):
        L.build_loss({"name": "lpips", "net": "vgg"})
    with pytest.raises(MissingWeightsError, match=str(tmp_path)):
        L.build_loss({"name": "weighted", "terms": [{"name": "lpips", "weight": 1.0}]})
    assert list(tmp_path.rglob("*")) == []  # torchvision never started a download
    assert N.lpips_weight_files("alex", True) == []
    assert N.lpips_weight_files("vgg")[0].path == tmp_path / "hub/checkpoints/vgg16-397923af.pth"


# ------------------------------------------------------------------ every loss


@pytest.mark.parametrize("spec", ALL_SPECS, ids=spec_id)
def test_every_loss_per_image_batch_and_gradients(spec):
    dtype = torch.float32  # the optimiser's dtype (float64 paths are checked against references)
    loss = L.build_loss(spec)
    size = 176 if spec["name"] == "ms_ssim" else 64  # MS-SSIM needs 176 x 176
    pred, target = photo_batch(size=size, dtype=dtype)
    batch = loss(pred, target)
    assert batch.shape == (2,) and batch.dtype == dtype
    for i in range(2):
        single = loss(pred[i:i + 1], target[i:i + 1])
        assert single.shape == (1,)
        assert single.item() == pytest.approx(batch[i].item(), rel=1e-5, abs=1e-9)

    # lower is better: identity scores below the degraded pair, which scores below a worse one
    worse, _ = photo_batch(size=size, noise=0.2, dtype=dtype)
    at_identity = loss(target, target)
    assert (at_identity < batch).all() and (batch < loss(worse, target)).all()

    # finite gradients, including at pred == target (psnr: mse = 0; ssim: SSIM = 1)
    for start in (pred, target):
        p = start.clone().requires_grad_(True)
        loss(p, target).sum().backward()
        assert p.grad is not None and torch.isfinite(p.grad).all()
        if start is pred:
            assert p.grad.abs().sum() > 0


def test_summed_batch_loss_gives_each_image_its_own_gradient():
    loss = L.build_loss({"name": "ssim"})
    pred, target = photo_batch(size=32)
    p = pred.clone().requires_grad_(True)
    loss(p, target).sum().backward()
    q = pred[1:2].clone().requires_grad_(True)
    loss(q, target[1:2]).sum().backward()
    assert torch.allclose(p.grad[1:2], q.grad, rtol=0, atol=1e-15)


def test_weighted_equals_weighted_sum_of_components():
    spec = {"name": "weighted", "terms": [
        {"name": "mse", "weight": 1.0},
        {**LPIPS_VGG, "weight": 0.1},
        {"name": "ssim", "weight": 0.5},
        {"name": "improved_ssim", "weight": 2, "window_size": 7, "sigma": 1.5},
    ]}
    loss = L.build_loss(spec)
    pred, target = photo_batch(size=32, dtype=torch.float32)
    expected = (L.mse(pred, target)
                + 0.1 * L.lpips(pred, target, net="vgg", random_trunk=True)
                + 0.5 * L.ssim(pred, target)
                + 2.0 * L.improved_ssim(pred, target, window_size=7, sigma=1.5))
    got = loss(pred, target)
    assert got.shape == (2,)
    assert torch.allclose(got, expected, rtol=1e-6, atol=0)


def test_weighted_components_and_nesting():
    pred, target = photo_batch(size=24)
    inner = {"name": "weighted", "weight": 3.0, "terms": [{"name": "l1", "weight": 2.0}]}
    loss = L.build_loss({"name": "weighted", "terms": [{"name": "psnr", "weight": 0.5}, inner]})
    comps = loss.components(pred, target)
    assert torch.equal(comps[0], L.psnr(pred, target))
    assert torch.allclose(comps[1], 2.0 * L.l1(pred, target), rtol=1e-15, atol=0)
    assert torch.allclose(loss(pred, target),
                          0.5 * L.psnr(pred, target) + 6.0 * L.l1(pred, target), rtol=1e-14)


# ------------------------------------------------------------------ registry and specs


def test_build_loss_binds_parameters():
    loss = L.build_loss({"name": "improved_ssim", "window_size": 15, "sigma": 2.0})
    pred, target = photo_batch(size=40)
    assert torch.equal(loss(pred, target),
                       L.improved_ssim(pred, target, window_size=15, sigma=2.0))
    default = L.build_loss({"name": "improved_ssim"})
    assert torch.equal(default(pred, target), L.ssim(pred, target))


def test_registry_names():
    assert set(L.LOSSES) == {"mse", "l1", "psnr", "ssim", "improved_ssim", "ms_ssim", "lpips",
                             "weighted"}


def test_adding_a_loss_is_one_function_and_one_entry(monkeypatch):
    def cubed(pred, target, *, power: float = 3.0):
        return (pred - target).abs().pow(power).flatten(1).mean(1)

    monkeypatch.setitem(L.LOSSES, "cubed", L.loss_factory(cubed))
    pred, target = photo_batch(size=16)
    loss = L.build_loss({"name": "cubed", "power": 4.0})
    assert torch.allclose(loss(pred, target), ((pred - target) ** 4).flatten(1).mean(1))
    with pytest.raises(ValueError, match=r"unknown parameter.*'exponent'.*valid parameters: power"):
        L.build_loss({"name": "cubed", "exponent": 2})


@pytest.mark.parametrize("spec, pattern", [
    ({"name": "nope"}, r"unknown loss 'nope'; valid names: .*improved_ssim.*weighted"),
    ({"name": "improved_ssim", "window": 11},
     r"unknown parameter\(s\) \['window'\] for loss 'improved_ssim'; "
     r"valid parameters: sigma, window_size"),
    ({"name": "mse", "weight": 1.0}, r"\['weight'\] for loss 'mse'; valid parameters: none"),
    ({"name": "lpips", "network": "alex"}, r"'network'.*valid parameters: net, random_trunk"),
    ({"name": "lpips", "net": "squeeze", "random_trunk": True}, r"one of \['alex', 'vgg'\]"),
    ({"name": "lpips", "net": "alex", "random_trunk": "yes"}, r"random_trunk must be a bool"),
    ({"name": "improved_ssim", "window_size": 8}, r"odd"),
    ({"name": "improved_ssim", "sigma": 0}, r"sigma must be > 0"),
    ({"window_size": 11}, r"has no 'name'"),
    ("mse", r"must be a dict"),
    ({"name": "weighted"}, r"needs 'terms'"),
    ({"name": "weighted", "terms": []}, r"needs 'terms'"),
    ({"name": "weighted", "terms": [{"name": "mse"}]},
     r"term 0 must be a dict with 'name', 'weight'"),
    ({"name": "weighted", "terms": [{"name": "mse", "weight": "1"}]}, r"weight must be a number"),
    ({"name": "weighted", "terms": [{"name": "mse", "weight": 1}, {"name": "l2", "weight": 1}]},
     r"unknown loss 'l2'"),
    ({"name": "weighted", "terms": [], "extra": 1}, r"\['extra'\] for loss 'weighted'"),
])
def test_bad_specs_raise_value_error(spec, pattern):
    with pytest.raises(ValueError, match=pattern):
        L.build_loss(spec)


def test_loss_uses_lpips():
    assert L.loss_uses_lpips({"name": "lpips", "net": "vgg"})
    assert not L.loss_uses_lpips({"name": "improved_ssim"})
    assert L.loss_uses_lpips({"name": "weighted", "terms": [
        {"name": "mse", "weight": 1.0}, {"name": "lpips", "weight": 0.1}]})
    assert not L.loss_uses_lpips({"name": "weighted", "terms": [{"name": "mse", "weight": 1.0}]})
    assert L.loss_uses_lpips({"name": "weighted", "terms": [{"name": "weighted", "weight": 1.0,
                                                             "terms": [LPIPS_ALEX]}]})
