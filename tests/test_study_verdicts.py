"""Matched comparisons, counted work as the cost axis, the study-wide test count and the verdict
lines on top of the study report (constructed per-image tables, test_study's helpers)."""

from __future__ import annotations

import re

import numpy as np
import pytest

from latentopt.analysis import frontier as fr
from latentopt.analysis.study_matching import arm_settings, confounds
from latentopt.analysis.study_tests import finding_metrics
from latentopt.analysis.study_verdicts import MAX_LINES
from latentopt.report.study import render_study
from test_study import OBJECTIVES, arm_block, holm_reference, model, perf, run, table

METHOD_ARMS = {"baseline": {}, "psnr": {}, "psnr_cos": {"gmsd": 0.05}, "psnr_gf": {}}


def method_settings(tables) -> dict:
    """psnr: backprop, constant lr; psnr_gf: gradient-free on a cosine warm-up; psnr_cos: its match."""
    blocks = {"psnr": arm_block("psnr"), "psnr_gf": arm_block("psnr", method="gradient_free", schedule="cosine_warmup"), "psnr_cos": arm_block("psnr", schedule="cosine_warmup")}
    return {m: {a: arm_settings(blocks[a], 1) for a in blocks} for m in tables}


@pytest.fixture(autouse=True)
def _objectives(monkeypatch):
    monkeypatch.setitem(OBJECTIVES, "psnr_gf", {"psnr", "mse"})
    monkeypatch.setitem(OBJECTIVES, "psnr_cos", {"psnr", "mse"})


def test_method_and_schedule_differ_no_method_verdict_and_the_confound_named():
    tables = {"big": table(model(20, METHOD_ARMS, 21))}
    a = run(tables, settings=method_settings(tables))
    rows = {(r["a"], r["b"]): r for r in a["methods"]["big"]}
    confounded = rows[("psnr", "psnr_gf")]
    assert not confounded["matched"] and confounded["tests"] == {}
    assert confounded["confounds"] == ["schedule", "warmup_fraction"]  # the method differs too, but is the factor
    matched = rows[("psnr_cos", "psnr_gf")]
    assert matched["matched"] and matched["confounds"] == [] and set(matched["tests"]) == {"ssim", "lpips_alex", "gmsd"}
    assert matched["tests"]["gmsd"]["verdict_study"] == "worse"  # psnr_cos +0.05 GMSD (↓): worse than psnr_gf
    text = render_study(a)
    assert "psnr (backprop) − psnr_gf (gradient_free): differ also in schedule, warmup_fraction: no method verdict" in text.split("## Appendix")[1]
    assert "1 pair(s) of different methods also differ in other settings (schedule, warmup_fraction)" in text.split("## Appendix")[0]
    # only the confounded pair: the verdict line says so and names the confound
    only = run(tables, settings={"big": {k: v for k, v in method_settings(tables)["big"].items() if k != "psnr_cos"}})
    (line,) = [x for x in only["verdicts"]["lines"] if x["question"] == "method"]
    assert not line["shown"] and "no matched pair" in line["why"] and "schedule" in line["why"]


def test_methods_compared_on_metrics_held_out_for_both_and_gate_images_declared():
    tables = {"big": table(model(12, {"baseline": {}, "psnr": {}, "lpips": {}}, 14))}
    s = {"big": {"psnr": arm_settings(arm_block("psnr"), 1), "lpips": arm_settings(arm_block("psnr", method="gradient_free"), 1)}}
    r = run(tables, settings=s, gate_images={("test", "im000"), ("test", "im001")})
    (row,) = r["methods"]["big"]
    assert (row["method_a"], row["method_b"], row["matched"]) == ("backprop", "gradient_free", True)
    assert set(row["tests"]) == {"ssim", "gmsd"}  # neither arm's objective nor a relative of one
    assert r["metadata"]["gate_images"] == {"n": 2, "images": [["test", "im000"], ["test", "im001"]], "in_evidence": True}


