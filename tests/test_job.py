"""The job's failure protocol, proven by injected faults on real (small) models and images."""

from __future__ import annotations

import shutil

import pytest
import torch
from conftest import job_context, make_config

from latentopt.workflow import layout
from latentopt.core.fileio import read_json
from latentopt.optimize.batches import run_items
from latentopt.optimize.items import group_by_shape
from latentopt.optimize.job import ImageFailure, optimize_chunk
from latentopt.workflow.job_params import optimize_job_args
from latentopt.workflow.plan import build_plan
from latentopt.data.prepare import prepare_chunk


@pytest.fixture()
def prepared(tmp_path, demo_data):
    data = tmp_path / "data"
    shutil.copytree(demo_data, data)
    (data / "train" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated jpeg")
    cfg = make_config(tmp_path / "results", data, **{"losses.psnr.iterations": 4, "run.batch_size": 4})
    plan = build_plan(cfg)
    for entries in plan.splits.values():
        prepare_chunk(entries, cfg["preprocess"], cfg["results_dir"], log=lambda m: None)
    return cfg, plan


def test_chunk_records_bad_image_and_finishes_the_others(prepared):
    cfg, plan = prepared
    ids = [e.image_id for e in plan.splits["train"]]
    assert "broken" in ids
    records = optimize_chunk(**optimize_job_args(cfg, "psnr", "train", ids), device="cpu", log=lambda m: None)
    by_id = {r["image_id"]: r for r in records}
    assert by_id["broken"]["status"] == "failed" and "preparation failed" in by_id["broken"]["reason"]
    for image_id in set(ids) - {"broken"}:
        rec = read_json(layout.per_image(cfg["results_dir"], "psnr", "train", image_id, "json"))
        assert rec["status"] == "ok"
        assert rec["final"]["psnr"] > rec["initial"]["psnr"]
        payload = torch.load(layout.per_image(cfg["results_dir"], "psnr", "train", image_id, "pt"), weights_only=True)
        assert payload["z"].shape == payload["z0"].shape and len(payload["loss_history"]) == 5
    # the job's images are not its declared output (its chunk manifest is): a rerun of the job (a
    # stopped driver, a chunk rerun) finds them in place and restores them, not recomputed
    ok = sorted(set(ids) - {"broken"})
    logged = []
    again = optimize_chunk(**optimize_job_args(cfg, "psnr", "train", ids), device="cpu", log=logged.append)
    assert sum("restored" in line for line in logged) == len(ok) and not any("step " in line for line in logged)
    assert {r["image_id"]: r for r in again if r["status"] == "ok"} == {r["image_id"]: r for r in records if r["status"] == "ok"}


class FaultyModel(torch.nn.Module):
    """Wraps a real model; raises the fault chosen by the test."""

    def __init__(self, inner, oom_above_batch=None, fail_when_white=False, oom_always=False):
        super().__init__()
        self.inner, self.info = inner, inner.info
        self.oom_above_batch, self.fail_when_white, self.oom_always = oom_above_batch, fail_when_white, oom_always
        self.batch_sizes = []

    def encode(self, x):
        if self.oom_always:
            raise torch.OutOfMemoryError("injected CUDA out of memory")
        if self.fail_when_white and bool((x.flatten(1).mean(1) > 0.99).any()):
            raise ValueError("injected failure on the white image")
        return self.inner.encode(x.to("cpu"))

    def decode(self, z):
        """The optimization decodes the whole batch with gradients: where real OOMs happen."""
        self.batch_sizes.append(z.shape[0])
        if self.oom_always or (self.oom_above_batch and z.shape[0] > self.oom_above_batch):
            raise torch.OutOfMemoryError("injected CUDA out of memory")
        return self.inner.decode(z)


def _ctx_and_items(cfg, split="test"):
    return job_context(cfg, "psnr", split)


def test_oom_halves_the_batch_until_it_fits(prepared):
    cfg, _ = prepared
    ctx, items = _ctx_and_items(cfg)
    items = max(group_by_shape(items), key=len)
    assert len(items) >= 2
    ctx.model = FaultyModel(ctx.model, oom_above_batch=1)
    results = run_items(ctx, items, batch_size=4)
    assert [r["status"] for r in results] == ["ok"] * len(items)
    assert all(r["batch_size"] == 1 and r["batch"]["rows"] == 1 for r in results)
    # the first try runs at the batch size in force (its images padded to 4 rows), the last at the halved one
    assert ctx.model.batch_sizes[0] == 4 and ctx.model.batch_sizes[-1] == 1


def test_oom_at_batch_one_moves_to_cpu(prepared):
    cfg, _ = prepared
    ctx, items = _ctx_and_items(cfg)
    ctx.model = FaultyModel(ctx.model, oom_always=True)
    ctx.device = torch.device("meta")  # any non-CPU device: the fallback must leave it
    results = run_items(ctx, items[:1], batch_size=1)
    assert results[0]["status"] == "ok" and results[0]["device"] == "cpu"


def test_oom_without_fallback_is_recorded(prepared):
    cfg, _ = prepared
    cfg["run"]["cpu_fallback"] = False
    ctx, items = _ctx_and_items(cfg)
    ctx.model = FaultyModel(ctx.model, oom_always=True)
    ctx.device = torch.device("meta")
    results = run_items(ctx, items[:1], batch_size=1)
    assert results[0]["status"] == "failed" and "out of memory" in results[0]["reason"]


def test_an_error_in_a_batch_fails_only_the_culprit(prepared):
    cfg, _ = prepared
    ctx, items = _ctx_and_items(cfg)
    group = max(group_by_shape(items), key=len)
    group[0].model_input = group[0].model_input * 0 + 255  # the culprit: a white image
    ctx.model = FaultyModel(ctx.model, fail_when_white=True)
    results = run_items(ctx, group, batch_size=4)
    status = {r["item"].image_id: r["status"] for r in results}
    assert status[group[0].image_id] == "failed"
    assert all(status[i.image_id] == "ok" for i in group[1:])
    assert "injected failure" in next(r for r in results if r["status"] == "failed")["reason"]


def test_fatal_policy_fails_the_job(prepared):
    cfg, plan = prepared
    cfg["run"]["failure_policy"] = "fatal"
    ids = [e.image_id for e in plan.splits["train"]]
    with pytest.raises(ImageFailure, match="broken"):
        optimize_chunk(**optimize_job_args(cfg, "psnr", "train", ids), device="cpu", log=lambda m: None)


def test_timeout_is_recorded_as_failure(prepared):
    cfg, plan = prepared
    cfg["run"]["timeout_per_image_s"] = 1e-6
    ids = [e.image_id for e in plan.splits["val"]]
    records = optimize_chunk(**optimize_job_args(cfg, "psnr", "val", ids), device="cpu", log=lambda m: None)
    assert all(r["status"] == "failed" and r["reason"].startswith("timeout") for r in records)


def test_tampered_reference_is_not_trusted(prepared):
    cfg, plan = prepared
    image_id = plan.splits["val"][0].image_id
    png = layout.original_png(cfg["results_dir"], "val", image_id)
    png.write_bytes(png.read_bytes()[:-10])
    records = optimize_chunk(**optimize_job_args(cfg, "baseline", "val", [image_id]), device="cpu", log=lambda m: None)
    assert records[0]["status"] == "failed" and "checksum" in records[0]["reason"]


def test_the_device_lease_is_entered_after_the_cpu_side_start_up(prepared, monkeypatch, tmp_path):
    """With more concurrent jobs than GPUs, a job loads its model and reads its images before it
    waits for a GPU, and loads the model once (moved, not loaded again, once leased)."""
    import contextlib

    from latentopt.models import autoencoders

    cfg, plan = prepared
    events = []
    real_load = autoencoders.load_autoencoder

    def load(*args, **kwargs):
        events.append("model loaded")
        return real_load(*args, **kwargs)

    @contextlib.contextmanager
    def lease():
        events.append("lease")
        yield "cpu"
        events.append("lease released")

    monkeypatch.setattr(autoencoders, "load_autoencoder", load)
    ids = [e.image_id for e in plan.splits["val"]]
    stages_path = tmp_path / "logs" / "job.stages.json"
    records = optimize_chunk(**optimize_job_args(cfg, "psnr", "val", ids), device=lease(), log=events.append, stages_path=stages_path)
    assert [r["status"] for r in records] == ["ok"] * len(ids)
    assert events.count("model loaded") == 1
    assert events.index("model loaded") < events.index("lease") and events[-1] == "lease released"
    startup = next(e for e in events if "start-up:" in e)
    assert events.index("lease") < events.index(startup) and "waiting for the device" in startup
    # the wall-time split, machine-readable: every stage named, adding up to the wall time
    split = read_json(stages_path)
    stages = split["stages_s"]
    for name in ("model_load", "image_reading", "waiting_for_device", "device_setup", "encode",
                 "optimization", "exact_decodes", "metrics", "writes", "other"):
        assert stages[name] >= 0, name
    assert "imports" in stages or "python_start_and_imports" in stages
    assert sum(stages.values()) == pytest.approx(split["wall_s"])
    assert split["outside_adam_loop_s"] == pytest.approx(split["wall_s"] - stages["optimization"])
    # the optimization stage holds the per-image optimization times (and only the Adam loop)
    assert stages["optimization"] >= sum(r["optimization_time_s"] for r in records) - 1e-6
    assert split["images"] == len(ids) and split["arm"] == "psnr"


def test_the_decoder_step_settings_reach_the_adam_loop(prepared, monkeypatch):
    """run.precision fp16 and a precision schedule configured -> the job's Adam loop gets the
    schedule (fp16, then fp32 for the last 2 of 4 iterations) and a gradient scaler."""
    from latentopt.optimize import optimizer

    cfg, plan = prepared
    cfg["run"].update(precision="fp16", final_precision_steps=2, final_precision="fp32")
    seen = []
    real = optimizer.optimize_latents  # the job calls it through optimize_with_retry

    def spy(*args, **kwargs):
        seen.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(optimizer, "optimize_latents", spy)
    ids = [e.image_id for e in plan.splits["val"]]
    records = optimize_chunk(**optimize_job_args(cfg, "psnr", "val", ids), device="cpu", log=lambda m: None)
    assert [r["status"] for r in records] == ["ok"] * len(ids)
    schedule = seen[0]["precision"]
    assert [schedule(t) for t in range(5)] == ["fp16", "fp16", "fp32", "fp32", "fp32"]
    assert seen[0]["grad_scaler"] is not None and seen[0]["grad_scaler"].get_scale() > 1
