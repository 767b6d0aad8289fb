"""latentopt.optimize.decoder_step: the opt-in decoder speed-ups (fp16 with gradient scaling, precision
schedule, torch.compile) are honoured when set, leave the default step untouched, and give
(near-)identical results on the CPU. Their speed is a benchmark matter (bench/), not tested here."""

from __future__ import annotations

import os

import pytest
import torch
from conftest import make_config

from latentopt.optimize import decoder_step
from latentopt.models.autoencoders import load_autoencoder
from latentopt.workflow.config import arm_settings
from latentopt.optimize.decoder_step import DecoderStep
from latentopt.optimize.exact import encode_exact
from latentopt.optimize.losses import build_loss
from latentopt.optimize.optimizer import optimize_latents
from latentopt.workflow.settings import AdamSettings, StopRule

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def small():
    model = load_autoencoder({"kind": "synthetic_kl", "seed": 3})
    x = torch.rand(2, 3, 16, 24, generator=torch.Generator().manual_seed(5))
    return model, x, encode_exact(model, x)


def _run(model, x, z0, step: DecoderStep, iterations=6, decode=None, loss="psnr"):
    settings = AdamSettings.of(iterations=iterations, lr=0.05, stopping=StopRule.of("none"))
    return optimize_latents(decode or step.decode(model, x.shape[0]), x, z0, build_loss({"name": loss}), settings,
                            precision=step.schedule(iterations), grad_scaler=step.grad_scaler(CPU))


def test_the_default_step_is_the_plain_eager_step(tmp_path, demo_data, small):
    model, _, _ = small
    cfg = make_config(tmp_path, demo_data)
    step = DecoderStep.from_config(cfg)
    assert step.schedule(50) == cfg["run"]["precision"]  # a name, not a schedule
    assert step.grad_scaler(CPU) is None
    assert step.decode(model, 8) == model.decode and not step.warm_up(model, torch.zeros(1, 4, 2, 3), 50)
    # no new key in the fingerprint / rule params of a default config: nothing is rerun
    assert not {"compile", "final_precision", "final_precision_steps"} & set(arm_settings(cfg, "psnr"))


def test_opt_in_settings_enter_the_fingerprint(tmp_path, demo_data):
    base = arm_settings(make_config(tmp_path, demo_data), "psnr")
    sched = arm_settings(make_config(tmp_path, demo_data, **{"run.final_precision_steps": 5}), "psnr")
    comp = arm_settings(make_config(tmp_path, demo_data, **{"run.compile.enabled": True}), "psnr")
    assert sched["final_precision_steps"] == 5 and sched["final_precision"] == "fp32"
    assert comp["compile"] == "default"
    assert len({str(sorted(d.items())) for d in (base, sched, comp)}) == 3
    # the baseline (exact fp32 encode/decode) does not depend on them
    assert arm_settings(make_config(tmp_path, demo_data, **{"run.compile.enabled": True}), "baseline") == \
        arm_settings(make_config(tmp_path, demo_data), "baseline")


def test_bad_settings_are_named():
    with pytest.raises(ValueError, match="final_precision"):
        DecoderStep.of(final_precision="bf16")
    with pytest.raises(ValueError, match="compile.mode"):
        DecoderStep.of(compile_mode="fastest")
    with pytest.raises(ValueError, match="final_precision_steps"):
        DecoderStep.of(final_precision_steps=-1)


def test_schedule_runs_the_last_steps_in_the_final_precision(small):
    """bf16 for iterations 0..2, fp32 for the last K=2 steps (3, 4) and the final evaluation (5)."""
    model, x, z0 = small
    seen = []

    def decode(z):
        seen.append(torch.is_autocast_enabled("cpu"))
        return model.decode(z)

    step = DecoderStep.of(precision="bf16", final_precision="fp32", final_precision_steps=2)
    _run(model, x, z0, step, iterations=5, decode=decode)
    assert seen == [True, True, True, False, False, False]
    assert DecoderStep.of(precision="bf16").schedule(5) == "bf16"