def test_a_sweep_verdict_needs_arms_that_differ_in_the_swept_key_alone():
    tables = {"big": table(model(20, {"baseline": {}, "psnr": {"ssim": 0.02}, "psnr-lr0.1": {"ssim": 0.12}}, 22))}
    sweeps = {"psnr": {"psnr": {"lr": 0.05}, "psnr-lr0.1": {"lr": 0.1}}}
    clean = run(tables, sweeps=sweeps)["sweeps"]["big"]["psnr"]
    assert clean["recommendation"]["ssim"]["recommended"] == "psnr-lr0.1"
    s = {"big": {"psnr": arm_settings(arm_block("psnr"), 1), "psnr-lr0.1": arm_settings(arm_block("psnr-lr0.1", iterations=100), 1)}}
    mixed = run(tables, sweeps=sweeps, settings=s)["sweeps"]["big"]["psnr"]
    rec = mixed["recommendation"]["ssim"]
    assert rec["recommended"] is None and "iterations" in rec["reason"] and "ssim" not in mixed["vs_runner_up"]


def test_a_model_comparison_only_between_arms_of_the_same_settings():
    shifts = {"baseline": {}, "lpips": {"ssim": 0.05}}
    tables = {"big": table(model(15, shifts, 23)), "tiny": table(model(15, shifts, 24))}
    s = {"big": {"lpips": arm_settings(arm_block("lpips"), 1)}, "tiny": {"lpips": arm_settings(arm_block("lpips", lr=0.2), 1)}}
    a = run(tables, settings=s)
    for section in ("model_differences", "gain_differences"):
        (row,) = a[section]
        assert row["confounds"] == ["lr"] and row["tests"] == {}
    assert a["baseline_differences"][0]["tests"]  # plain decodes: nothing to match
    assert "lpips in big and tiny: differ also in lr" in render_study(a)


def test_identical_counted_work_is_never_ranked_by_cost_whatever_the_clock_says():
    """Three lr values at the same iterations (identical counted work): device time differs as on a
    loaded machine, yet no arm is cheaper, the frontier holds the best gain alone, and the
    verdicts are identical to a run with other device times."""
    shifts = {"baseline": {}, "psnr": {"ssim": 0.01}, "psnr-lr0.1": {"ssim": 0.03}, "psnr-lr0.2": {"ssim": 0.02}, "lpips": {"ssim": 0.005}}
    tables = {"big": table(model(16, shifts, 25))}
    sweeps = {"psnr": {"psnr": {"lr": 0.05}, "psnr-lr0.1": {"lr": 0.1}, "psnr-lr0.2": {"lr": 0.2}}}
    work = {"baseline": 0.01, "psnr": 0.5, "psnr-lr0.1": 0.5, "psnr-lr0.2": 0.5, "lpips": 0.2}
    idle = perf({a: (0.1, 8, "cpu_process") for a in work}, 1, work)
    loaded = perf({"baseline": (0.1, 8, "cpu_process"), "psnr": (0.09, 8, "cpu_process"), "psnr-lr0.1": (0.3, 8, "cpu_process"), "psnr-lr0.2": (0.1, 8, "cpu_process"), "lpips": (0.9, 8, "cpu_process")}, 2, work)
    a, b = run(tables, {"big": idle}, sweeps), run(tables, {"big": loaded}, sweeps)
    sw = b["sweeps"]["big"]["psnr"]
    assert sw["frontier"]["ssim"] == ["psnr-lr0.1"]  # identical work: only the best gain
    assert b["methods"]["big"] == []
    assert a["verdicts"] == b["verdicts"] and render_study(a).split("## Study")[0] == render_study(b).split("## Study")[0]
    # a cheaper counted arm stays on the frontier of absolute quality
    assert "big/baseline" in b["quality"]["ssim"]["frontier"]
    assert a["quality"] == b["quality"]


def test_without_counted_work_no_arm_is_ranked_by_cost():
    shifts = {"baseline": {}, "psnr": {"ssim": 0.01}, "psnr-lr0.1": {"ssim": 0.03}}
    tables = {"big": table(model(16, shifts, 26))}
    p = {"big": perf({"baseline": (0.01, 8, "cuda"), "psnr": (0.02, 8, "cuda"), "psnr-lr0.1": (0.5, 8, "cuda")})}
    a = run(tables, p, {"psnr": {"psnr": {"lr": 0.05}, "psnr-lr0.1": {"lr": 0.1}}})
    assert a["metadata"]["cost_axis"] is None
    assert a["sweeps"]["big"]["psnr"]["frontier"]["ssim"] == ["psnr-lr0.1"]  # 25x the device time, not ranked by it
    assert "no arm is ranked by cost" in render_study(a)


