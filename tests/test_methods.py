"""The optimization methods (losses.<arm>.method) and learning-rate schedules (losses.<arm>.schedule),
judged against plain transcriptions of the published update rules (smhongok/dec-inv,
src/stable_diffusion/inverse_stable_diffusion.py: ``decoder_inv_nograd``, ``decoder_inv`` and
``get_lr_cosine_with_warmup``), written here independently of the library's code."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from conftest import make_config, seed_config

from latentopt.core.fileio import read_json, sha256_json
from latentopt.models.autoencoders import load_autoencoder
from latentopt.optimize.losses import build_loss
from latentopt.optimize.optimizer import optimize_latents
from latentopt.optimize.schedules import learning_rate
from latentopt.workflow.config import ConfigError, arm_settings, load_schema, validate_config
from latentopt.workflow.settings import AdamSettings, StopRule

NEW_KEYS = ("method", "schedule", "warmup_fraction")


# -- transcriptions of the published code ---------------------------------------------------------

def get_lr_cosine_with_warmup(i, num_steps=100, num_warmup_steps=10, lr_max=0.01):
    """dec-inv's schedule, verbatim."""
    assert i >= 0 and i < num_steps
    if i < num_warmup_steps:
        lr = (i + 1) / num_warmup_steps * lr_max
    else:
        lr = lr_max * (1 + math.cos(math.pi * (i - num_warmup_steps) / (num_steps - num_warmup_steps))) / 2
    return lr


def decoder_inv_nograd_lr(lr, num_steps):
    """The rate decoder_inv_nograd's loop uses at step i (called in order i = 0, 1, ...), verbatim:
    the schedule's length capped at 100 steps, the rate held from step 0.8 * that length on."""
    if num_steps > 100:
        num_steps_cutoff = 100
    else:
        num_steps_cutoff = num_steps
    num_warmup_steps = num_steps_cutoff // 10
    state = {}

    def lr_now(i):
        if i < 0.8 * num_steps_cutoff:
            state["lr_min"] = get_lr_cosine_with_warmup(i, num_steps=num_steps_cutoff, num_warmup_steps=num_warmup_steps, lr_max=lr)
            return state["lr_min"]
        return state["lr_min"]

    return lr_now


