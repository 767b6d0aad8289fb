"""Expected-FID verdicts and the per-arm correlation matrix (exact permutation p, small-n rule)."""

from __future__ import annotations

import copy
import math

import numpy as np
import pandas as pd
import pytest

from latentopt.analysis import hypotheses as H
from latentopt.workflow.analysis_settings import fid_not_comparable, hypothesis_settings
from latentopt.workflow.metric_specs import HIGHER_IS_BETTER


def test_interval_relation_cases():
    assert H.interval_relation(14, 20, 12, 28) == "consistent"
    assert H.interval_relation(29, 35, 12, 28) == "outside"
    assert H.interval_relation(5, 11, 12, 28) == "outside"
    assert H.interval_relation(25, 31, 12, 28) == "inconclusive"
    assert H.interval_relation(None, None, 12, 28) == "inconclusive"


def _cross(fids):
    return {"datasets": {d: {"all": {"fid": None if f is None else {"fid": f[0], "ci95_low": f[1], "ci95_high": f[2], "n": 60}, "time_s": {"mean": t}}} for d, (f, t) in fids.items()}}


def _config(synthetic: bool):
    from latentopt.workflow.config import load_config

    config = load_config([__import__("pathlib").Path(__file__).resolve().parents[1] / "demo" / "config.yaml"])
    config = copy.deepcopy(config)
    if not synthetic:
        config["metric_networks"]["inception_synthetic"] = False
        config["model"]["kind"] = "diffusers_kl"
    return config


def _expected(cross, config):
    """The expected-FID table of ``config``'s ranges, with its settings."""
    return H.expected_fid_table(cross, config["analysis"]["hypotheses"]["expected_fid"], hypothesis_settings(config))


def test_expected_fid_verdicts_use_the_tolerance_and_refuse_synthetic_fid():
    cross = _cross({"baseline": ((40, 38, 42), 0.1), "psnr": ((27, 26, 27.9), 5), "ssim": ((60, 55, 65), 5), "lpips": ((33, 31, 36), 5), "other": ((1, 0, 2), 5)})
    rows = {r["arm"]: r for r in _expected(cross, _config(synthetic=False))}
    assert set(rows) == {"psnr", "ssim", "lpips"}  # no expectation for 'other', none for baseline
    assert rows["psnr"]["accepted_high"] == 28 and rows["psnr"]["verdict"] == "consistent"  # 25 + 3
    assert rows["ssim"]["verdict"] == "outside"  # 55 > 45 + 5
    assert rows["lpips"]["verdict"] == "inconclusive"  # CI 31-36 straddles 34
    syn = {r["arm"]: r for r in _expected(cross, _config(synthetic=True))}
    # issue 19: a random Inception's verdict is the report's one wording, not "not comparable"
    assert all(r["verdict"] == "not judged: uncalibrated network" for r in syn.values())
    assert all("Inception" in r["verdict_reason"] for r in syn.values())
    assert syn["ssim"]["interval_relation"] == "outside"
    assert "random" in fid_not_comparable(_config(synthetic=True))
    # a calibrated Inception on a random autoencoder: the FID is calibrated, the model is not the seed's
    only_model = _config(synthetic=False)
    only_model["model"]["kind"] = "synthetic_kl"
    rows = {r["arm"]: r for r in _expected(cross, only_model)}
    assert {r["verdict"] for r in rows.values()} == {"not comparable"}
    assert {r["verdict_reason"] for r in rows.values()} == {"randomly initialised autoencoder"}
    assert "verdict_reason" not in {k for r in _expected(cross, _config(synthetic=False)) for k in r}


def test_hypotheses_json_and_report_say_the_same_words_for_a_random_inception():
    """hypothesis_analysis.json's verdict and the report's hypotheses table use the one wording
    (objectives.NOT_JUDGED), which the report's every other uncalibrated verdict uses too."""
    from latentopt.report import analysis as A
    from latentopt.workflow.objectives import NOT_JUDGED

    config = _config(synthetic=True)
    cross = _cross({"baseline": ((40, 38, 42), 0.1), "psnr": ((27, 26, 27.9), 5), "ssim": ((60, 55, 65), 5)})
    rows = [{"dataset": d, "split": "t", "image_id": str(i), "status": "ok", "psnr": 20 + g + i, "ssim": 0.5 + g / 10, "lpips_alex": 0.3 - g / 10} for d, g in [("baseline", 0), ("psnr", 2), ("ssim", 1)] for i in range(3)]
    analysis = H.hypothesis_analysis(cross, pd.DataFrame(rows), config["analysis"]["hypotheses"]["expected_fid"], hypothesis_settings(config))
    json_verdicts = {r["verdict"] for r in analysis["expected_fid"]}
    assert json_verdicts == {NOT_JUDGED} == {"not judged: uncalibrated network"}
    report_verdicts = {r[-1] for r in A.hypothesis_tables(analysis, cross)["expected"]["rows"]}
    assert report_verdicts == {f"{NOT_JUDGED} (FID from a randomly initialised Inception)"}
    assert not any("not comparable" in v for v in json_verdicts | report_verdicts)


