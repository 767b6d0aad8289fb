"""End to end through Snakemake on the embedded demo (the demo's own autoencoder trained with a tiny
budget, or the random synthetic_kl; random metric networks; CPU, minutes).

One run (the session fixture finished_demo in conftest) builds the whole tree; the other tests then damage it the ways users do (delete an
image's outputs, kill -9 a run, corrupt an image, a bad config) and check what is redone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from conftest import snakemake, snakemake_cmd, write_config

from latentopt.workflow import layout
from latentopt.data.datasets import load_dataset
from latentopt.core.fileio import read_json
from latentopt.devtools.snakemake_cli import chunk_stats, job_stats

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo(finished_demo):
    """The session's finished demo run (conftest), which these tests may change and rerun."""
    return finished_demo


def test_demo_writes_the_seed_tree_with_synthetic_marks(demo):
    _, results = demo
    label = read_json(results / "demo_model" / "demo_autoencoder.json")["description"]
    assert label.startswith("autoencoder trained for the demo on 640 crops in ") and label.endswith("not SD-VAE")
    record = read_json(layout.per_image(results, "psnr", "train", "astronaut", "json"))
    assert label in record["synthetic"] and record["model"]["kind"] == "demo_trained"
    for arm, stem in [("psnr", "bsds500_optimized_psnr"), ("ssim", "bsds500_optimized_ssim"),
                      ("lpips", "bsds500_optimized_lpips"), ("baseline", "bsds500_baseline")]:
        ds = load_dataset(results / f"{arm}_dataset" / "pytorch" / f"{stem}.pt")
        assert label in ds["metadata"]["synthetic"], "the demo model must be declared in every dataset"
        assert ds["metadata"]["n_images"] == 6 and ds["metadata"]["n_ok"] == 5
        assert [f["image_id"] for f in ds["metadata"]["failed"]] == ["corrupt"]
        sample = ds["samples"][0]
        assert sample["optimized_latent"].dtype == torch.float32 and sample["optimized_latent"].device.type == "cpu"
        pngs = sorted(p.relative_to(results / f"{arm}_dataset" / "png").as_posix() for p in (results / f"{arm}_dataset" / "png").rglob("*.png"))
        assert len(pngs) == 5 and {p.split("/")[0] for p in pngs} == {"train", "val", "test"}
    assert len(list((results / "original_bsds500").rglob("*.png"))) == 5
    ev = results / "evaluation_results"
    for name in ("cross_evaluation_matrix.json", "statistical_analysis.json", "performance_summary.json"):
        assert label in read_json(ev / name)["metadata"]["synthetic"]
    perf = read_json(ev / "performance_summary.json")
    assert perf["datasets"]["psnr"]["failed"] == 1 and perf["datasets"]["psnr"]["succeeded"] == 5
    report = layout.report_file(results).read_text()
    assert "synthetic" in report.lower() and "corrupt" in report and label in report


def test_analysis_outputs_and_report_sections(demo):
    """Visual-quality metrics per image, categories of the 5 readable originals, hypotheses."""
    import pandas as pd

    _, results = demo
    ev = results / "evaluation_results"
    table = pd.read_csv(ev / "per_image_metrics.csv")
    ok = table[table["status"] == "ok"]
    assert ok[["gmsd", "delta_e00", "sharpness_ratio"]].notna().all().all() and len(ok) == 20
    cats = pd.read_csv(ev / "image_categories.csv", dtype={"image_id": str})
    assert len(cats) == 5 and "corrupt" not in set(cats["image_id"])
    analysis = read_json(ev / "category_analysis.json")
    rows = analysis["groupings"]["edge_density"]["tests"]["psnr"]
    assert all(r["n_too_small"] and r["p_holm"] is None for r in rows)  # at most 2 images per group
    hyp = read_json(ev / "hypothesis_analysis.json")
    assert {r["verdict"] for r in hyp["expected_fid"]} == {"not judged: uncalibrated network"}  # the report's wording (issue 19)
    report = layout.report_file(results).read_text() + layout.report_appendix_file(results).read_text()  # issue 19: the sections moved to the appendix
    for heading in ("## Visual quality", "## Image categories", "## Hypotheses", "The comparison is meaningless in this run"):
        assert heading in report


def test_optimization_improved_its_own_metric(demo):
    _, results = demo
    cross = read_json(results / "evaluation_results" / "cross_evaluation_matrix.json")["datasets"]
    assert cross["psnr"]["all"]["psnr"]["mean"] > cross["baseline"]["all"]["psnr"]["mean"]
    assert cross["ssim"]["all"]["ssim"]["mean"] > cross["baseline"]["all"]["ssim"]["mean"]
    assert cross["lpips"]["all"]["lpips_alex"]["mean"] < cross["baseline"]["all"]["lpips_alex"]["mean"]


