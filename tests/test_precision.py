"""run.precision speeds up the optimization's decoder only: losses, z0, the published decode and
every metric stay exact fp32, and no precision setting leaks out of its context."""

from __future__ import annotations

import shutil

import pytest
import torch
from conftest import make_config

from latentopt.workflow import layout
from latentopt.models.autoencoders import load_autoencoder
from latentopt.core.fileio import read_json
from latentopt.optimize.exact import decode_exact, encode_exact
from latentopt.optimize.job import optimize_chunk
from latentopt.workflow.job_params import optimize_job_args
from latentopt.optimize.losses import build_loss
from latentopt.metrics.image_metrics import tensor_metrics
from latentopt.optimize.optimizer import optimize_latents
from latentopt.workflow.settings import AdamSettings, StopRule
from latentopt.workflow.plan import build_plan
from latentopt.compute.precision import decode_precision, exact_fp32
from latentopt.data.prepare import prepare_chunk

CPU = torch.device("cpu")


@pytest.fixture()
def tf32_flags():
    saved = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


@pytest.mark.parametrize("outer", [True, False])
def test_contexts_set_tf32_and_restore_it(tf32_flags, outer):
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = outer
    with exact_fp32():
        assert not torch.backends.cudnn.allow_tf32 and not torch.backends.cuda.matmul.allow_tf32
    with decode_precision("tf32", CPU):
        assert torch.backends.cudnn.allow_tf32 and torch.backends.cuda.matmul.allow_tf32
        with exact_fp32():
            assert not torch.backends.cudnn.allow_tf32
        assert torch.backends.cudnn.allow_tf32
    with decode_precision("fp32", CPU):
        assert not torch.backends.cudnn.allow_tf32
    assert torch.backends.cudnn.allow_tf32 is outer and torch.backends.cuda.matmul.allow_tf32 is outer


def test_bf16_autocasts_the_decoder_and_exact_fp32_undoes_it():
    a = torch.rand(4, 4)
    with decode_precision("bf16", CPU):
        assert (a @ a).dtype == torch.bfloat16
        with exact_fp32():
            assert (a @ a).dtype == torch.float32
            assert torch.equal(a @ a, torch.mm(a, a))
    assert (a @ a).dtype == torch.float32


def test_unknown_precision_is_named():
    with pytest.raises(ValueError, match="fp8"):
        with decode_precision("fp8", CPU):
            pass


def test_metrics_are_exact_inside_an_autocast_region():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 32, 48, generator=g)
    y = (x + 0.05 * torch.randn(2, 3, 32, 48, generator=g)).clamp(0, 1)
    plain = tensor_metrics(x, y)
    with decode_precision("bf16", CPU):
        inside = tensor_metrics(x, y)
    for key in plain:
        assert inside[key].dtype == torch.float32
        torch.testing.assert_close(inside[key], plain[key], rtol=0, atol=0)


def test_the_loss_runs_in_fp32_while_the_decoder_runs_in_bf16():
    model = load_autoencoder({"kind": "synthetic_kl", "seed": 3})
    x = torch.rand(2, 3, 32, 48, generator=torch.Generator().manual_seed(1))
    seen = []
    mse = build_loss({"name": "mse"})

    def decode(z):
        out = model.decode(z)
        seen.append(("decode", out.dtype))
        return out

    def loss(pred, target):
        seen.append(("loss", torch.is_autocast_enabled("cpu")))
        return mse(pred, target)

    settings = AdamSettings.of(iterations=3, lr=0.05, stopping=StopRule.of("none"))
    optimize_latents(decode, x, encode_exact(model, x), loss, settings, precision="bf16")
    assert ("decode", torch.bfloat16) in seen
    assert [v for k, v in seen if k == "loss"] == [False] * 4  # z_0 .. z_3, never under autocast


def test_exact_encode_and_decode_match_one_by_one_fp32():
    model = load_autoencoder({"kind": "synthetic_kl", "seed": 3})
    x = torch.rand(3, 3, 32, 48, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ref_z = torch.cat([model.encode(x[i : i + 1]) for i in range(3)])
        ref_x = torch.cat([model.decode(ref_z[i : i + 1]) for i in range(3)])
    with decode_precision("bf16", CPU):  # a caller's autocast must not change the published values
        z = encode_exact(model, x)
        out = decode_exact(model, z)
    assert z.dtype == out.dtype == torch.float32
    torch.testing.assert_close(z, ref_z, rtol=0, atol=0)
    torch.testing.assert_close(out, ref_x, rtol=0, atol=0)


def test_baseline_of_a_bf16_run_equals_the_fp32_run(tmp_path, demo_data):
    """z0 and its decode are published in exact fp32: the starting point and its metrics do not
    depend on run.precision; only the optimized result may. On the CPU tf32 is plain fp32."""
    data = tmp_path / "data"
    shutil.copytree(demo_data, data)
    initial, final = {}, {}
    for precision in ("fp32", "bf16", "tf32"):
        cfg = make_config(tmp_path / precision, data, **{"losses.psnr.iterations": 3, "run.precision": precision})
        plan = build_plan(cfg)
        entries = plan.splits["val"]
        prepare_chunk(entries, cfg["preprocess"], cfg["results_dir"], log=lambda m: None)
        optimize_chunk(**optimize_job_args(cfg, "psnr", "val", [e.image_id for e in entries]), device="cpu", log=lambda m: None)
        records = [read_json(layout.per_image(cfg["results_dir"], "psnr", "val", e.image_id, "json")) for e in entries]
        initial[precision] = [r["initial"] for r in records]
        final[precision] = [r["final"] for r in records]
    assert initial["fp32"] and initial["fp32"] == initial["bf16"] == initial["tf32"]
    assert final["tf32"] == final["fp32"] and final["bf16"] != final["fp32"]


def test_changing_precision_reruns_the_loss_arms_but_not_the_baseline(tmp_path, demo_data):
    from latentopt.workflow.config import arm_settings

    fp32, bf16 = (make_config(tmp_path, demo_data, **{"run.precision": p}) for p in ("fp32", "bf16"))
    assert arm_settings(fp32, "baseline") == arm_settings(bf16, "baseline")
    assert arm_settings(fp32, "psnr") != arm_settings(bf16, "psnr")