def test_exact_spearman_p_counts_pairings():
    # a perfect rank correlation of n points: 2 of the n! pairings reach |rho| = 1
    assert H.exact_spearman_p([1, 2, 3], [10, 20, 30]) == pytest.approx(2 / 6)
    assert H.exact_spearman_p([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(2 / 24)
    assert H.exact_spearman_p([1, 2, 3, 4, 5], [1, 2, 3, 4, 5]) == pytest.approx(2 / 120)
    # rho = 0.5; the 6 pairings give rho 1, .5, .5, -.5, -.5, -1: every |rho| >= 0.5
    assert H.exact_spearman_p([1, 2, 3], [1, 3, 2]) == pytest.approx(1.0)


def _per_image(gains):
    rows = []
    for d, g in gains.items():
        for i in range(3):
            rows.append({"dataset": d, "split": "test", "image_id": str(i), "status": "ok", "psnr": 20 + i + g, "ssim": 0.5 + g / 10, "lpips_alex": 0.4 - g / 10, "time_s": 0.1 + g})
    return pd.DataFrame(rows)


def test_arm_points_and_small_n_rule():
    gains = {"baseline": 0.0, "a": 1.0, "b": 2.0, "c": 3.0}
    cross = _cross({"baseline": ((40, 38, 42), 0.1), "a": ((35, 33, 37), 1), "b": ((30, 28, 32), 2), "c": ((25, 23, 27), 3)})
    points = H.arm_points(cross, _per_image(gains), HIGHER_IS_BETTER)
    by = {p["dataset"]: p for p in points}
    assert by["c"]["psnr_improvement"] == pytest.approx(3.0)
    assert by["c"]["lpips_alex_improvement"] == pytest.approx(0.3)  # lower is better: sign flipped
    assert by["baseline"]["psnr_improvement"] == 0.0
    assert by["c"]["time_s"] == pytest.approx(3.1)  # mean per-image time of the dataset
    corr = H.arm_correlations(points, alpha=0.05)
    assert corr["n_points"] == 4 and corr["n_too_small"]  # 2 / 4! = 0.083 >= 0.05
    assert corr["rho"]["fid"]["psnr_improvement"] == pytest.approx(-1.0)
    assert all(p["p_exact"] is None and p["n_too_small"] for p in corr["pairs"])
    five = points + [{"dataset": "d", "fid": 20.0, "time_s": 4.0, "psnr_improvement": 4.0, "ssim_improvement": 0.4, "lpips_alex_improvement": 0.4}]
    corr5 = H.arm_correlations(five, alpha=0.05)
    pair = next(p for p in corr5["pairs"] if {p["a"], p["b"]} == {"fid", "time_s"})
    assert not corr5["n_too_small"] and pair["p_exact"] == pytest.approx(2 / math.factorial(5))


def test_fid_absent_is_left_out():
    gains = {"baseline": 0.0, "a": 1.0, "b": 2.0}
    cross = _cross({"baseline": (None, 0.1), "a": (None, 1), "b": (None, 2)})
    points = H.arm_points(cross, _per_image(gains), HIGHER_IS_BETTER)
    corr = H.arm_correlations(points, alpha=0.05)
    assert "fid" not in corr["names"] and "psnr_improvement" in corr["names"]
    assert np.isnan(corr["rho"]["psnr_improvement"]["psnr_improvement"]) or corr["rho"]["psnr_improvement"]["psnr_improvement"] == 1.0


@pytest.mark.parametrize("override, fragment", [
    ({"analysis.categories.metrics": ["sharpness_ratio"]}, "analysis.categories.metrics"),
    ({"analysis.categories.metrics": ["lpips_vgg"], "evaluation.lpips_nets": ["alex"]}, "analysis.categories.metrics"),
    ({"analysis.categories.csv": "/nonexistent/cats.csv"}, "analysis.categories.csv"),
    ({"analysis.hypotheses.expected_fid": {"psnr": {"low": 30, "high": 20, "tolerance": 1}}}, "analysis.hypotheses.expected_fid.psnr"),
])
def test_analysis_config_errors_name_the_key(override, fragment):
    from pathlib import Path

    from latentopt.workflow.config import ConfigError, check_config, load_config

    config = load_config([Path(__file__).resolve().parents[1] / "demo" / "config.yaml"], override)
    with pytest.raises(ConfigError, match=fragment):
        check_config(config, losses=False)