def test_complete_run_has_nothing_to_do(demo):
    cfg, _ = demo
    out = snakemake(cfg, "-n")
    assert "Nothing to be done" in out.stdout + out.stderr


def test_how_the_evaluation_runs_reruns_nothing(demo):
    """evaluation.batch_size and evaluation.threads say how the evaluate_dataset jobs run, not what
    they compute: another value of either plans no job."""
    cfg, _ = demo
    out = snakemake(cfg, "-n", "--config", "evaluation={batch_size: 1, threads: 2}")
    assert "Nothing to be done" in out.stdout + out.stderr


def _mtimes(results: Path) -> dict[Path, float]:
    return {p: p.stat().st_mtime for p in results.rglob("per_image/*/*.json")}


def test_deleting_one_image_recomputes_only_its_job(demo):
    """With images_per_job 2 the job of test/hubble also holds test/astronaut_face: that job reruns,
    computes hubble and restores astronaut_face (before the chunk manifests: both recomputed);
    nothing else is rewritten."""
    cfg, results = demo
    target_json = layout.per_image(results, "psnr", "test", "hubble", "json")
    mate_json = layout.per_image(results, "psnr", "test", "astronaut_face", "json")
    before = _mtimes(results)
    old_finish = read_json(target_json)["finished_at"]
    target_json.unlink()
    layout.per_image(results, "psnr", "test", "hubble", "pt").unlink()
    plan = snakemake(cfg, "-n", "--quiet", "rules").stdout
    counts = chunk_stats(plan)
    assert {rule: n for rule, n in counts.items() if rule.startswith("optimize_")} == {"optimize_test_000": 1}, plan
    snakemake(cfg)
    after = _mtimes(results)
    changed = {p for p in before if after.get(p) != before[p]}
    assert changed == {target_json}, f"other images were rewritten: {sorted(map(str, changed))[:5]}"
    assert mate_json.is_file()
    assert read_json(target_json)["finished_at"] > old_finish


def test_invalid_config_fails_before_any_job(tmp_path, demo_data):
    results = tmp_path / "results"
    bad = write_config(tmp_path / "bad.yaml", results, demo_data, run={"batchsize": 4})
    out = snakemake(bad, check=False)
    assert out.returncode != 0 and "batchsize" in out.stdout + out.stderr
    assert not results.exists()
    missing = write_config(tmp_path / "missing.yaml", results, tmp_path / "no-such-data")
    out = snakemake(missing, check=False)
    assert out.returncode != 0 and "data.root" in out.stdout + out.stderr and not results.exists()


def test_missing_weights_offline_fail_before_any_job(tmp_path, demo_data, monkeypatch):
    results = tmp_path / "results"
    cfg = write_config(tmp_path / "real.yaml", results, demo_data, model={"kind": "diffusers_kl", "source": "CompVis/stable-diffusion-v1-4", "subfolder": "vae"}, allow_synthetic=False, metric_networks={"lpips_random_trunk": False, "inception_synthetic": False})
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    out = snakemake(cfg, check=False)
    text = out.stdout + out.stderr
    assert out.returncode != 0 and not results.exists()
    assert "diffusion_pytorch_model" in text and "alexnet-owt-7be5be79.pth" in text and "pt_inception" in text