def test_the_frontier_is_on_absolute_quality_across_models():
    """A weak model's large gain over its own weak baseline does not put it above a strong model
    whose plain decode is better and cheaper than the weak model optimized."""
    big = table(model(20, {"baseline": {"ssim": 0.3}, "psnr": {"ssim": 0.31}}, 27))
    tiny = table(model(20, {"baseline": {}, "psnr": {"ssim": 0.15}}, 27))
    p = {"big": perf({}, work={"baseline": 0.01, "psnr": 1.0}), "tiny": perf({}, work={"baseline": 0.001, "psnr": 0.1})}
    a = run({"big": big, "tiny": tiny}, p)
    assert a["gains"]["tiny"]["psnr"]["tests"]["ssim"]["mean_diff"] > 10 * a["gains"]["big"]["psnr"]["tests"]["ssim"]["mean_diff"]
    q = a["quality"]["ssim"]
    assert q["n_images"] == 20 and "tiny/psnr" not in q["frontier"]
    assert q["frontier"] == ["tiny/baseline", "big/baseline", "big/psnr"]
    means = {(x["model"], x["arm"]): x["mean"] for x in q["points"]}
    assert means[("big", "baseline")] == pytest.approx(big[big.dataset == "baseline"]["ssim"].mean())


def test_every_test_of_the_study_is_counted_and_corrected_together():
    shifts = {"baseline": {}, "psnr": {"ssim": 0.05}, "psnr-lr0.1": {"ssim": 0.1}, "lpips": {"gmsd": -0.02}}
    tables = {"big": table(model(14, shifts, 28)), "tiny": table(model(14, shifts, 29))}
    a = run(tables, sweeps={"psnr": {"psnr": {"lr": 0.05}, "psnr-lr0.1": {"lr": 0.1}}})
    found = []

    def walk(x):
        if isinstance(x, dict):
            if "p_wilcoxon" in x and "verdict" in x:
                found.append(x)
                return
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)
    walk({k: v for k, v in a.items() if k not in ("metadata", "verdicts")})
    judged = [t for t in found if "p_study" in t]
    assert len(judged) == len(found) == a["metadata"]["tests"]["n"] == sum(a["metadata"]["tests"]["by_section"].values())
    p = [t["p_wilcoxon"] if np.isfinite(t["p_wilcoxon"]) else 1.0 for t in judged]
    assert [t["p_study"] for t in judged] == pytest.approx(list(holm_reference(p)))


def test_one_finding_per_monotone_family():
    assert finding_metrics(["psnr", "ssim", "mse", "mae", "gmsd"]) == ["psnr", "ssim", "gmsd"]
    assert finding_metrics(["mse", "mae", "ssim"]) == ["mse", "ssim"]
    shifts = {"baseline": {"psnr": 0.3, "mse": -0.3, "mae": -0.3}, "lpips": {}}
    a = run({"big": table(model(20, shifts, 30)), "tiny": table(model(20, {"baseline": {}, "lpips": {}}, 31))})
    line = a["verdicts"]["lines"][0]
    assert line["question"] == "autoencoder" and line["evidence"]["metric"] not in ("mse", "mae")


def _number(text: str) -> float:
    return float(text.replace("−", "-"))


def _close(text: str, value: float) -> bool:
    """``text`` is ``value`` as printed (to its last printed digit)."""
    mant = text.split("e")[0]
    decimals = len(mant.split(".")[1]) if "." in mant else 0
    if "e" in text:
        return value == pytest.approx(_number(text), rel=10 ** -decimals)
    return abs(_number(text) - value) <= 0.5 * 10 ** -decimals + 1e-12


LINE = re.compile(r"Δ (?P<d>\S+) \[(?P<lo>\S+), (?P<hi>\S+)\] on .*?, n = (?P<n>\d+), corrected p = (?P<p>\S+) \(Holm over (?P<m>\d+) tests\); costs (?P<z>\S+) TFLOP/image \((?P<k>\S+)× ")


