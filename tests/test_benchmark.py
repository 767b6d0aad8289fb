"""bench/benchmark.py: pure helpers (fast) and one reduced end-to-end run (``--smoke``: two
configurations, 3 iterations, 32x48 crops, one tiny real Snakemake run of the demo; 20-80 s on
2 CPU cores depending on their load, hence marked slow)."""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "bench" / "benchmark.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("latentopt_benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


def test_gpu_peak_table(bench):
    key, peak = bench.gpu_peak("NVIDIA H100 80GB HBM3")
    assert key == "H100 SXM" and peak["bf16"] == pytest.approx(989.4e12)
    assert bench.gpu_peak("NVIDIA H100 PCIe")[0] == "H100 PCIe"
    assert bench.gpu_peak("NVIDIA H200")[0] == "H200 SXM"
    assert bench.gpu_peak("NVIDIA A100-SXM4-80GB")[0] == "A100"
    assert bench.gpu_peak("NVIDIA H100 NVL") == (None, None)  # not in the table: no MFU
    assert bench.gpu_peak(None) == (None, None)
    for peaks in bench.PEAK_FLOPS.values():
        assert peaks["fp32"] < peaks["tf32"] < peaks["bf16"]


def test_overhead_fit_is_never_negative(bench):
    assert bench._fit([1, 2, 3], [5.0, 7.0, 9.0]) == pytest.approx((3.0, 2.0))
    a, b = bench._fit([1, 2, 3], [9.0, 7.0, 5.0])  # noise says "more images, less overhead"
    assert (a, b) == (pytest.approx(7.0), 0.0)
    a, b = bench._fit([10, 20], [1.0, 4.0])  # intercept would be negative
    assert a == 0.0 and b > 0
    assert bench._fit([2, 2], [3.0, 5.0]) == (4.0, 0.0)


def test_quality_deltas(bench):
    ref = {"batch": 2, "per_image": {"psnr_initial": [30, 31], "psnr": [33.0, 34.0], "ssim": [0.9, 0.8],
                                     "lpips": [0.1, 0.2]}}
    row = {"batch": 2, "per_image": {"psnr_initial": [30, 31], "psnr": [33.02, 33.94], "ssim": [0.9, 0.8],
                                     "lpips": [0.1, 0.2]}}
    thr = {"psnr_db": 0.05, "ssim": 0.001, "lpips": 0.001}
    q = bench.quality_deltas(row, ref, thr)
    assert q["delta_psnr_mean"] == pytest.approx(-0.02)
    assert q["delta_psnr_max_abs"] == pytest.approx(0.06)
    assert q["matches_fp32"] is True
    row["per_image"]["psnr"] = [32.9, 33.9]
    assert bench.quality_deltas(row, ref, thr)["matches_fp32"] is False


def test_config_names(bench):
    assert bench.Config(1).name == "fp32 b1"
    assert bench.Config(8, "bf16", True, True, True).name == "bf16 b8 channels_last compile ckpt"


def test_sd_vae_reference_flops_are_counted(bench):
    """The full-size SD-VAE decoder FLOPs come from FlopCounterMode (meta device), and agree with
    the figure in shared/notes/facts.md (1.45 TFLOP forward at 480x320; frozen fwd+bwd = 2x)."""
    ref = bench.sd_vae_reference_flops(320, 480)
    assert ref["decoder_forward"] / 1e12 == pytest.approx(1.45, rel=0.03)
    assert ref["decoder_forward_backward_frozen"] / ref["decoder_forward"] == pytest.approx(2.0, rel=0.02)


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "smoke.json"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--smoke", "--out", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(out.read_text()), proc.stdout


@pytest.mark.slow
def test_smoke_run_fields_and_values(smoke):
    result, stdout = smoke
    assert result["schema"] == "latentopt-benchmark/1" and result["mode"] == "smoke"
    for key in ("machine", "gpu_figures", "setup", "flops", "throughput", "per_loss", "orchestration", "projection"):
        assert key in result, key
    tp = result["throughput"]
    rows = {r["name"]: r for r in tp["configs"]}
    assert tp["baseline"] == "fp32 b1" and rows["fp32 b1"]["ratio_to_baseline"] == 1.0
    assert len(rows) >= 2
    for r in rows.values():
        assert r["image_iterations_per_s"] > 0 and r["ratio_to_baseline"] > 0
        assert r["image_iterations"] == r["batch"] * result["setup"]["iterations"]
        assert r["saved_activations_per_image_mb"] > 0
        q = r["quality"]
        for k in ("delta_psnr_mean", "delta_ssim_mean", "delta_lpips_mean", "psnr_final_mean"):
            assert q[k] is not None and math.isfinite(q[k]), k
        assert isinstance(q["matches_fp32"], bool)
        if r["precision"] == "fp32":  # exact batching: fp32 results do not depend on batch size
            assert abs(q["delta_psnr_mean"]) < 0.05
    assert rows[tp["quality_reference"]]["quality"]["delta_psnr_mean"] == 0.0
    assert result["flops"]["per_image_iteration"] > 0
    if result["machine"]["gpu"] is None:
        assert "still to be measured" in result["gpu_figures"]
        assert all(r["mfu"] is None for r in rows.values())
        assert result["projection"]["meets_15_min_on_one_h100"] is None
    assert {p["arm"] for p in result["per_loss"]} == {"psnr", "ssim", "lpips"}
    assert all(p["image_iterations_per_s"] > 0 for p in result["per_loss"])
    orch = result["orchestration"]
    assert not orch["errors"]
    run = orch["runs"][0]
    assert run["returncode"] == 0 and run["images_ok"] == run["image_records"] > 0
    assert 0 < run["optimization_time_sum_s"] < run["wall_s"]
    assert 0 < run["efficiency"] < 1
    proj = result["projection"]
    assert proj["n_images"] > 0 and proj["total_s"] > proj["optimization_s"] > 0
    assert "Throughput" in stdout and "Orchestration" in stdout


