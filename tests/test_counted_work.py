"""Counted work (latentopt.compute.flops, latentopt.optimize.work) and the cost comparisons built on
it (latentopt.analysis.performance): counts against the analytic FLOPs of convolutions, the
per-image total against the passes the optimizer really ran, and no cost ranking of arms whose
counted work is identical, whatever their measured times."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import make_config

from latentopt.analysis import performance
from latentopt.analysis.scoring import settings_columns
from latentopt.compute.flops import COUNTER, count_flops
from latentopt.optimize.losses import build_loss
from latentopt.optimize.optimizer import optimize_latents
from latentopt.optimize.work import PassFlops, image_work
from latentopt.report import conclusions
from latentopt.workflow.analysis_settings import summary_settings
from latentopt.workflow.settings import AdamSettings, StopRule


def conv_flops(cin, cout, k, h, w):
    """2 * Cin * Cout * k * k * H_out * W_out: one multiply-add per weight and output pixel."""
    return 2 * cin * cout * k * k * h * w


class TinyConvAutoencoder(torch.nn.Module):
    """encode: conv 3->8 (3x3, stride 2); decode: nearest x2, conv 4->8 (3x3), conv 8->3 (1x1), all
    frozen. The encoder's 8 channels are 2 x 4 (mean only, as a latent of 4 channels)."""

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.enc = torch.nn.Conv2d(3, 4, 3, stride=2, padding=1)
        self.dec1 = torch.nn.Conv2d(4, 8, 3, padding=1)
        self.dec2 = torch.nn.Conv2d(8, 3, 1)
        for p in self.parameters():
            p.data = torch.randn(p.shape, generator=g) * 0.1
            p.requires_grad_(False)

    def encode(self, x):
        return self.enc(x)

    def decode(self, z):
        up = torch.nn.functional.interpolate(z, scale_factor=2, mode="nearest")
        return torch.sigmoid(self.dec2(torch.relu(self.dec1(up))))


H, W = 16, 24


def decode_flops(h=H, w=W):
    return conv_flops(4, 8, 3, h, w) + conv_flops(8, 3, 1, h, w)


