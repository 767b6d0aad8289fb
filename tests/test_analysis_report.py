"""The report's analysis sections: tables quote the JSON values, the small-n and not-comparable
rules reach the text, figures are written, and write_report places the sections."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from latentopt.report import analysis as A
from latentopt.analysis import categories as C
from latentopt.analysis import hypotheses as H
from latentopt.workflow.metric_specs import HIGHER_IS_BETTER


@pytest.fixture(scope="module", autouse=True)
def low_dpi():
    from latentopt.report import plots as figures

    saved, figures.DPI = figures.DPI, 40
    yield
    figures.DPI = saved


def _cell(mean, half):
    return {"mean": mean, "ci95_low": mean - half, "ci95_high": mean + half, "n": 9}


def test_visual_table_bolds_lowest_and_ratio_closest_to_one():
    cross = {"metrics": ["psnr", "gmsd", "delta_e00", "sharpness_ratio"], "datasets": {
        "baseline": {"all": {"gmsd": _cell(0.10, 0.01), "delta_e00": _cell(3.0, 0.2), "sharpness_ratio": _cell(0.60, 0.05)}},
        "psnr": {"all": {"gmsd": _cell(0.08, 0.01), "delta_e00": _cell(2.5, 0.2), "sharpness_ratio": _cell(1.30, 0.05)}},
        "lpips": {"all": {"gmsd": _cell(0.09, 0.01), "delta_e00": _cell(2.8, 0.2), "sharpness_ratio": _cell(0.95, 0.05)}},
    }}
    t = A.visual_quality_table(cross, ["baseline", "psnr", "lpips"])
    rows = {r[0]: r[1:] for r in t["rows"]}
    assert rows["psnr"][0] == "**0.0800 ± 0.0100**" and rows["psnr"][1] == "**2.50 ± 0.20**"
    assert rows["lpips"][2] == "**0.950 ± 0.050**" and not rows["psnr"][2].startswith("**")
    assert t["header"][1:] == ["GMSD ↓", "ΔE00 (CIEDE2000) ↓", "sharpness ratio → 1"]


def _category_analysis():
    rng = np.random.default_rng(0)
    rows, groups = [], []
    for i in range(16):
        base = 20 + rng.normal()
        gain = 1.0 + 0.1 * rng.normal() if i < 8 else 0.2 * rng.normal()
        rows += [{"dataset": "baseline", "split": "t", "image_id": str(i), "status": "ok", "psnr": base},
                 {"dataset": "psnr", "split": "t", "image_id": str(i), "status": "ok", "psnr": base + gain}]
        groups.append({"split": "t", "image_id": str(i), "group_edge_density": "high" if i < 8 else ("low" if i < 12 else "medium")})
    per_image, groups = pd.DataFrame(rows), pd.DataFrame(groups)
    gains = C.group_gains(per_image, groups, ["psnr"], HIGHER_IS_BETTER, alpha=0.05, n_boot=100, seed=0)
    meta = {"edge_density": {"descriptor": "edge_density", "cut_points": [0.01, 0.02], "names": C.GROUP_NAMES["edge_density"]}}
    return {"metadata": {"alpha": 0.05, "min_n_for_test": 6, "metrics": ["psnr"], "edge_density_source": "canny"},
            "groupings": {g: {**meta[g], **v} for g, v in gains.items()}}


def test_category_tables_quote_gains_and_say_n_too_small(tmp_path):
    analysis = _category_analysis()
    [entry] = A.category_tables(analysis)
    assert "edge density from canny" in entry["what"] and "q1 = 0.01" in entry["what"]
    cells = {r[0].split(":")[0]: r[2] for r in entry["table"]["rows"]}
    high = next(t for t in analysis["groupings"]["edge_density"]["tests"]["psnr"] if t["group"] == "high")
    assert cells["high"].startswith(f"**{high['mean_gain']:+.2f} [") and f"n=8 p=" in cells["high"]
    assert cells["low"].endswith("n=4, n too small") and cells["medium"].endswith("n too small")
    path = A.category_figure(analysis, tmp_path / "cat.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _hypotheses(synthetic):
    from latentopt.workflow.config import load_config
    from pathlib import Path

    config = load_config([Path(__file__).resolve().parents[1] / "demo" / "config.yaml"])
    if not synthetic:
        config["metric_networks"]["inception_synthetic"] = False
        config["model"]["kind"] = "diffusers_kl"
    cross = {"datasets": {d: {"all": {"fid": {"fid": f, "ci95_low": f - 1, "ci95_high": f + 1, "n": 3}, "time_s": {"mean": t}}} for d, f, t in [("baseline", 40.0, 0.1), ("psnr", 20.0, 3.0), ("ssim", 60.0, 2.0)]}}
    rows = [{"dataset": d, "split": "t", "image_id": str(i), "status": "ok", "psnr": 20 + g + i, "ssim": 0.5 + g / 10, "lpips_alex": 0.3 - g / 10} for d, g in [("baseline", 0), ("psnr", 2), ("ssim", 1)] for i in range(3)]
    from latentopt.workflow.analysis_settings import hypothesis_settings

    return H.hypothesis_analysis(cross, pd.DataFrame(rows), config["analysis"]["hypotheses"]["expected_fid"], hypothesis_settings(config))


def test_hypothesis_tables_verdicts_and_not_comparable():
    t = A.hypothesis_tables(_hypotheses(synthetic=False))
    rows = {r[0]: r for r in t["expected"]["rows"]}
    assert rows["psnr"][1] == "15–25 ± 3" and rows["psnr"][2] == "[12, 28]" and rows["psnr"][-1] == "consistent"
    assert rows["ssim"][-1] == "outside" and t["not_comparable"] is None
    assert t["n_too_small"] and t["n_points"] == 3
    assert all(r[-1] == "n too small" for r in t["pairs"]["rows"])
    syn = A.hypothesis_tables(_hypotheses(synthetic=True))
    # issue 19: a random Inception gives no verdict at all (was "not comparable (CI would be ...)")
    assert {r[-1] for r in syn["expected"]["rows"]} == {"not judged: uncalibrated network (FID from a randomly initialised Inception)"}
    assert "random" in syn["not_comparable"]


def test_render_sections_place_tables_figures_and_definitions(tmp_path):
    cross = {"metrics": ["gmsd"], "datasets": {"baseline": {"all": {"gmsd": _cell(0.1, 0.01)}}, "psnr": {"all": {"gmsd": _cell(0.08, 0.01)}}}}
    table = pd.DataFrame([{"dataset": d, "split": "t", "image_id": str(i), "status": "ok", "gmsd": v + 0.001 * i} for d, v in [("baseline", 0.1), ("psnr", 0.08)] for i in range(4)])
    hyp = _hypotheses(synthetic=True)
    text = A.render_sections(cross, ["baseline", "psnr"], table, _category_analysis(), hyp, tmp_path / "figs", tmp_path)
    for heading in ("## Visual quality", "## Image categories", "### By edge_density", "## Hypotheses", "The comparison is meaningless in this run", "n = 3", "#### Visual quality (`latentopt/metrics/visual_quality.py`)"):
        assert heading in text, heading
    for name in ("visual_quality.png", "category_gains.png", "arm_correlations.png"):
        assert f"(figs/{name})" in text and (tmp_path / "figs" / name).is_file()
    json.dumps(hyp)  # the JSON written by the rule must serialise
