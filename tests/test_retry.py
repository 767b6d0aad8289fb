"""The non-convergence protocol: an image whose loss did not improve, or became non-finite, is
optimized again from z0 with a smaller learning rate and more iterations, and its record says so."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import make_config

from latentopt.optimize.losses import build_loss
from latentopt.optimize.optimizer import non_convergence, optimize_with_retry
from latentopt.workflow.settings import AdamSettings, RetrySettings, StopRule


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(4, 16, 3, padding=1), torch.nn.SiLU(),
                              torch.nn.Upsample(scale_factor=2), torch.nn.Conv2d(16, 3, 3, padding=1)).requires_grad_(False)
    g = torch.Generator().manual_seed(1)
    targets = torch.nn.functional.avg_pool2d(torch.rand(2, 3, 24, 32, generator=g), 3, 1, 1)
    z0 = torch.randn(2, 4, 12, 16, generator=g) * 0.5
    return (lambda z: torch.sigmoid(net(z))), targets, z0


def test_absurd_lr_is_retried_with_the_documented_settings(tiny):
    decode, targets, z0 = tiny
    mse = build_loss({"name": "mse"})
    settings = AdamSettings.of(iterations=6, lr=1e4, stopping=StopRule.of("none"), retry=RetrySettings(True, 1e-5, 2.0))
    logged = []
    tracks = optimize_with_retry(decode, targets, z0, mse, settings, log=logged.append)
    for t in tracks:
        assert t.retry["reason"] == "loss did not improve"
        first = t.retry["first_attempt"]
        assert first["lr"] == 1e4 and first["iterations"] == 6 and first["steps"] == 6
        assert first["best_loss"] == first["initial_loss"]  # nothing better than z0 was found
        assert t.retry["lr"] == pytest.approx(0.1) and t.retry["iterations"] == 12
        assert t.steps == 12 and len(t.history) == 13  # the retry's own run, z_0 .. z_12
        assert t.retry["outcome"] == "improved" and t.best_loss < t.history[0]
    assert "2 image(s) retried" in logged[0]


def test_images_that_improved_are_not_retried_and_retry_can_be_disabled(tiny):
    decode, targets, z0 = tiny
    mse = build_loss({"name": "mse"})
    good = optimize_with_retry(decode, targets, z0, mse, AdamSettings.of(iterations=6, lr=0.05, stopping=StopRule.of("none")))
    assert all(t.retry is None and non_convergence(t) is None for t in good)
    off = AdamSettings.of(iterations=6, lr=1e4, stopping=StopRule.of("none"), retry=RetrySettings.of(enabled=False))
    assert all(t.retry is None and non_convergence(t) for t in optimize_with_retry(decode, targets, z0, mse, off))
    # the reference rule reproduces the original, which has no retry
    ref = AdamSettings.of(iterations=6, lr=1e4, stopping=StopRule("reference", 0.0, 1))
    assert all(t.retry is None for t in optimize_with_retry(decode, targets, z0, mse, ref))


def test_non_finite_loss_is_retried(tiny):
    decode, targets, z0 = tiny
    mse = build_loss({"name": "mse"})
    calls = {"n": 0}

    def poisoned(pred, target):  # the first attempt (5 evaluations) turns NaN at its third
        calls["n"] += 1
        out = mse(pred, target)
        return out * float("nan") if 2 < calls["n"] <= 5 else out

    settings = AdamSettings.of(iterations=4, lr=0.05, stopping=StopRule.of("none"))
    tracks = optimize_with_retry(decode, targets, z0, poisoned, settings, log=lambda m: None)
    for t in tracks:
        assert t.retry["reason"] == "non-finite loss" and math.isnan(t.retry["first_attempt"]["last_loss"])
        assert all(math.isfinite(v) for v in t.history)


def test_nonconvergence_retry_on_a_real_image(tmp_path, bsds_root, taef2_dir):
    """An absurd lr (20) on a real photo with TAEF2: the first attempt does not improve; the retry
    (lr x0.0025 = 0.05, iterations x2) improves, and the record keeps the first attempt."""
    from latentopt.optimize.job import optimize_chunk
    from latentopt.workflow.job_params import optimize_job_args
    from latentopt.workflow.plan import build_plan
    from latentopt.data.prepare import prepare_chunk

    model = {"kind": "taesd", "encoder": str(taef2_dir / "taef2_encoder.pth"),
             "decoder": str(taef2_dir / "taef2_decoder.pth"), "variant": "taef2"}
    cfg = make_config(tmp_path / "results", bsds_root, **{
        "model": model, "allow_synthetic": True, "metric_networks": {"lpips_random_trunk": True, "inception_synthetic": True},
        "data.splits": ["test"], "data.limit_per_split": 1, "preprocess.crop_box": [32, 48],
        "losses.psnr.iterations": 8, "losses.psnr.lr": 20.0, "losses.psnr.stopping": {"rule": "none"},
        "losses.psnr.retry": {"lr_factor": 0.0025, "iterations_factor": 2}})
    entries = build_plan(cfg).splits["test"]
    prepare_chunk(entries, cfg["preprocess"], cfg["results_dir"], log=lambda m: None)
    (rec,) = optimize_chunk(**optimize_job_args(cfg, "psnr", "test", [entries[0].image_id]), device="cpu", log=lambda m: None)
    retry = rec["retry"]
    print("retry record:", retry, "PSNR", rec["initial"]["psnr"], "->", rec["final"]["psnr"])
    assert retry["reason"] in ("loss did not improve", "non-finite loss")
    assert retry["first_attempt"]["lr"] == 20.0 and retry["first_attempt"]["steps"] == 8
    assert retry["lr"] == pytest.approx(0.05) and retry["iterations"] == 16 and rec["iterations"] == 16
    assert retry["outcome"] == "improved" and rec["final"]["psnr"] > rec["initial"]["psnr"]