def test_config_flags_for_the_decoder_step(bench):
    cfg = bench.parse_config("fp16:b8:compile:last5")
    assert (cfg.batch, cfg.precision, cfg.compile, cfg.final_steps, cfg.compile_mode) == (8, "fp16", True, 5, "default")
    assert cfg.name == "fp16 b8 compile last5-fp32"
    step = cfg.step()
    assert step.compile and step.final_precision_steps == 5 and step.schedule(50)(45) == "fp32"
    assert step.schedule(50)(44) == "fp16"
    cg = bench.parse_config("tf32:b8:cg")
    assert cg.compile and cg.compile_mode == "reduce-overhead" and cg.step().compile_mode == "reduce-overhead"
    for bad in ("fp16:b8:last", "fp8:b8", "tf32:b8:fast", "tf32:b8:last2:last3"):
        with pytest.raises(Exception, match="bad config"):
            bench.parse_config(bad)


def _gpu_check():
    spec = importlib.util.spec_from_file_location("latentopt_gpu_check", REPO / "bench" / "device" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _row(name, speed, dpsnr):
    return {"name": name, "image_iterations_per_s": speed, "mfu": None, "warmup_s": 1.0,
            "quality": {"matches_fp32": abs(dpsnr) <= 0.05, "delta_psnr_mean": dpsnr, "delta_ssim_mean": 0.0,
                        "delta_lpips_mean": 0.0}}


def test_gpu_check_picks_the_fastest_candidate_that_matches_fp32_on_both_models(bench):
    gc = _gpu_check()
    taef2 = {"tf32 b16": _row("tf32 b16", 300, 0.003), "fp16 b16": _row("fp16 b16", 450, -0.01),
             "fp16 b16 compile": _row("fp16 b16 compile", 600, -0.2)}
    sd = {"tf32 b8": _row("tf32 b8", 40, 0.0), "fp16 b8": _row("fp16 b8", 60, 0.01),
          "fp16 b8 compile": _row("fp16 b8 compile", 120, 0.01)}  # fails on TAEF2: not chosen
    chosen, table = gc.choose(taef2, sd, 16, 8)
    assert chosen == "fp16"
    by = {r["candidate"]: r for r in table}
    assert by["fp16+compile"]["qualifies"] is False and by["tf32"]["qualifies"] is True
    assert not by["tf32+cudagraphs"]["qualifies"]  # not measured: never chosen
    assert gc.choose({}, {}, 16, 8)[0] == "tf32"  # nothing measured: today's default


def test_end_to_end_summary_and_projection_from_constructed_records(bench):
    from bench.end_to_end import project, summarize

    jobs = [{"images": 4, "wall_s": 30.0, "outside_adam_loop_s": 20.0,
             "stages_s": {"imports": 5.0, "model_load": 3.0, "encode": 0.4, "optimization": 10.0,
                          "exact_decodes": 0.8, "metrics": 0.4, "writes": 0.4, "other": 10.0}}] * 4
    row = {"n_images": 4, "arms": ["baseline", "psnr", "ssim", "lpips"], "run": {"precision": "tf32"},
           "phases": {"optimize": {"wall_s": 100.0, "returncode": 0},
                      "evaluate_and_report": {"wall_s": 20.0, "returncode": 0}},
           "optimize_jobs": jobs}
    records = [{"status": "ok", "arm": arm, "optimization_time_s": 2.0, "iterations": 40}
               for arm in ("psnr", "ssim", "lpips") for _ in range(4)]
    summarize(row, records, flops=1e12, peak={"tf32": 1e14, "bf16": 2e14})
    assert row["optimization_time_sum_s"] == 24.0 and row["efficiency"] == pytest.approx(24.0 / 120.0)
    assert row["efficiency_optimize_phase"] == pytest.approx(0.24)
    assert row["per_loss"]["psnr"]["image_iterations_per_s"] == pytest.approx(20.0)
    assert row["mfu_in_adam_loop"]["mfu"] == pytest.approx(12 * 40 * 1e12 / 24.0 / 1e14)
    assert row["job_overlap"] == pytest.approx(1.2)
    pj = project(row, {"run": {"images_per_job": 100}})
    assert pj["optimize_jobs"] == 4 * 5 and pj["per_job_fixed_s"] == pytest.approx(18.0)
    assert pj["per_image_s"] == pytest.approx(2.0 / 4)
    expected = 3 * 500 * 40 / 20.0 + 20 * 18.0 + 0.5 * 500 * 4 + 20.0 * 125
    assert pj["total_s"] == pytest.approx(expected)
