"""stopping.rule: reference against a transcription of the original implementation's loop.

The transcription below follows mdipcit/Generative-Latent-Optimization,
``LatentOptimizer.optimize``: Adam (torch defaults) on a copy of z0; per iteration zero_grad,
decode, loss, backward, step, record loss.item(); stop when i > 0 and
|losses[-1] - losses[-2]| < threshold; return the latent as it is after the loop (i.e. after the
last step), len(losses) iterations and losses[-1] as the final loss. Decode and loss are passed in
(the pipeline's), so what is compared is the loop itself."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from latentopt.optimize.losses import build_loss
from latentopt.optimize.optimizer import optimize_latents
from latentopt.workflow.settings import AdamSettings, StopRule


def original_loop(decode, target, z0, loss_fn, iterations, lr, threshold):
    optimized = z0.clone().detach().requires_grad_(True)
    optimizer = torch.optim.Adam([optimized], lr=lr)
    losses, convergence = [], None
    for i in range(iterations):
        optimizer.zero_grad()
        loss = loss_fn(decode(optimized), target).mean()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if i > 0 and abs(losses[-1] - losses[-2]) < threshold:
            convergence = i
            break
    return optimized.detach(), losses, convergence


def firing_threshold(decode, target, z0, loss_fn, iterations, lr):
    """A threshold at which the original's stop rule fires part-way (from a free run): the
    median |loss_i - loss_{i-1}| of the second half of the run."""
    _, losses, _ = original_loop(decode, target, z0, loss_fn, iterations, lr, 0.0)
    deltas = np.abs(np.diff(losses))[len(losses) // 2 :]
    return float(np.median(deltas))


def assert_same_as_original(decode, target, z0, loss_fn, iterations, lr, threshold):
    z_ref, losses, convergence = original_loop(decode, target, z0, loss_fn, iterations, lr, threshold)
    settings = AdamSettings.of(iterations=iterations, lr=lr, stopping=StopRule("reference", threshold, 1))
    (track,) = optimize_latents(decode, target, z0, loss_fn, settings)
    assert torch.equal(track.best_z, z_ref[0]), "returned latent differs from the original's"
    assert track.history == losses  # bit for bit, every iteration
    assert track.converged_at == convergence
    assert track.steps == len(losses)  # the last step is counted
    assert track.final_loss == losses[-1]
    assert track.returned == "last"
    assert track.stop_reason == ("converged" if convergence is not None else "max_iterations")
    return track, convergence


@pytest.fixture(scope="module")
def tiny_decoder():
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(4, 16, 3, padding=1),
        torch.nn.SiLU(),
        torch.nn.Upsample(scale_factor=2),
        torch.nn.Conv2d(16, 3, 3, padding=1),
    ).requires_grad_(False)
    return lambda z: torch.sigmoid(net(z))


@pytest.fixture(scope="module")
def tiny_case():
    g = torch.Generator().manual_seed(1)
    target = torch.nn.functional.avg_pool2d(torch.rand(1, 3, 24, 32, generator=g), 3, 1, 1)
    z0 = torch.randn(1, 4, 12, 16, generator=g) * 0.5
    return target, z0


@pytest.mark.parametrize("loss", ["psnr", "mse"])
def test_reference_rule_is_the_original_loop_on_a_tiny_decoder(tiny_decoder, tiny_case, loss):
    target, z0 = tiny_case
    loss_fn = build_loss({"name": loss})
    threshold = firing_threshold(tiny_decoder, target, z0, loss_fn, 40, 0.05)
    _, convergence = assert_same_as_original(tiny_decoder, target, z0, loss_fn, 40, 0.05, threshold)
    assert convergence is not None and convergence < 39, "the case must exercise the stop rule"
    # and when the rule never fires: all iterations, latent after the last step
    _, convergence = assert_same_as_original(tiny_decoder, target, z0, loss_fn, 12, 0.05, 0.0)
    assert convergence is None


def test_best_returning_rules_differ_from_the_original(tiny_decoder, tiny_case):
    """Why the mode exists: 'absolute' with patience 1 takes the same stop decision but returns
    the best evaluated latent, not the latent after one more step."""
    target, z0 = tiny_case
    loss_fn = build_loss({"name": "psnr"})
    threshold = firing_threshold(tiny_decoder, target, z0, loss_fn, 40, 0.05)
    z_ref, losses, convergence = original_loop(tiny_decoder, target, z0, loss_fn, 40, 0.05, threshold)
    settings = AdamSettings.of(iterations=40, lr=0.05, stopping=StopRule("absolute", threshold, 1))
    (track,) = optimize_latents(tiny_decoder, target, z0, loss_fn, settings)
    assert track.converged_at == convergence
    assert track.steps == len(losses) - 1  # the step after the stop decision is not taken
    assert not torch.equal(track.best_z, z_ref[0])


def test_reference_rule_at_batch_size_above_one_is_only_mathematically_equal(tiny_decoder, tiny_case):
    """Summed loss, per-element Adam: a batch follows each solo trajectory up to rounding."""
    target, z0 = tiny_case
    g = torch.Generator().manual_seed(2)
    targets = torch.cat([target, target.flip(-1), torch.rand(1, 3, 24, 32, generator=g)])
    z0s = torch.cat([z0, z0.flip(-1), z0 * 0.5])
    loss_fn = build_loss({"name": "psnr"})
    settings = AdamSettings.of(iterations=20, lr=0.05, stopping=StopRule("reference", 1e-3, 1))
    batched = optimize_latents(tiny_decoder, targets, z0s, loss_fn, settings)
    for i, b in enumerate(batched):
        (solo,) = optimize_latents(tiny_decoder, targets[i : i + 1], z0s[i : i + 1], loss_fn, settings)
        assert b.steps == solo.steps and b.returned == "last"
        np.testing.assert_allclose(b.history, solo.history, rtol=1e-5)
        torch.testing.assert_close(b.best_z, solo.best_z, rtol=1e-4, atol=1e-5)


def test_reference_rule_resumes_exactly(tiny_decoder, tiny_case):
    target, z0 = tiny_case
    loss_fn = build_loss({"name": "psnr"})
    settings = AdamSettings.of(iterations=10, lr=0.05, stopping=StopRule("reference", 0.0, 1), checkpoint_interval=4)
    states = []
    (full,) = optimize_latents(tiny_decoder, target, z0, loss_fn, settings, on_checkpoint=states.append)
    (resumed,) = optimize_latents(tiny_decoder, target, z0, loss_fn, settings, resume=states[0])
    assert torch.equal(full.best_z, resumed.best_z) and full.history == resumed.history
    assert resumed.steps == 10


@pytest.fixture(scope="module")
def taef2_crop(taef2_dir, bsds_root):
    from latentopt.models.autoencoders import load_autoencoder
    from latentopt.data.images import read_rgb

    torch.manual_seed(0)
    model = load_autoencoder({"kind": "taesd", "encoder": str(taef2_dir / "taef2_encoder.pth"),
                              "decoder": str(taef2_dir / "taef2_decoder.pth"), "variant": "taef2"})
    image = read_rgb(bsds_root / "BSDS500" / "data" / "images" / "test" / "100007.jpg")
    h, w = image.shape[:2]
    crop = image[h // 2 - 16 : h // 2 + 16, w // 2 - 24 : w // 2 + 24]
    target = torch.from_numpy(crop.astype(np.float32) / 255).permute(2, 0, 1)[None].contiguous()
    with torch.no_grad():
        z0 = model.encode(target)
    return model, target, z0


def test_reference_rule_is_bit_identical_to_the_original_on_taef2(taef2_crop):
    model, target, z0 = taef2_crop
    loss_fn = build_loss({"name": "psnr"})
    # the seed's psnr settings (lr 0.05, threshold 1e-5; 20 of its 50 iterations, for time) ...
    assert_same_as_original(model.decode, target, z0, loss_fn, 20, 0.05, 1e-5)
    # ... and a threshold at which the stop rule fires part-way
    threshold = firing_threshold(model.decode, target, z0, loss_fn, 16, 0.05)
    track, convergence = assert_same_as_original(model.decode, target, z0, loss_fn, 16, 0.05, threshold)
    assert convergence is not None and convergence < 15
    assert math.isfinite(track.final_loss)


def test_job_runs_the_reference_rule_at_batch_size_1_and_records_it(tmp_path, demo_data):
    """Through the job code (synthetic autoencoder, no ../shared): run.batch_size 3 is overridden
    to 1, and each image's saved latent and final loss are the original loop's, bit for bit."""
    from conftest import make_config

    from latentopt.models.autoencoders import load_autoencoder
    from latentopt.workflow.config import model_spec
    from latentopt.data.images import read_rgb
    from latentopt.optimize.exact import encode_exact
    from latentopt.optimize.job import optimize_chunk
    from latentopt.workflow.job_params import optimize_job_args
    from latentopt.workflow.layout import original_png, per_image
    from latentopt.workflow.plan import build_plan
    from latentopt.data.prepare import prepare_chunk

    cfg = make_config(tmp_path / "results", demo_data, **{
        "data.splits": ["train"], "data.limit_per_split": 2, "preprocess.crop_box": [32, 48],
        "run.batch_size": 3, "losses.psnr.iterations": 6, "losses.psnr.lr": 0.05,
        "losses.psnr.stopping": {"rule": "reference", "threshold": 1e-5}})
    entries = build_plan(cfg).splits["train"]
    prepare_chunk(entries, cfg["preprocess"], cfg["results_dir"], log=lambda m: None)
    records = optimize_chunk(**optimize_job_args(cfg, "psnr", "train", [e.image_id for e in entries]), device="cpu", log=lambda m: None)
    model = load_autoencoder(model_spec(cfg))
    loss_fn = build_loss({"name": "psnr"})
    for rec in records:
        assert rec["batch_size"] == 1 and rec["returned_latent"] == "last" and rec["retry"] is None
        img = read_rgb(original_png(cfg["results_dir"], "train", rec["image_id"]))
        target = torch.from_numpy(img.astype(np.float32) / 255).permute(2, 0, 1)[None].contiguous()
        z_ref, losses, _ = original_loop(model.decode, target, encode_exact(model, target), loss_fn, 6, 0.05, 1e-5)
        saved = torch.load(per_image(cfg["results_dir"], "psnr", "train", rec["image_id"], "pt"), weights_only=True)
        assert torch.equal(saved["z"], z_ref[0]) and saved["loss_history"] == losses
        assert rec["final_loss"] == losses[-1] and rec["iterations"] == len(losses) and rec["best_loss"] is None
