"""Real improvement on real photos: TAEF2 (pretrained) on BSDS500 crops, through the job code.

Skipped when ../shared (TAEF2 weights, BSDS500) is absent."""

from __future__ import annotations

import pytest
from conftest import make_config

from latentopt.optimize.job import optimize_chunk

from latentopt.workflow.job_params import optimize_job_args
from latentopt.workflow.plan import build_plan
from latentopt.data.prepare import prepare_chunk


@pytest.fixture(scope="module")
def results(tmp_path_factory, bsds_root, taef2_dir):
    tmp = tmp_path_factory.mktemp("taef2")
    cfg = make_config(
        tmp / "results",
        bsds_root,
        **{
            "data.splits": ["test"],
            "data.limit_per_split": 3,
            "preprocess.crop_box": [96, 144],
            "model": {"kind": "taesd", "encoder": str(taef2_dir / "taef2_encoder.pth"),
                      "decoder": str(taef2_dir / "taef2_decoder.pth"), "variant": "taef2"},
            "allow_synthetic": False,
            "losses.psnr.iterations": 30,
            "losses.ssim.iterations": 30,
            "run.batch_size": 3,
        },
    )
    plan = build_plan(cfg)
    entries = plan.splits["test"]
    prepare_chunk(entries, cfg["preprocess"], cfg["results_dir"], log=lambda m: None)
    ids = [e.image_id for e in entries]
    out = {}
    for arm in ("baseline", "psnr", "ssim"):
        out[arm] = {r["image_id"]: r for r in optimize_chunk(**optimize_job_args(cfg, arm, "test", ids), device="cpu", log=lambda m: None)}
    return out


def test_psnr_loss_gains_at_least_1db_over_baseline(results):
    for image_id, rec in results["psnr"].items():
        base = results["baseline"][image_id]
        assert rec["status"] == base["status"] == "ok"
        assert rec["model"]["synthetic"] is False
        assert rec["final"]["psnr"] >= base["final"]["psnr"] + 1.0, image_id


def test_each_loss_wins_its_own_metric(results):
    ids = list(results["baseline"])
    mean = lambda arm, m: sum(results[arm][i]["final"][m] for i in ids) / len(ids)  # noqa: E731
    assert mean("psnr", "psnr") > mean("ssim", "psnr") > mean("baseline", "psnr") - 1e-9
    assert mean("ssim", "ssim") > mean("psnr", "ssim")
    assert mean("ssim", "ssim") > mean("baseline", "ssim")
