"""bench/scale_stages.py: its synthetic inputs are in the pipeline's formats, and a run at tiny sizes
times every stage (no timing is asserted: only that each stage ran and used some CPU)."""

import json
import sys
from argparse import Namespace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the bench package, as bench/benchmark.py does
from bench import scale_stages  # noqa: E402
from bench.scale_stages import KERNELS, STAGES, case_config, make_inputs, projection  # noqa: E402


def test_projection_is_linear_unless_measured_faster():
    assert projection([], 5000) is None
    assert projection([(500, 2.0)], 5000) == pytest.approx(20.0)
    assert projection([(500, 2.0), (1000, 4.0)], 4000) == pytest.approx(16.0)  # exponent 1
    assert projection([(500, 2.0), (1000, 8.0)], 2000) == pytest.approx(32.0)  # exponent 2 measured
    assert projection([(500, 2.0), (1000, 2.0)], 4000) == pytest.approx(8.0)  # flat: still projected linearly


def test_inputs_have_the_formats_of_the_pipeline_jobs(tmp_path):
    """The per-arm tables have the columns per_image_table makes of the same records (LPIPS apart:
    no network here), the features are what inception_features writes, and every stage's inputs
    exist where the rules put them."""
    from latentopt.analysis.features import load_features
    from latentopt.analysis.scoring import per_image_table
    from latentopt.workflow import layout
    from latentopt.workflow.chunks import listed
    from latentopt.workflow.plan import build_plan

    case = tmp_path / "n24"
    make_inputs(case, 24, Namespace(image_size=(64, 96), images_per_job=5))
    config = case_config(case)
    results = Path(config["results_dir"])
    plan = build_plan(config)
    assert plan.arms == ["baseline", "psnr", "ssim", "lpips"] and plan.n_images == 24 and plan.gate_entries
    records = [layout.per_image(results, "psnr", e.split, e.image_id, "json") for e in plan.chunks[0].entries[:3]]
    ours = pd.read_csv(layout.per_arm_table(results, "psnr"))
    theirs = per_image_table(records, results, {})
    assert list(theirs.columns) == [c for c in ours.columns if not c.startswith("lpips_")]
    assert len(theirs) == len(records) and theirs["psnr"].notna().all()  # the records' PNGs are there (links to the references)
    for arm in plan.arms:
        table = pd.read_csv(layout.per_arm_table(results, arm))
        assert len(table) == 24 and set(table["dataset"]) == {arm}
    feats, calibrated = load_features([layout.features_file(results, n) for n in ["original", *plan.arms]])
    assert feats["original"]["features"].shape == (24, 2048) and feats["original"]["features"].dtype == np.float64
    assert calibrated == {n: False for n in ["original", *plan.arms]}
    ok = pd.read_csv(layout.per_arm_table(results, "lpips")).query("status == 'ok'")
    assert sorted(feats["lpips"]["keys"]) == sorted(f"{s}/{i}" for s, i in zip(ok["split"], ok["image_id"]))
    prepared = listed([layout.prepared_manifest(results, c.name) for c in plan.chunks], "record")
    assert len(prepared) == 24 and all(Path(p).is_file() for p in prepared)
    assert all(layout.gate_file(results, a).is_file() for a in plan.gate_arms)
    assert json.loads((case / ".complete.json").read_text())["n"] == 24
    before = layout.per_arm_table(results, "psnr").stat().st_mtime_ns
    make_inputs(case, 24, Namespace(image_size=(64, 96), images_per_job=5))  # written once
    assert layout.per_arm_table(results, "psnr").stat().st_mtime_ns == before


@pytest.mark.slow  # ten fresh interpreters (one per stage and size): ~45 s on 2 cores
def test_tiny_run_times_every_stage(tmp_path, capsys):
    out = tmp_path / "scale_stages.json"
    assert scale_stages.main(["--sizes", "24", "48", "--images-per-job", "10", "--work-dir", str(tmp_path / "work"),
                              "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    for stage in (*STAGES, KERNELS):
        for n in ("24", "48"):
            assert result["stages"][stage][n]["cpu_s"] > 0, (stage, n)
    assert set(result["stages"]["summarize_evaluation"]["48"]["parts"]) >= {"FID + bootstrap CI", "FID differences (bootstrap)",
                                                                            "KID (paired, unpaired)", "paired tests (bootstrap CIs)"}
    assert set(result["stages"]["report"]["48"]["parts"]) >= {"figures"}
    printed = capsys.readouterr().out
    for label in (*STAGES[1:], "summarize_evaluation (FID on)", "statistics without FID/KID", "FID/KID kernels"):
        assert label in printed
    results = tmp_path / "work" / "n48" / "results"
    assert (results / "FULL_BSDS500_COMPARISON_REPORT.md").is_file()
    assert "fid" in json.loads((results / "evaluation_results" / "cross_evaluation_matrix.json").read_text())["datasets"]["psnr"]["all"]