def test_the_report_opens_with_at_most_five_verdict_lines_whose_numbers_rederive_from_the_json():
    shifts = {"baseline": {}, "psnr": {"ssim": 0.05}, "psnr-lr0.1": {"ssim": 0.12}, "lpips": {"gmsd": -0.03}, "psnr_cos": {"gmsd": 0.05}, "psnr_gf": {}}
    tables = {"big": table(model(20, {**shifts, "baseline": {"ssim": 0.2}}, 32)), "tiny": table(model(20, shifts, 33))}
    s = {m: {**method_settings(tables)[m], **{a: arm_settings(arm_block(a), 1) for a in ("psnr-lr0.1", "lpips")}} for m in tables}
    work = {"baseline": 0.01, "psnr": 0.4, "psnr-lr0.1": 0.4, "lpips": 0.9, "psnr_cos": 0.4, "psnr_gf": 0.2}
    p = {m: perf({a: (0.1, 6, "cpu_process") for a in work}, 3, {a: w * (10 if m == "big" else 1) for a, w in work.items()}) for m in tables}
    a = run(tables, p, {"psnr": {"psnr": {"lr": 0.05}, "psnr-lr0.1": {"lr": 0.1}}}, settings=s)
    text = render_study(a, {"frontier": "f.png", "frontier_caption": "c", "grid": "g.png", "grid_rule": "r"}, "own reports")
    lines = text.splitlines()
    assert lines[0] == "## Verdicts"
    bullets = [x for x in lines[1:lines.index(next(x for x in lines[1:] if x.startswith("#")))] if x.startswith("- ")]
    assert 1 <= len(bullets) == len(a["verdicts"]["lines"]) <= MAX_LINES
    assert any("**Use " in b for b in bullets) and any(x.startswith("The study ran ") for x in lines[:12])
    for bullet, entry in zip(bullets, a["verdicts"]["lines"]):
        m = LINE.search(bullet)
        assert m, bullet
        t = a
        for k in entry["evidence"]["source"]:
            t = t[k]
        assert _close(m["d"], t["mean_diff"]) and _close(m["lo"], t["ci95_low"]) and _close(m["hi"], t["ci95_high"])
        assert int(m["n"]) == t["n"] and int(m["m"]) == a["metadata"]["tests"]["n"] == t["m_study"]
        assert _close(m["p"], t["p_study"])
        cost = a["costs"][entry["cost"]["model"]][entry["cost"]["arm"]]
        assert _close(m["z"], cost["tflop_per_image"])
        plain = entry["cost"].get("reference", "the plain decode")
        ref = a["costs"][plain.split("'")[0]]["baseline"] if "'s plain" in plain else a["costs"][entry["cost"]["model"]]["baseline"]
        assert float(m["k"]) == pytest.approx(cost["tflop_per_image"] / ref["tflop_per_image"], rel=5e-3)
        assert ("**Use " in bullet) == entry["shown"]
        if entry["shown"]:  # a "use" line stands on a study-wide win (a sweep's also on one over the baseline)
            assert t["verdict_study"] in ("better", "worse")
        if entry["evidence"]["own_objective"]:
            assert "own objective" in bullet
    main = text.split("## Appendix")[0]
    assert len(main.splitlines()) <= 150


def test_confounds_name_nested_keys_and_a_missing_record():
    a = arm_settings(arm_block("psnr"), 1)
    b = arm_settings(arm_block("psnr", stopping={"rule": "none", "threshold": 1e-5, "patience": 5}, checkpoint_interval=20), 1)
    assert confounds(a, b, ()) == ["stopping.rule"]  # the checkpoint interval changes no result
    assert confounds(a, None, ()) is None
    assert confounds(a, arm_settings(arm_block("psnr"), 4), ()) == ["batch_size"]


def test_frontier_with_unknown_costs_keeps_the_best_gain_only():
    pts = {"a": (None, 0.1), "b": (None, 0.3), "c": (None, 0.2)}
    assert fr.pareto_front(pts, lambda x, y: False) == ["b"]


def test_images_needed_is_the_fewest_that_can_reach_alpha():
    from latentopt.analysis.statistics import min_attainable_p
    from latentopt.analysis.study_verdicts import images_needed

    for m in (1, 6, 186, 1000):
        k = images_needed(m, 0.05)
        assert m * min_attainable_p(k) < 0.05 <= m * min_attainable_p(k - 1)