def lr_of(schedule, lr, num_steps):
    """The rate of step i: constant, dec-inv's get_lr_cosine_with_warmup with num_warmup_steps =
    num_steps // 10, or the rate decoder_inv_nograd's loop uses (dec_inv)."""
    if schedule == "constant":
        return lambda i: lr
    if schedule == "dec_inv":
        return decoder_inv_nograd_lr(lr, num_steps)
    return lambda i: get_lr_cosine_with_warmup(i, num_steps=num_steps, num_warmup_steps=num_steps // 10, lr_max=lr)


@torch.inference_mode()
def dec_inv_nograd(encode, decode, x, num_steps, lr_now, beta1=0.9, beta2=0.999, eps=1e-8):
    """decoder_inv_nograd's Adam branch (z0 = E(x), grad = E(D(z)) - z0); every iterate z_0..z_N."""
    z0 = encode(x)
    z = z0.clone()
    m, v = 0, 0
    zs = [z.clone()]
    for i in range(num_steps):
        Dz = decode(z)
        EDz = encode(Dz)
        grad = EDz - z0
        m = beta1 * m + (1 - beta1) * grad
        v = beta2 * v + (1 - beta2) * (grad**2)
        m_corr = m / (1 - beta1 ** (i + 1))
        v_corr = v / (1 - beta2 ** (i + 1))
        z -= lr_now(i) * m_corr / (torch.sqrt(v_corr) + eps)
        zs.append(z.clone())
    return zs


def backprop_adam(loss_fn, decode, x, z0, num_steps, lr_now, beta1=0.9, beta2=0.999, eps=1e-8):
    """decoder_inv's loop (loss of D(z), backward, Adam step) with Adam written out; z_0..z_N."""
    z = z0.clone()
    m, v = 0, 0
    zs = [z.clone()]
    for i in range(num_steps):
        zg = z.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(loss_fn(decode(zg), x).sum(), zg)
        m = beta1 * m + (1 - beta1) * grad
        v = beta2 * v + (1 - beta2) * grad**2
        z = z - lr_now(i) * (m / (1 - beta1 ** (i + 1))) / (torch.sqrt(v / (1 - beta2 ** (i + 1))) + eps)
        zs.append(z.detach().clone())
    return zs


# -- models and images ----------------------------------------------------------------------------

class TinyAutoencoder(torch.nn.Module):
    """A small synthetic autoencoder on 4x4 patches: E = a random linear map to 8 channels,
    D = sigmoid(4 * E's pseudo-inverse), so E(D(z)) = z only where the sigmoid is linear. The
    residual E(D(z)) - E(x) is not 0, and gradient-free inversion lowers it (and the MSE a little)."""

    def __init__(self, seed=0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        w = torch.randn(8, 48, generator=g) / 48**0.5
        self.we = w.reshape(8, 3, 4, 4)
        self.wd = torch.linalg.pinv(w).T.reshape(8, 3, 4, 4)

    def encode(self, x):
        return torch.nn.functional.conv2d(x - 0.5, self.we, stride=4)

    def decode(self, z):
        return torch.sigmoid(4 * torch.nn.functional.conv_transpose2d(z, self.wd, stride=4)).clamp(0, 1)


@pytest.fixture(scope="module")
def tiny():
    return TinyAutoencoder()


@pytest.fixture(scope="module")
def images():
    g = torch.Generator().manual_seed(1)
    x = torch.nn.functional.avg_pool2d(torch.rand(3, 3, 16, 24, generator=g), 3, stride=1, padding=1)
    return ((x - x.mean()) * 3 + 0.5).clamp(0, 1)  # contrast: the sigmoid's non-linear range


@pytest.fixture(scope="module")
def taef2(taef2_dir):
    return load_autoencoder({"kind": "taesd", "encoder": str(taef2_dir / "taef2_encoder.pth"),
                             "decoder": str(taef2_dir / "taef2_decoder.pth"), "variant": "taef2"})


@pytest.fixture(scope="module")
def photo(bsds_root):
    """Centre 64x96 crops of the first two landscape BSDS500 test photos, [2,3,64,96] in [0,1]."""
    from latentopt.data.images import read_rgb

    crops = []
    for path in sorted((bsds_root / "BSDS500" / "data" / "images" / "test").glob("*.jpg")):
        img = read_rgb(path)
        if img.shape[0] > img.shape[1] or len(crops) == 2:
            continue
        h, w = img.shape[0] // 2, img.shape[1] // 2
        crop = np.ascontiguousarray(img[h - 32 : h + 32, w - 48 : w + 48])
        crops.append(torch.from_numpy(crop.astype(np.float32) / 255).permute(2, 0, 1))
    return torch.stack(crops)


def _run(model, x, settings, loss="mse", **kw):
    with torch.no_grad():
        z0 = model.encode(x)
    return optimize_latents(model.decode, x, z0, build_loss({"name": loss}), settings, encode=model.encode, **kw)


def _settings(method, schedule, iterations, lr, **kw):
    return AdamSettings.of(method=method, schedule=schedule, iterations=iterations, lr=lr,
                           stopping=StopRule.of("none"), **kw)


def _agree(model, x, method, schedule, iterations, lr, loss="mse", rtol=1e-4, atol=1e-5, loose=False):
    """The library's run against the transcription: every loss of the trajectory, and the returned
    latent = the transcription's iterate with the lowest loss."""
    settings = _settings(method, schedule, iterations, lr)
    tracks = _run(model, x, settings, loss=loss)
    loss_fn = build_loss({"name": loss})
    with torch.no_grad():
        z0 = model.encode(x)
    if method == "gradient_free":
        zs = dec_inv_nograd(model.encode, model.decode, x, iterations, lr_of(schedule, lr, iterations))
    else:
        zs = backprop_adam(loss_fn, model.decode, x, z0, iterations, lr_of(schedule, lr, iterations))
    with torch.no_grad():
        losses = np.array([loss_fn(model.decode(z), x).numpy() for z in zs])  # [N+1, B]
    for i, track in enumerate(tracks):
        np.testing.assert_allclose(track.history, losses[:, i], rtol=rtol, atol=atol)
        best = int(np.argmin(losses[:, i]))
        # Adam's step is lr * m/sqrt(v) whatever the gradient's size: where a gradient is ~0 (TAEF2's
        # clamped pixels, backprop), rounding can flip its sign and the two runs step up to 2 lr apart
        # there, so the typical latent element must agree, the few others stay within those steps
        diff = (track.best_z - zs[best][i]).abs().flatten()
        q = float(diff.quantile(0.99 if loose else 0.999))
        assert float(diff.median()) < atol and q < (0.1 * lr if loose else atol * 10), (float(diff.median()), q)
        assert float(diff.max()) < 2 * lr * iterations
    return tracks, zs


# -- (a) agreement with the published update rules -------------------------------------------------

@pytest.mark.parametrize("schedule", ["constant", "cosine_warmup"])
@pytest.mark.parametrize("method", ["gradient_free", "backprop"])
def test_methods_follow_the_published_update_rules(tiny, images, method, schedule):
    tracks, zs = _agree(tiny, images, method, schedule, iterations=20, lr=0.05)
    assert all(t.steps == 20 and len(t.history) == 21 for t in tracks)
    assert (tracks[0].residual is not None) == (method == "gradient_free")
    if method == "gradient_free":  # the recorded residual is the transcription's, of z_0..z_19
        with torch.no_grad():
            z0 = tiny.encode(images)
            want = [((tiny.encode(tiny.decode(z)) - z0) ** 2).flatten(1).mean(1).numpy() for z in zs[:-1]]
        np.testing.assert_allclose([t.residual for t in tracks], np.array(want).T, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("schedule", ["constant", "cosine_warmup"])
@pytest.mark.parametrize("method", ["gradient_free", "backprop"])
def test_methods_follow_the_published_update_rules_on_taef2(taef2, photo, method, schedule):
    _agree(taef2, photo, method, schedule, iterations=6, lr=0.01, loss="mse", rtol=2e-4, atol=1e-5,
           loose=method == "backprop")


def test_gradient_free_with_dec_invs_schedule_follows_its_loop(tiny, images):
    """Past the cap: 130 steps, the rate held from step 80 on, as decoder_inv_nograd runs it."""
    _agree(tiny, images, "gradient_free", "dec_inv", iterations=130, lr=0.05)


@pytest.mark.parametrize("iterations", [12, 15])
def test_gradient_free_with_dec_invs_schedule_matches_its_loop_on_taef2(taef2, photo, iterations):
    """gradient_free with the published schedule against a transcription of decoder_inv_nograd on
    TAEF2 crops, to 1e-4: every monitored loss (relative) and the returned latent (absolute). At 15
    steps the hold starts at step 13 (dec-inv's float comparison i < 0.8 * 15)."""
    settings = _settings("gradient_free", "dec_inv", iterations=iterations, lr=0.05)
    tracks = _run(taef2, photo, settings, loss="mse")
    loss_fn = build_loss({"name": "mse"})
    zs = dec_inv_nograd(taef2.encode, taef2.decode, photo, iterations, decoder_inv_nograd_lr(0.05, iterations))
    with torch.no_grad():
        losses = np.array([loss_fn(taef2.decode(z), photo).numpy() for z in zs])
    for i, track in enumerate(tracks):
        np.testing.assert_allclose(track.history, losses[:, i], rtol=1e-4, atol=0)
        best = int(np.argmin(losses[:, i]))
        assert float((track.best_z - zs[best][i]).abs().max()) <= 1e-4


# -- (b) gradient_free does what the paper says on a real photo --------------------------------------

def test_gradient_free_reduces_the_residual_and_improves_psnr_on_taef2(taef2, photo):
    settings = _settings("gradient_free", "cosine_warmup", iterations=30, lr=0.01)  # dec-inv's lr and schedule
    tracks = _run(taef2, photo, settings, loss="psnr")
    best = torch.stack([t.best_z for t in tracks])
    with torch.no_grad():
        z0 = taef2.encode(photo)
        res = lambda z: ((taef2.encode(taef2.decode(z)) - z0) ** 2).flatten(1).mean(1)  # noqa: E731
        psnr = lambda z: -10 * torch.log10(((taef2.decode(z) - photo) ** 2).flatten(1).mean(1))  # noqa: E731
        r0, r1, p0, p1 = res(z0), res(best), psnr(z0), psnr(best)
    assert bool((r1 < 0.8 * r0).all()), (r0, r1)
    assert bool((p1 > p0 + 0.25).all()) and float((p1 - p0).mean()) > 1.0, (p0, p1)  # measured +3.0, +0.75 dB
    for t in tracks:
        assert t.residual[-1] < 0.8 * t.residual[0]


# -- (c) the schedule, step by step -------------------------------------------------------------------

@pytest.mark.parametrize("iterations", [1, 5, 9, 10, 11, 37, 50, 100, 200])
def test_cosine_warmup_is_dec_invs_schedule(iterations):
    ours = learning_rate("cosine_warmup")
    for i in range(iterations):
        want = get_lr_cosine_with_warmup(i, num_steps=iterations, num_warmup_steps=iterations // 10, lr_max=0.01)
        assert ours(i, lr=0.01, iterations=iterations, warmup_fraction=0.1) == pytest.approx(want, rel=1e-12)
    with pytest.raises(ValueError):
        ours(iterations, lr=0.01, iterations=iterations, warmup_fraction=0.1)


@pytest.mark.parametrize("iterations", [1, 4, 5, 9, 10, 15, 30, 37, 99, 100, 101, 150, 250])
def test_dec_inv_is_the_rate_decoder_inv_nograd_uses(iterations):
    ours, theirs = learning_rate("dec_inv"), decoder_inv_nograd_lr(0.01, iterations)
    got = [ours(i, lr=0.01, iterations=iterations, warmup_fraction=0.1) for i in range(iterations)]
    want = [theirs(i) for i in range(iterations)]
    assert got == pytest.approx(want, rel=1e-12, abs=0)
    cosine = [learning_rate("cosine_warmup")(i, lr=0.01, iterations=iterations, warmup_fraction=0.1) for i in range(iterations)]
    if iterations >= 5:  # the hold: the last steps keep a rate cosine_warmup decays below
        assert got[-1] > cosine[-1]
    with pytest.raises(ValueError):
        ours(iterations, lr=0.01, iterations=iterations, warmup_fraction=0.1)


def test_warmup_fraction_sets_the_warmup_length():
    ours = learning_rate("cosine_warmup")
    for fraction, iterations, w in ((0.25, 40, 10), (0.3, 20, 6), (0.0, 10, 0), (0.5, 7, 3)):
        got = [ours(i, lr=1.0, iterations=iterations, warmup_fraction=fraction) for i in range(iterations)]
        want = [get_lr_cosine_with_warmup(i, iterations, w, 1.0) for i in range(iterations)]
        np.testing.assert_allclose(got, want, rtol=1e-12)
    assert [learning_rate("constant")(i, lr=0.3, iterations=4, warmup_fraction=0.1) for i in range(4)] == [0.3] * 4


def test_the_retry_schedules_over_its_own_iterations(tiny, images):
    """The non-convergence retry (lr x0.1, iterations x2) follows the schedule over its own length:
    the same as a run started with those settings."""
    from latentopt.optimize.optimizer import optimize_with_retry

    settings = _settings("gradient_free", "cosine_warmup", iterations=6, lr=0.05)
    with torch.no_grad():
        z0 = tiny.encode(images[:1])
    never = lambda d, t: torch.ones(d.shape[0]) + 0 * d.flatten(1).mean(1)  # noqa: E731  constant loss: never improves
    tracks = optimize_with_retry(tiny.decode, images[:1], z0, never, settings, encode=tiny.encode, log=lambda m: None)
    assert tracks[0].retry["reason"] == "loss did not improve" and tracks[0].retry["iterations"] == 12
    again = optimize_latents(tiny.decode, images[:1], z0, never, settings.for_retry(), encode=tiny.encode)
    np.testing.assert_allclose(tracks[0].residual, again[0].residual, rtol=1e-6)
    zs = dec_inv_nograd(tiny.encode, tiny.decode, images[:1], 12, lr_of("cosine_warmup", 0.005, 12))
    with torch.no_grad():
        want = [float(((tiny.encode(tiny.decode(z)) - z0) ** 2).mean()) for z in zs[:-1]]
    np.testing.assert_allclose(tracks[0].residual, want, rtol=1e-4, atol=1e-7)


# -- (d) batching and resume --------------------------------------------------------------------------

def test_gradient_free_batch_equals_one_by_one(tiny, images):
    settings = AdamSettings.of(method="gradient_free", iterations=16, lr=0.02, stopping=StopRule("relative", 1e-4, 2))
    batched = _run(tiny, images, settings)
    solo = [_run(tiny, images[i : i + 1], settings)[0] for i in range(len(images))]
    for b, s in zip(batched, solo):
        assert b.steps == s.steps and b.converged_at == s.converged_at
        np.testing.assert_allclose(b.history, s.history, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(b.residual, s.residual, rtol=1e-5, atol=1e-8)
        torch.testing.assert_close(b.best_z, s.best_z)
    assert len({b.steps for b in batched}) > 1, "the case must exercise images leaving the batch"


@pytest.mark.parametrize("schedule", ["constant", "cosine_warmup"])
def test_gradient_free_resume_from_checkpoint_gives_the_same_latent(tiny, images, schedule):
    settings = AdamSettings.of(method="gradient_free", schedule=schedule, iterations=16, lr=0.02,
                               stopping=StopRule("relative", 1e-4, 2), checkpoint_interval=3)
    states = []
    full = _run(tiny, images, settings, on_checkpoint=states.append)
    assert len(states) >= 2 and len({t.steps for t in full}) > 1
    for state in states[:2]:
        resumed = _run(tiny, images, settings, resume=state)
        for a, b in zip(full, resumed):
            torch.testing.assert_close(a.best_z, b.best_z, rtol=0, atol=0)
            assert a.history == b.history and a.residual == b.residual and a.steps == b.steps


def test_gradient_free_runs_under_reduced_precision(tiny, images):
    """run.precision bf16: the forward passes in bf16, the latent and Adam in fp32; close to fp32."""
    settings = _settings("gradient_free", "constant", iterations=8, lr=0.05)
    exact = _run(tiny, images, settings)
    bf16 = _run(tiny, images, settings, precision="bf16")
    for a, b in zip(exact, bf16):
        assert b.best_z.dtype == torch.float32
        np.testing.assert_allclose(a.history, b.history, rtol=0.05)


# -- (e) config ---------------------------------------------------------------------------------------

def test_an_unknown_method_or_schedule_is_rejected_naming_the_key():
    with pytest.raises(ConfigError, match=r"losses\.psnr\.method: 'adam_free' is not one of"):
        validate_config(seed_config(**{"losses.psnr.method": "adam_free"}))
    with pytest.raises(ConfigError, match=r"losses\.psnr\.schedule: 'cosine' is not one of.*cosine_warmup"):
        validate_config(seed_config(**{"losses.psnr.schedule": "cosine"}))
    with pytest.raises(ConfigError, match=r"losses\.psnr\.warmup_fraction"):
        validate_config(seed_config(**{"losses.psnr.warmup_fraction": 1.0}))


def test_gradient_free_rejects_the_reference_stopping_rule():
    with pytest.raises(ConfigError, match=r"losses\.psnr\.stopping\.rule: 'reference' is not one of"):
        validate_config(seed_config(**{"losses.psnr.method": "gradient_free", "losses.psnr.stopping.rule": "reference"}))
    validate_config(seed_config(**{"losses.psnr.stopping.rule": "reference"}))  # backprop keeps it


# -- backward compatibility ---------------------------------------------------------------------------

def _params_before_methods(config_seed) -> dict:
    """The params an arm had before method/schedule existed: validated with the schema less those
    keys, then the old formula (common keys, precision, numerics, the block verbatim)."""
    schema = load_schema()
    arm = schema["properties"]["losses"]["additionalProperties"]
    for key in NEW_KEYS:
        del arm["properties"][key]
    for key in ("if", "then"):
        arm.pop(key)
    old = validate_config(json.loads(json.dumps(config_seed)), schema)
    new = arm_settings(validate_config(json.loads(json.dumps(config_seed))), "psnr")
    common = {k: new[k] for k in ("arm", "model", "preprocess", "channels_last", "library_version", "precision")}
    return {**common, **old["losses"]["psnr"]}


@pytest.mark.parametrize("explicit", [{}, {"losses.psnr.method": "backprop", "losses.psnr.schedule": "constant"},
                                      {"losses.psnr.schedule": "constant", "losses.psnr.warmup_fraction": 0.3}])
def test_default_method_and_schedule_keep_params_and_fingerprint(explicit):
    seed = seed_config(**explicit)
    params = arm_settings(validate_config(json.loads(json.dumps(seed))), "psnr")
    before = _params_before_methods(seed_config())
    assert json.dumps(params) == json.dumps(before)  # same keys, same order, same values
    assert sha256_json({"settings": params, "weights": "w"}) == sha256_json({"settings": before, "weights": "w"})
    assert not set(NEW_KEYS) & set(params)


def test_a_method_or_schedule_in_use_is_in_the_params():
    base = arm_settings(validate_config(seed_config()), "psnr")
    free = arm_settings(validate_config(seed_config(**{"losses.psnr.method": "gradient_free"})), "psnr")
    free_constant = arm_settings(validate_config(seed_config(**{"losses.psnr.method": "gradient_free", "losses.psnr.schedule": "constant"})), "psnr")
    cosine = arm_settings(validate_config(seed_config(**{"losses.psnr.schedule": "cosine_warmup"})), "psnr")
    # gradient_free's default schedule is dec-inv's published one (it is in the params); constant stays out
    assert free["method"] == "gradient_free" and free["schedule"] == "dec_inv" and free["warmup_fraction"] == 0.1
    assert free_constant["method"] == "gradient_free" and "schedule" not in free_constant
    assert cosine["schedule"] == "cosine_warmup" and cosine["warmup_fraction"] == 0.1 and "method" not in cosine
    assert len({sha256_json(p) for p in (base, free, free_constant, cosine)}) == 4


@pytest.mark.parametrize("explicit", ["cosine_warmup", "constant", "dec_inv"])
def test_an_explicit_schedule_wins_over_gradient_frees_default(explicit):
    config = validate_config(seed_config(**{"losses.psnr.method": "gradient_free", "losses.psnr.schedule": explicit}))
    assert config["losses"]["psnr"]["schedule"] == explicit
    assert validate_config(seed_config(**{"losses.psnr.schedule": "dec_inv"}))["losses"]["psnr"]["method"] == "backprop"


# -- the job ------------------------------------------------------------------------------------------

def test_a_gradient_free_job_writes_its_records(tmp_path, demo_data):
    from latentopt.data.prepare import prepare_chunk
    from latentopt.optimize.job import optimize_chunk
    from latentopt.workflow.job_params import optimize_job_args
    from latentopt.workflow import layout
    from latentopt.workflow.plan import build_plan

    cfg = make_config(tmp_path / "results", demo_data, **{"losses.psnr.iterations": 4, "losses.psnr.method": "gradient_free",
                                                          "losses.psnr.schedule": "cosine_warmup", "run.batch_size": 2})
    plan = build_plan(cfg)
    entries = plan.splits["train"][:3]
    prepare_chunk(entries, cfg["preprocess"], cfg["results_dir"], log=lambda m: None)
    records = optimize_chunk(**optimize_job_args(cfg, "psnr", "train", [e.image_id for e in entries]), device="cpu", log=lambda m: None)
    assert [r["status"] for r in records] == ["ok"] * 3
    for rec in records:
        payload = torch.load(layout.per_image(cfg["results_dir"], "psnr", "train", rec["image_id"], "pt"), weights_only=True)
        assert len(payload["residual_history"]) == rec["iterations"] == len(payload["loss_history"]) - 1
        assert rec["initial_residual"] == payload["residual_history"][0] and rec["last_residual"] == payload["residual_history"][-1]
        assert read_json(layout.per_image(cfg["results_dir"], "psnr", "train", rec["image_id"], "json"))["fingerprint"] == rec["fingerprint"]