def test_fp16_scales_the_gradient_and_stays_close_to_fp32(small):
    model, x, z0 = small
    dtypes = []

    def decode(z):
        out = model.decode(z)
        dtypes.append(out.dtype)
        return out

    step = DecoderStep.of(precision="fp16")
    scaler = step.grad_scaler(CPU)
    assert scaler is not None and scaler.is_enabled()
    settings = AdamSettings.of(iterations=6, lr=0.05, stopping=StopRule.of("none"))
    loss = build_loss({"name": "psnr"})
    fp16 = optimize_latents(decode, x, z0, loss, settings, precision="fp16", grad_scaler=scaler)
    fp32 = optimize_latents(model.decode, x, z0, loss, settings, precision="fp32")
    assert torch.float16 in dtypes
    assert scaler.get_scale() > 1.0  # the loss was scaled before backward
    for a, b in zip(fp16, fp32):
        assert a.steps == b.steps == 6
        assert a.best_loss < a.history[0]  # it optimized
        assert a.best_loss == pytest.approx(b.best_loss, abs=0.05)  # PSNR-loss (dB) within 0.05


def test_fp16_resume_carries_the_scaler_state(small):
    model, x, z0 = small
    loss = build_loss({"name": "psnr"})
    settings = AdamSettings.of(iterations=6, lr=0.05, stopping=StopRule.of("none"), checkpoint_interval=3)
    states = []
    whole = optimize_latents(model.decode, x, z0, loss, settings, precision="fp16",
                             grad_scaler=torch.amp.GradScaler("cpu", init_scale=1024.0), on_checkpoint=states.append)
    assert states[0]["grad_scaler"]["scale"] == 1024.0
    fresh = torch.amp.GradScaler("cpu", init_scale=2.0)
    resumed = optimize_latents(model.decode, x, z0, loss, settings, precision="fp16", grad_scaler=fresh,
                               resume=states[0])
    assert fresh.get_scale() == 1024.0
    assert [t.history for t in resumed] == [t.history for t in whole]


def test_padding_keeps_each_image_and_its_gradient(small):
    """The padded decode (what the compiled decoder sees) returns each real row as decoded alone
    and gives the latent the same gradient; the stand-in 'compiled' function sees full batches."""
    model, _, _ = small
    z = torch.randn(3, 4, 2, 3, generator=torch.Generator().manual_seed(1))
    shapes = []

    def fake_compiled(t):
        shapes.append(t.shape[0])
        return model.decode(t)

    decode = decoder_step.padded(fake_compiled, model.decode, batch_size=5)
    a = z.clone().requires_grad_(True)
    out = decode(a)
    out.square().sum().backward()
    b = z.clone().requires_grad_(True)
    ref = torch.cat([model.decode(b[i : i + 1]) for i in range(3)])
    ref.square().sum().backward()
    assert shapes == [5] and out.shape[0] == 3
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)  # images in [0, 1]; see below
    # batched and single-image convolutions round differently (fp32, thread count): elements of the
    # gradient near 0 differ by ~1e-6 of its scale; a padding bug would differ by the scale itself
    torch.testing.assert_close(a.grad, b.grad, rtol=1e-4, atol=1e-5 * float(b.grad.abs().max()))
    with torch.no_grad():  # forward-only calls run eager, unpadded
        decode(z[:2])
    assert shapes == [5]


def test_inductor_cache_dir_is_set_unless_already_chosen(tmp_path, monkeypatch):
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    assert decoder_step.use_inductor_cache(str(tmp_path / "c")) == str((tmp_path / "c").absolute())
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str((tmp_path / "c").absolute())
    assert decoder_step.use_inductor_cache(str(tmp_path / "other")) == str((tmp_path / "c").absolute())