def test_kill_minus_9_then_resume_from_checkpoint(tmp_path, demo_data):
    """A run killed mid-optimization resumes from its last checkpoint and ends exactly where an
    uninterrupted run ends (CPU arithmetic is deterministic)."""
    settings = {"use_losses": ["psnr"], "data": {"limit_per_split": 1, "splits": ["train"]}, "quality_gate": {"images_per_loss": 0}, "model": {"kind": "synthetic_kl"},
                "losses": {"psnr": {"iterations": 400, "checkpoint_interval": 20, "stopping": {"rule": "none"}}}}

    def config(name):
        return write_config(tmp_path / f"{name}.yaml", tmp_path / name, demo_data, **settings)

    # the psnr job's declared output: its chunk's manifest (the per-image files it lists are not targets)
    target = lambda name: str(layout.chunk_manifest(tmp_path / name, "psnr", "train_000"))  # noqa: E731
    snakemake(config("reference"), target("reference"))
    reference = torch.load(layout.per_image(tmp_path / "reference", "psnr", "train", "astronaut", "pt"), weights_only=True)

    cfg = config("killed")
    proc = subprocess.Popen(snakemake_cmd(cfg, target("killed")), cwd=REPO, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    ckpt_dir = layout.checkpoint_dir(tmp_path / "killed", "psnr", "train")
    deadline = time.time() + 300
    while time.time() < deadline and not list(ckpt_dir.glob("batch-*.pt")):
        time.sleep(0.2)
    assert list(ckpt_dir.glob("batch-*.pt")), "no checkpoint appeared"
    time.sleep(1.0)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    saved = torch.load(next(ckpt_dir.glob("batch-*.pt")), weights_only=False)["state"]["iteration"]
    assert 0 < saved < 400
    snakemake(cfg, "--unlock")  # the killed driver left its lock behind (docs/reliability.md)
    started = time.monotonic()
    snakemake(cfg, target("killed"))
    print(f"resumed from iteration {saved} of 400 in {time.monotonic() - started:.1f} s")
    log = (tmp_path / "killed" / "logs" / "optimize" / "psnr" / "train_000.log").read_text()
    assert f"from iteration {saved}" in log or "from iteration" in log
    resumed = torch.load(layout.per_image(tmp_path / "killed", "psnr", "train", "astronaut", "pt"), weights_only=True)
    assert resumed["loss_history"] == pytest.approx(reference["loss_history"], rel=1e-6)
    torch.testing.assert_close(resumed["z"], reference["z"])


def test_seed_config_plans_every_image_of_bsds500(bsds_root, tmp_path):
    """config.yaml against the real BSDS500: every one of the 500 images in a chunk of each of the 4
    arms (baseline + 3 losses); Snakemake tracks one manifest per chunk and arm."""
    cfg = write_config(tmp_path / "bsds.yaml", tmp_path / "results", bsds_root)
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--configfile", str(cfg),
           "--directory", str(tmp_path), "--summary"]
    out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600, check=True).stdout
    from latentopt.workflow.config import load_config
    from latentopt.workflow.plan import build_plan

    plan = build_plan(load_config([cfg]))
    assert plan.n_images == 500 and sum(len(c.image_ids) for c in plan.chunks) == 500
    manifests = [line.split("\t")[0] for line in out.splitlines() if "_dataset/chunks/" in line.split("\t")[0]]
    arms = [p.split("/chunks/")[0].rsplit("/", 1)[-1] for p in manifests]
    assert {a: arms.count(f"{a}_dataset") for a in ("baseline", "psnr", "ssim", "lpips")} == {
        a: len(plan.chunks) for a in ("baseline", "psnr", "ssim", "lpips")}, manifests[:5]


def test_unwritable_results_dir_fails_before_any_job(tmp_path, demo_data):
    (tmp_path / "a_file").write_text("not a folder")
    cfg = write_config(tmp_path / "c.yaml", tmp_path / "a_file" / "results", demo_data)
    out = snakemake(cfg, check=False)
    text = out.stdout + out.stderr
    assert out.returncode != 0 and "results_dir: cannot write" in text
    assert "Finished jobid" not in text


def test_adding_a_loss_evaluates_only_the_new_dataset(demo, tmp_path):
    cfg, results = demo
    extra = tmp_path / "extra.yaml"
    extra.write_text(yaml.safe_dump({"losses": {"l1": {"loss": {"name": "l1"}, "iterations": 4}}}))
    cmd = snakemake_cmd(cfg, "-n")
    cmd.insert(cmd.index(str(cfg)) + 1, str(extra))
    out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300, check=True).stdout
    counts = chunk_stats(out)
    assert counts == {"record_settings": 1, "optimize_gate_train_000": 1, "optimize_val_000": 1, "optimize_test_000": 1,
                      "quality_gate": 1, "build_dataset": 1, "evaluate_dataset": 1, "inception_features": 1,
                      "summarize_evaluation": 1, "analyze_categories": 1, "test_hypotheses": 1, "report": 1,
                      "explorer": 1, "all": 1, "total": 14}, out  # the explorer shows every arm
    wildcards = {line.strip() for line in out.splitlines() if line.strip().startswith("wildcards:")}
    assert wildcards == {"wildcards: arm=l1", "wildcards: name=l1"}, wildcards


def test_html_report_of_the_demo(demo, tmp_path):
    """The README's `snakemake --configfile demo/config.yaml --report <file>.html`, on this demo
    tree (its config file added, the HTML written to a scratch folder)."""
    from test_readme import REPORT_COMMAND, readme_commands

    assert any(REPORT_COMMAND.search(c) for c in readme_commands())
    cfg, _ = demo
    html = tmp_path / "report.html"
    snakemake(cfg, "--report", str(html))
    text = html.read_text(errors="replace")
    for name in ("paired_gains.png", "cost_per_image.png", "examples_psnr.png", "FULL_BSDS500_COMPARISON_REPORT.md"):
        assert name in text, name
