"""The optimizer judged by what it does: exact batching, stopping, best-not-last, exact resume."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from latentopt.models.autoencoders import load_autoencoder
from latentopt.optimize.losses import build_loss
from latentopt.optimize.optimizer import ImageTrack, optimize_latents
from latentopt.workflow.settings import AdamSettings, StopRule


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return load_autoencoder({"kind": "synthetic_kl", "seed": 3})


@pytest.fixture(scope="module")
def images():
    g = torch.Generator().manual_seed(1)
    base = torch.rand(3, 3, 32, 48, generator=g)
    # smooth-ish images so the optimization has something to fit
    return torch.nn.functional.avg_pool2d(base, 3, stride=1, padding=1)


def _run(model, images, settings, loss="mse", **kw):
    with torch.no_grad():
        z0 = model.encode(images)
    return optimize_latents(model.decode, images, z0, build_loss({"name": loss}), settings, **kw)


def test_loss_goes_down_and_best_is_kept(model, images):
    settings = AdamSettings.of(iterations=15, lr=0.05, stopping=StopRule.of("none"))
    tracks = _run(model, images, settings)
    for t in tracks:
        assert len(t.history) == 16  # z_0 .. z_15
        assert t.best_loss == min(t.history)
        assert t.best_loss < t.history[0] * 0.9
        assert t.steps == 15 and t.stop_reason == "max_iterations"
        # the kept latent really gives the best loss
    best = torch.stack([t.best_z for t in tracks])
    with torch.no_grad():
        losses = build_loss({"name": "mse"})(model.decode(best), images)
    np.testing.assert_allclose(losses.numpy(), [t.best_loss for t in tracks], rtol=1e-4)


def test_batch_equals_one_by_one(model, images):
    """Summed loss + per-element Adam: each image follows its solo trajectory, also when images
    stop at different iterations and leave the batch."""
    settings = AdamSettings.of(iterations=12, lr=0.05, stopping=StopRule("relative", 2e-2, 2))
    batched = _run(model, images, settings)
    solo = [_run(model, images[i : i + 1], settings)[0] for i in range(len(images))]
    for b, s in zip(batched, solo):
        assert b.converged_at == s.converged_at and b.steps == s.steps
        np.testing.assert_allclose(b.history, s.history, rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(b.best_z, s.best_z, rtol=1e-4, atol=1e-5)
    assert len({b.steps for b in batched}) > 1, "the case must exercise images leaving the batch"


def test_mean_loss_would_not_be_exact(model, images):
    """Guard for the design choice: a MEAN over the batch changes the trajectory through eps."""
    settings = AdamSettings.of(iterations=5, lr=0.05, eps=1e-2, stopping=StopRule.of("none"))
    mse = build_loss({"name": "mse"})
    with torch.no_grad():
        z0 = model.encode(images)
    summed = optimize_latents(model.decode, images, z0, mse, settings)
    meaned = optimize_latents(model.decode, images, z0, lambda p, t: mse(p, t) / len(images), settings)
    assert not torch.allclose(summed[0].best_z, meaned[0].best_z, atol=1e-6)


def test_stopping_rules():
    stop_rel = StopRule("relative", 0.01, 2)
    t = ImageTrack(z0=torch.zeros(1), best_z=torch.zeros(1))
    z = torch.zeros(1)
    assert not t.update(10.0, z, stop_rel)
    assert not t.update(9.0, z, stop_rel)  # 10% better
    assert not t.update(8.95, z, stop_rel)  # 0.55% better: stale 1
    assert t.update(8.94, z, stop_rel)  # stale 2 -> stop
    # the reference's absolute rule, patience 1: stops on the first small delta
    t = ImageTrack(z0=torch.zeros(1), best_z=torch.zeros(1))
    stop_abs = StopRule("absolute", 1e-3, 1)
    assert not t.update(1.0, z, stop_abs)
    assert not t.update(0.5, z, stop_abs)
    assert t.update(0.4995, z, stop_abs)
    # relative rule on a negative loss (-PSNR) uses |best|
    t = ImageTrack(z0=torch.zeros(1), best_z=torch.zeros(1))
    assert not t.update(-30.0, z, stop_rel)
    assert not t.update(-31.0, z, stop_rel)
    assert t.stale == 0


def test_resume_from_checkpoint_is_exact(model, images):
    settings = AdamSettings.of(iterations=10, lr=0.05, stopping=StopRule.of("none"), checkpoint_interval=4)
    states = []
    full = _run(model, images, settings, on_checkpoint=states.append)
    assert [s["iteration"] for s in states] == [4, 8]
    resumed = _run(model, images, settings, resume=states[0])
    for a, b in zip(full, resumed):
        assert a.history == pytest.approx(b.history, rel=1e-6)
        torch.testing.assert_close(a.best_z, b.best_z)
        assert a.steps == b.steps == 10


def test_time_limit_stops_with_timeout(model, images):
    settings = AdamSettings.of(iterations=1000, lr=0.01, stopping=StopRule.of("none"))
    tracks = _run(model, images, settings, time_limit_s=0.0)
    assert all(t.stop_reason == "timeout" for t in tracks)
    assert all(t.steps == 1 for t in tracks)


def test_region_restricts_the_loss(model, images):
    """reflect_pad: only the original area counts; padding pixels get no gradient pressure."""
    settings = AdamSettings.of(iterations=3, lr=0.05, stopping=StopRule.of("none"))
    region = (slice(4, 28), slice(8, 40))
    tracks = _run(model, images, settings, region=region)
    with torch.no_grad():
        z0 = model.encode(images)
        full = build_loss({"name": "mse"})(model.decode(z0)[:, :, 4:28, 8:40], images[:, :, 4:28, 8:40])
    np.testing.assert_allclose([t.history[0] for t in tracks], full.numpy(), rtol=1e-5)