class TinyDecoder(torch.nn.Module):
    """A frozen conv -> GroupNorm -> SiLU -> upsample -> conv decoder: the op mix of the VAE decoders
    (what Inductor fuses) at a size that compiles in tens of seconds on a CPU."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(
            torch.nn.Conv2d(4, 16, 3, padding=1), torch.nn.GroupNorm(4, 16), torch.nn.SiLU(),
            torch.nn.Upsample(scale_factor=2), torch.nn.Conv2d(16, 3, 3, padding=1))
        self.requires_grad_(False).eval()

    def decode(self, z):
        return (self.net(z) / 2 + 0.5).clamp(0, 1)


@pytest.mark.slow
def test_compiled_decoder_matches_eager_and_fills_the_cache(tmp_path, monkeypatch):
    """torch.compile (Inductor, C++ on the CPU) of a decoder's forward+backward through the
    pipeline's DecoderStep: the Adam loop's losses match the eager run to float rounding, a batch
    with fewer images (stopped ones removed) reuses the padded graph, forward-only calls stay
    eager, and the compiled code lands in the configured cache folder. ~30-60 s on 2 CPU cores."""
    from torch._dynamo.utils import counters

    model = TinyDecoder()
    gen = torch.Generator().manual_seed(2)
    z0 = torch.randn(3, 4, 8, 12, generator=gen)
    x = torch.rand(3, 3, 16, 24, generator=gen)
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    decoder_step.clear_compiled()
    torch._dynamo.reset()
    counters.clear()
    cache = tmp_path / "inductor"
    step = DecoderStep.of(precision="fp32", compile=True, cache_dir=str(cache))
    try:
        assert step.warm_up(model, z0, 4)
        graphs = counters["stats"]["unique_graphs"]
        assert graphs >= 1
        compiled = _run(model, x, z0, step, iterations=4, loss="mse")
        decode = step.decode(model, 3)
        fewer = z0[:2].clone().requires_grad_(True)
        decode(fewer).sum().backward()  # 2 of 3 rows: padded to the compiled shape
        with torch.no_grad():
            decode(z0)  # forward-only: eager
        assert counters["stats"]["unique_graphs"] == graphs  # no recompilation
        eager = _run(model, x, z0, DecoderStep.of(precision="fp32"), iterations=4, loss="mse")
        for a, b in zip(compiled, eager):
            assert a.history == pytest.approx(b.history, rel=1e-5, abs=1e-7)
        assert cache.is_dir() and any(cache.rglob("*"))
    finally:
        decoder_step.clear_compiled()
        torch._dynamo.reset()


def test_fp16_initial_scale_skips_no_step_where_the_default_did(taef2_dir):
    """TAEF2 (real weights), psnr loss, a 32x48 photo crop: GradScaler's default initial scale
    (2**16) overflows the first backward passes and skips those Adam steps; the pipeline's scale
    (decoder_step.FP16_INIT_SCALE) skips none and follows fp32 closely."""
    import numpy as np
    import skimage.data

    model = load_autoencoder({"kind": "taesd", "encoder": str(taef2_dir / "taef2_encoder.pth"),
                              "decoder": str(taef2_dir / "taef2_decoder.pth"), "variant": "taef2"})
    img = np.asarray(skimage.data.astronaut())[100:132, 200:248]
    x = torch.from_numpy(img.astype(np.float32) / 255).permute(2, 0, 1)[None].contiguous()
    z0 = encode_exact(model, x)
    loss = build_loss({"name": "psnr"})
    settings = AdamSettings.of(iterations=6, lr=0.05, stopping=StopRule.of("none"))

    def run(scaler):
        scales = []
        update = scaler.update

        def record(*a, **k):
            update(*a, **k)
            scales.append(scaler.get_scale())

        scaler.update = record
        track = optimize_latents(model.decode, x, z0, loss, settings, precision="fp16", grad_scaler=scaler)[0]
        return track, scales

    ours, ours_scales = run(DecoderStep.of(precision="fp16").grad_scaler(CPU))
    default, default_scales = run(torch.amp.GradScaler("cpu"))
    fp32 = optimize_latents(model.decode, x, z0, loss, settings, precision="fp32")[0]
    assert ours_scales == [decoder_step.FP16_INIT_SCALE] * 6  # never halved: no step skipped
    assert min(default_scales) < 2.0**16  # halved: steps skipped
    assert ours.best_loss == pytest.approx(fp32.best_loss, abs=0.05)
    assert default.best_loss > ours.best_loss