def encode_flops(h=H, w=W):
    return conv_flops(3, 4, 3, h // 2, w // 2)


@pytest.fixture(scope="module")
def model():
    return TinyConvAutoencoder()


def test_a_decoder_forward_counts_the_analytic_convolution_flops(model):
    z = torch.zeros(1, 4, H // 2, W // 2)
    assert count_flops(lambda: model.decode(z)) == decode_flops()
    batch = torch.zeros(3, 4, H // 2, W // 2)  # linear in the batch
    assert count_flops(lambda: model.decode(batch)) == 3 * decode_flops()


def test_backward_through_frozen_weights_costs_one_forward_more(model):
    """With frozen weights the backward computes input gradients only: forward + backward is 2x the
    forward; with trainable weights the weight gradients add a third forward's worth."""
    z = torch.zeros(1, 4, H // 2, W // 2)

    def forward_backward(m):
        latent = z.clone().requires_grad_(True)
        m.decode(latent).sum().backward()

    forward = count_flops(lambda: model.decode(z))
    assert count_flops(lambda: forward_backward(model)) == 2 * forward
    trainable = TinyConvAutoencoder()
    for p in trainable.parameters():
        p.requires_grad_(True)
    # the first decoder conv's input is the latent (needs a gradient), so every conv computes both
    assert count_flops(lambda: forward_backward(trainable)) == 3 * forward


def test_the_passes_of_each_method(model):
    region = (slice(None), slice(None))
    mse = build_loss({"name": "mse"})  # no matrix product: the loss adds nothing countable
    backprop = PassFlops.count(model, mse, True, (3, H, W), region, torch.device("cpu"))
    free = PassFlops.count(model, mse, False, (3, H, W), region, torch.device("cpu"))
    base = PassFlops.count(model, None, None, (3, H, W), region, torch.device("cpu"))
    assert (base.encode, base.decode, base.evaluation, base.iteration) == (encode_flops(), decode_flops(), None, None)
    assert backprop.evaluation == decode_flops() and backprop.iteration == 2 * decode_flops()
    assert free.evaluation == decode_flops() and free.iteration == decode_flops() + encode_flops()


def test_a_loss_network_is_counted(model):
    """LPIPS's AlexNet forward (and, for backprop, its backward) is part of an iteration."""
    from latentopt.metrics.lpips_network import lpips_network

    try:
        lpips_network("alex", random_trunk=True)
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    region = (slice(None), slice(None))
    lp = PassFlops.count(model, build_loss({"name": "lpips", "net": "alex", "random_trunk": True}), True, (3, 64, 64), region, torch.device("cpu"))
    mse = PassFlops.count(model, build_loss({"name": "mse"}), True, (3, 64, 64), region, torch.device("cpu"))
    assert lp.evaluation > mse.evaluation and lp.iteration > mse.iteration + (lp.evaluation - mse.evaluation)


@pytest.mark.parametrize("stopping", [StopRule.of("none"), StopRule("relative", 0.01, 1)])
def test_per_image_work_adds_up_to_what_the_optimizer_ran(model, stopping):
    """The loop itself counted (a batch of 3 images, images leaving it as they stop) equals the sum of
    the per-image counts less each image's encode and decode: every evaluation and every step the
    loop computed is charged to the image it was computed for."""
    g = torch.Generator().manual_seed(2)
    x = torch.rand(3, 3, H, W, generator=g)
    with torch.no_grad():
        z0 = model.encode(x)
    settings = AdamSettings.of(method="backprop", iterations=12, lr=0.2, stopping=stopping)
    tracks = []
    loop = count_flops(lambda: tracks.extend(optimize_latents(model.decode, x, z0, build_loss({"name": "mse"}), settings)))
    passes = PassFlops.count(model, build_loss({"name": "mse"}), True, (3, H, W), (slice(None), slice(None)), torch.device("cpu"))
    works = [image_work(passes, t) for t in tracks]
    assert sum(w["tflop"] for w in works) - 3 * (encode_flops() + decode_flops()) / 1e12 == pytest.approx(loop / 1e12, rel=1e-9)
    assert all(w["counter"] == COUNTER and w["tflop_per_iteration"] == pytest.approx(2 * decode_flops() / 1e12) for w in works)
    if stopping.rule == "relative":
        assert len({t.steps for t in tracks}) > 1 and any(t.stop_reason == "converged" for t in tracks), "the case must exercise early stops"
    assert image_work(passes, None)["tflop"] == pytest.approx((encode_flops() + decode_flops()) / 1e12)


# -- cost comparisons on counted work ---------------------------------------------------------------

def _table(arms: dict[str, tuple[list[float], list[float]]], images_per_batch: int = 1) -> pd.DataFrame:
    """Per-image rows: ``arms`` {arm: (tflop per image, compute seconds per batch)}."""
    rows = []
    for arm, (work, seconds) in arms.items():
        for i, w in enumerate(work):
            b = i // images_per_batch
            rows.append({"dataset": arm, "split": "test", "image_id": f"{i:03d}", "status": "ok", "tflop": w, "tflop_per_iteration": 0.001,
                         "time_s": 1.0, "iterations": 10, "converged_at": None, "peak_memory_mb": 1.0, "device": "cpu", "reason": None,
                         "batch_id": f"test/{b:03d}", "batch_images": images_per_batch, "batch_image_iterations": 10 * images_per_batch,
                         "batch_clock": "process_cpu_time", "batch_compute_s": seconds[b], "batch_wall_s": seconds[b]})
    return pd.DataFrame(rows)


@pytest.fixture
def _summary(tmp_path):
    settings = summary_settings(make_config(tmp_path, tmp_path))
    return lambda table, arms: performance.performance_summary(settings, table, arms, synthetic=[])


def test_arms_with_identical_counted_work_are_never_ranked_by_cost(_summary):
    """Two arms doing the same work (say lr 0.02 vs 0.1 at 20 iterations): one measured 3x slower on a
    loaded machine, far beyond its batch-to-batch noise, is still not ranked; an arm with more
    counted work is, and its time is quoted only because it points the same way."""
    n = 8
    same = [0.5] * n
    table = _table({
        "lr_small": (same, [1.0, 1.02, 0.98, 1.01, 0.99, 1.0, 1.01, 0.99]),
        "lr_large": (same, [3.0, 3.05, 2.95, 3.02, 2.98, 3.0, 3.01, 2.99]),
        "longer": ([1.5] * n, [2.0, 2.02, 1.98, 2.01, 1.99, 2.0, 2.01, 1.99]),
    })
    perf = _summary(table, ["lr_small", "lr_large", "longer"])
    by = {(c["a"], c["b"]): c for c in perf["cost_comparisons"]}
    same_pair = by[("lr_small", "lr_large")]
    assert same_pair["identical"] and not same_pair["claimed"] and not same_pair["time"]["claimed"]
    assert same_pair["time"]["clears_noise"]  # the time alone would have ranked them
    more = by[("lr_small", "longer")]
    assert more["claimed"] and more["mean_diff"] == pytest.approx(-1.0) and more["ratio"] == pytest.approx(1 / 3)
    assert more["time"]["claimed"] and more["time"]["agrees_with_counted_work"]
    against = by[("lr_large", "longer")]  # more counted work, measured faster: no time claim
    assert against["claimed"] and against["time"]["clears_noise"] and not against["time"]["claimed"]
    (line,) = conclusions._cost_lines(perf, ["lr_small", "lr_large", "longer"])
    assert "Identical counted work, not ranked by cost: lr_small = lr_large" in line
    assert "lr_small costs less than lr_large" not in line and "lr_large costs less than lr_small" not in line
    assert "lr_small costs less than longer (longer 3.00× lr_small); measured time agrees" in line
    assert "lr_large costs less than longer (longer 3.00× lr_large); measured time does not show it" in line


def test_counted_work_in_the_performance_summary(_summary):
    work = [0.4, 0.5, 0.6, 0.5, 0.5]
    perf = _summary(_table({"psnr": (work, [1.0] * 5)}), ["psnr"])
    cw = perf["datasets"]["psnr"]["counted_work"]
    assert cw["per_image_values"] == work and cw["counter"] == COUNTER
    assert cw["tflop_per_image"]["mean"] == pytest.approx(np.mean(work)) and cw["tflop_per_image"]["n"] == 5
    assert cw["tflop_per_iteration"] == pytest.approx(0.001)
    mixed = _table({"a": ([1.0, 2.0, 1.0, 2.0, 1.0], [1.0] * 5), "b": ([2.0, 1.0, 2.0, 1.0, 2.0], [1.0] * 5)})
    (pair,) = _summary(mixed, ["a", "b"])["cost_comparisons"]
    assert not pair["identical"] and not pair["claimed"]  # images differ both ways, interval spans 0


def test_records_before_work_was_counted_rank_nothing(_summary):
    table = _table({"a": ([0.5] * 5, [1.0] * 5), "b": ([0.5] * 5, [3.0] * 5)}).drop(columns=["tflop", "tflop_per_iteration"])
    perf = _summary(table, ["a", "b"])
    assert perf["datasets"]["a"]["counted_work"] is None and perf["cost_comparisons"] == []
    assert "no counted work was recorded" in conclusions._cost_lines(perf, ["a", "b"])[0]


# -- the job's records ------------------------------------------------------------------------------

def test_a_jobs_records_carry_settings_batch_and_counted_work(tmp_path, demo_data):
    from latentopt.data.prepare import prepare_chunk
    from latentopt.optimize.job import optimize_chunk
    from latentopt.workflow.job_params import optimize_job_args
    from latentopt.workflow.plan import build_plan

    cfg = make_config(tmp_path / "results", demo_data, **{"losses.psnr.iterations": 3, "losses.psnr.lr": 0.02, "run.batch_size": 2})
    plan = build_plan(cfg)
    entries = plan.splits["train"][:3]
    ids = [e.image_id for e in entries]
    prepare_chunk(entries, cfg["preprocess"], cfg["results_dir"], log=lambda m: None)
    records = optimize_chunk(**optimize_job_args(cfg, "psnr", "train", ids), device="cpu", log=lambda m: None)
    base = optimize_chunk(**optimize_job_args(cfg, "baseline", "train", ids), device="cpu", log=lambda m: None)
    assert [r["status"] for r in records] == ["ok"] * 3
    batches = {r["batch"]["id"]: r["batch"]["image_ids"] for r in records}  # same-shape images, up to 2 a batch
    assert all(r["image_id"] in r["batch"]["image_ids"] and r["batch"]["image_ids"] == batches[r["batch"]["id"]] for r in records)
    assert sorted(i for b in batches.values() for i in b) == sorted(ids) and max(map(len, batches.values())) == 2
    for rec, plain in zip(records, base):
        s = rec["settings"]
        assert (s["method"], s["loss"], s["lr"], s["iterations"], s["schedule"]) == ("backprop", {"name": "psnr"}, 0.02, 3, "constant")
        assert s["stopping"]["rule"] == cfg["losses"]["psnr"]["stopping"]["rule"]
        w, p = rec["counted_work"], rec["counted_work"]["passes_tflop"]
        assert rec["tflop"] == w["tflop"] > plain["tflop"] > 0
        assert plain["tflop"] == pytest.approx(p["encode"] + p["decode"]) and plain["settings"]["method"] is None
        stepped = rec["iterations"] + (rec["stop_reason"] == "converged")
        assert w["tflop"] == pytest.approx(p["encode"] + p["decode"] + stepped * p["iteration"] + (rec["iterations"] + 1 - stepped) * p["evaluation"])
        cols = settings_columns(rec)
        assert cols["tflop"] == rec["tflop"] and cols["setting_method"] == "backprop" and cols["setting_lr"] == 0.02
        assert cols["batch_image_ids"] == " ".join(rec["batch"]["image_ids"]) and cols["setting_loss"] == '{"name": "psnr"}'


def test_an_arm_whose_every_image_failed_is_summarized(_summary):
    """Its rows hold a reason and no result columns: counted as failed, nothing to rank."""
    table = pd.DataFrame({"dataset": ["psnr"] * 2, "split": ["test"] * 2, "image_id": ["a", "b"],
                          "status": ["failed"] * 2, "reason": ["out of memory"] * 2})
    perf = _summary(table, ["psnr"])["datasets"]["psnr"]
    assert (perf["succeeded"], perf["failed"], perf["iterations"], perf["counted_work"]) == (0, 2, None, None)
    assert [f["reason"] for f in perf["failed_images"]] == ["out of memory"] * 2
