"""The study analysis (issue 18), one test per rule on constructed per-image tables whose answer
is known by construction or computed here independently (numpy/scipy): gains over the own
baseline on held-out metrics, differences across models on the same images, smaller-vs-larger,
the sweep frontier and its recommendation, uncalibrated networks, "n too small", costs; plus
the rendered section (every claim states n and CI) and the two figures."""

from __future__ import annotations


import numpy as np
import pandas as pd
import pytest
from scipy import stats

from latentopt.analysis import frontier as fr
from latentopt.analysis import study_tests as st
from latentopt.analysis.statistics import summarize
from latentopt.analysis.study import study_analysis
from latentopt.analysis.study_matching import arm_settings
from latentopt.report.study import render_study
from latentopt.workflow.objectives import NOT_JUDGED

METRICS = ("psnr", "ssim", "lpips_alex", "mse", "mae", "gmsd")
EV = {"n_boot": 400, "seed": 0, "success_criteria": {"alpha": 0.05}}
OBJECTIVES = {"psnr": {"psnr", "mse"}, "psnr-lr0.1": {"psnr", "mse"}, "psnr-lr0.2": {"psnr", "mse"}, "lpips": {"lpips_alex"}}
CAL = {"lpips": True, "inception": True}
MODELS = {"big": {"label": "Big", "decoder_parameters": 1000, "synthetic": False}, "tiny": {"label": "Tiny", "decoder_parameters": 10, "synthetic": True}}


def table(arms: dict[str, dict[str, np.ndarray]], failed=()) -> pd.DataFrame:
    """One row per (arm, image); ``arms[arm][metric]`` one value per image; (arm, i) in
    ``failed``: status failed, no metrics."""
    rows = []
    for arm, cols in arms.items():
        n = len(next(iter(cols.values())))
        for i in range(n):
            ok = (arm, i) not in failed
            rows.append({"dataset": arm, "split": "test", "image_id": f"im{i:03d}", "status": "ok" if ok else "failed", **{m: (float(v[i]) if ok else np.nan) for m, v in cols.items()}})
    return pd.DataFrame(rows)


def model(n: int, shifts: dict[str, dict[str, float]], seed: int, noise: float = 0.02) -> dict[str, dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    base = {m: rng.uniform(0.2, 0.8, n) for m in METRICS}
    return {arm: {m: base[m] + sh.get(m, 0.0) + (rng.normal(0, noise, n) if arm != "baseline" else 0.0) for m in METRICS} for arm, sh in shifts.items()}


def perf(costs: dict[str, tuple[float, int, str]], seed: int = 0, work: dict[str, float] | None = None) -> dict:
    """performance_summary.json's batch_costs per arm: (mean s/image, batches, clock); ``work``:
    {arm: counted TFLOP per image} as the key the cost counter writes (counted_work)."""
    rng = np.random.default_rng(seed)
    out = {}
    for arm, (mu, nb, clock) in costs.items():
        v = rng.normal(mu, 0.02 * mu, nb)
        s = summarize(v)
        out[arm] = {"batch_costs": {"n_batches": nb, "clock": [clock], "compute_per_image_s": s, "per_image_values": v.tolist(), "noise_cv": s["std"] / s["mean"] if s["std"] else None}}
    for arm, tflop in (work or {}).items():
        out.setdefault(arm, {})["counted_work"] = {"tflop_per_image": {"mean": tflop, "std": 0.0, "n": 8}, "tflop_per_iteration": tflop / 20, "counter": "test"}
    return {"datasets": out}


def arm_block(arm: str, **changes) -> dict:
    """A validated-looking ``losses.<arm>`` block: the loss is the name before '-', the lr the
    one the name gives (sweep arms), everything else the same for every arm."""
    base = arm.split("-")[0]
    lr = float(arm.split("-lr")[1]) if "-lr" in arm else 0.05
    return {"loss": {"name": base}, "iterations": 50, "lr": lr, "method": "backprop", "schedule": "constant", "warmup_fraction": 0.1,
            "stopping": {"rule": "relative", "threshold": 1e-5, "patience": 5}, "betas": [0.9, 0.999], "eps": 1e-8, "checkpoint_interval": 10, **changes}


def same_settings(tables) -> dict:
    return {m: {a: arm_settings(arm_block(a), 1) for a in t["dataset"].unique() if a != "baseline"} for m, t in tables.items()}


def run(tables, performance=None, sweeps=None, calibrated=CAL, settings=None, **kw):
    performance = performance or {m: perf({a: (0.1, 6, "cuda") for a in t["dataset"].unique()}) for m, t in tables.items()}
    settings = same_settings(tables) if settings is None else settings
    return study_analysis(tables, performance, {m: MODELS.get(m, {"label": m, "decoder_parameters": None, "synthetic": False}) for m in tables}, sweeps or {}, objectives=OBJECTIVES, evaluation=EV, calibrated=calibrated, settings=settings, **kw)


def holm_reference(p):
    """Holm step-down, written out: sorted ascending, (m - k) * p_(k), running max, capped at 1."""
    p = np.asarray(p, float)
    order = np.argsort(p)
    adj = np.empty_like(p)
    running = 0.0
    for k, i in enumerate(order):
        running = max(running, (len(p) - k) * p[i])
        adj[i] = min(1.0, running)
    return adj


def test_gain_over_own_baseline_matches_scipy_on_held_out_metrics():
    shifts = {"baseline": {}, "psnr": {"psnr": 0.3, "ssim": 0.05, "gmsd": -0.001}}
    t = table(model(30, shifts, 1), failed={("psnr", 3), ("baseline", 7)})
    g = run({"big": t})["gains"]["big"]["psnr"]
    assert g["held_out"] == ["ssim", "lpips_alex", "gmsd"]  # psnr, mse (objective) and mae (relative) left out
    keep = [i for i in range(30) if i not in (3, 7)]
    ps = []
    for m in g["held_out"]:
        sign = -1.0 if m in ("lpips_alex", "gmsd") else 1.0
        d = sign * (t[t.dataset == "psnr"][m].to_numpy()[keep] - t[t.dataset == "baseline"][m].to_numpy()[keep])
        assert g["tests"][m]["n"] == 28
        assert g["tests"][m]["mean_diff"] == pytest.approx(d.mean())
        assert g["tests"][m]["p_wilcoxon"] == pytest.approx(stats.wilcoxon(d).pvalue)
        ps.append(stats.wilcoxon(d).pvalue)
    assert [g["tests"][m]["p_holm"] for m in g["held_out"]] == pytest.approx(list(holm_reference(ps)))
    assert g["tests"]["ssim"]["verdict"] == "better" and g["tests"]["ssim"]["m_tests"] == 3


def test_each_model_is_judged_against_its_own_baseline():
    # tiny's baseline is far worse than big's; its arm equals big's baseline: a gain in tiny, none in big
    big = model(20, {"baseline": {}, "psnr": {}}, 2, noise=0.02)
    tiny = {arm: {m: v - (0.2 if arm == "baseline" else 0.0) for m, v in cols.items()} for arm, cols in model(20, {"baseline": {}, "psnr": {}}, 2, noise=0.02).items()}
    tiny["baseline"]["ssim"] = big["baseline"]["ssim"] - 0.2
    r = run({"big": table(big), "tiny": table(tiny)})
    assert r["gains"]["tiny"]["psnr"]["tests"]["ssim"]["verdict"] == "better"
    assert r["gains"]["big"]["psnr"]["tests"]["ssim"]["verdict"] == "not shown"


def test_a_difference_whose_ci_spans_zero_is_never_called_a_difference():
    # 19 images +1, one image -100: Wilcoxon (ranks) is significant, the bootstrap CI of the mean spans 0
    d = np.r_[np.ones(19), -100.0]
    cmp = st.compare(pd.Series(d, index=pd.MultiIndex.from_tuples([("s", str(i)) for i in range(20)])), pd.Series(0.0, index=pd.MultiIndex.from_tuples([("s", str(i)) for i in range(20)])), EV)
    assert stats.wilcoxon(d).pvalue < 0.01 and cmp["ci95_low"] < 0 < cmp["ci95_high"]
    fam = st.family({"ssim": cmp}, 0.05, set())
    assert fam["ssim"]["p_holm"] < 0.05 and fam["ssim"]["verdict"] == "not shown"
    # and over many random studies: every better/worse gain difference has a CI excluding 0 and Holm p < alpha
    for seed in range(6):
        shifts = {"baseline": {}, "lpips": {"ssim": 0.01 * seed}}
        r = run({"big": table(model(12, shifts, seed)), "tiny": table(model(12, shifts, 100 + seed, noise=0.05))})
        for row in r["gain_differences"] + r["baseline_differences"] + r["smaller_vs_larger"]:
            for m, x in row["tests"].items():
                if x["verdict"] in ("better", "worse"):
                    assert not (x["ci95_low"] <= 0 <= x["ci95_high"]) and x["p_holm"] < 0.05


def test_gain_difference_is_paired_on_the_images_ok_in_both_models():
    shifts = {"baseline": {}, "lpips": {"ssim": 0.05}}
    a = table(model(25, shifts, 3), failed={("lpips", 0), ("baseline", 1)})
    b = table(model(25, {"baseline": {}, "lpips": {"ssim": 0.01}}, 4), failed={("lpips", 2)})
    row = run({"big": a, "tiny": b})["gain_differences"][0]
    keep = [i for i in range(25) if i not in (0, 1, 2)]
    ga = a[a.dataset == "lpips"]["ssim"].to_numpy()[keep] - a[a.dataset == "baseline"]["ssim"].to_numpy()[keep]
    gb = b[b.dataset == "lpips"]["ssim"].to_numpy()[keep] - b[b.dataset == "baseline"]["ssim"].to_numpy()[keep]
    assert row["arm"] == "lpips" and row["tests"]["ssim"]["n"] == 22
    assert row["tests"]["ssim"]["mean_diff"] == pytest.approx((ga - gb).mean())
    assert row["tests"]["ssim"]["verdict"] == "better"  # +0.04 per image, noise 0.02 x sqrt(2)


def test_smaller_beats_larger_uses_the_same_images_and_counted_work():
    big = table(model(20, {"baseline": {}}, 5), failed={("baseline", 4)})
    tiny_vals = model(20, {"baseline": {"ssim": -0.1}, "psnr": {"ssim": 0.1}}, 5)
    tiny = table(tiny_vals, failed={("psnr", 9)})
    p = {"big": perf({"baseline": (0.05, 6, "cuda")}, work={"baseline": 0.05}), "tiny": perf({"baseline": (0.01, 6, "cuda"), "psnr": (0.2, 3, "cuda")}, work={"baseline": 0.01, "psnr": 0.2})}
    rows = run({"big": big, "tiny": tiny}, p)["smaller_vs_larger"]
    assert [(r["small"], r["arm"], r["large"]) for r in rows] == [("tiny", "psnr", "big")]  # fewer decoder parameters only
    keep = [i for i in range(20) if i not in (4, 9)]
    d = tiny[tiny.dataset == "psnr"]["ssim"].to_numpy()[keep] - big[big.dataset == "baseline"]["ssim"].to_numpy()[keep]
    r = rows[0]
    assert r["tests"]["ssim"]["n"] == 18 and r["tests"]["ssim"]["mean_diff"] == pytest.approx(d.mean())
    assert r["tests"]["ssim"]["verdict"] == "better"
    assert r["cost"]["order"] == "dearer" and r["cost"]["ratio"] == pytest.approx(0.2 / 0.05)
    assert r["cost"]["a"]["x_plain_decode"] == pytest.approx(0.2 / 0.01)  # against tiny's own plain decode
    assert r["cost"]["a"]["device_time"]["n_too_small"] and r["cost"]["a"]["device_time"]["n_batches"] == 3  # context only


def test_uncalibrated_network_gives_not_judged_outside_the_family():
    shifts = {"baseline": {}, "psnr": {"lpips_alex": -0.2, "ssim": 0.05}}
    g = run({"big": table(model(20, shifts, 7))}, calibrated={"lpips": False, "inception": None})["gains"]["big"]["psnr"]["tests"]
    assert g["lpips_alex"]["verdict"] == NOT_JUDGED and g["lpips_alex"]["p_holm"] is None
    assert g["ssim"]["m_tests"] == 2  # ssim, gmsd: the LPIPS test is not in the Holm family
    assert all(v["verdict"] != NOT_JUDGED for m, v in g.items() if m != "lpips_alex")


def test_n_too_small_for_the_interval_and_for_the_family():
    shifts = {"baseline": {}, "lpips": {"ssim": 0.3, "psnr": 0.3, "gmsd": -0.3, "mse": -0.3, "mae": -0.3}}
    tiny = run({"big": table(model(4, shifts, 8))})["gains"]["big"]["lpips"]["tests"]
    assert all(v["verdict"] == "n too small" and v["ci95_low"] is None for v in tiny.values())  # n = 4 < 5: no CI
    seven = run({"big": table(model(7, shifts, 8))})["gains"]["big"]["lpips"]["tests"]
    m = seven["ssim"]["m_tests"]
    assert m == 5 and m * 2.0 / 2 ** 7 >= 0.05  # 5 Holm tests at n = 7 cannot reach 0.05
    assert all(v["verdict"] == "n too small" and v["ci95_low"] is not None for v in seven.values())


def brute_force_front(points):
    names = list(points)
    c = np.array([points[a][0] for a in names])
    g = np.array([points[a][1] for a in names])
    dom = (c[None, :] <= c[:, None]) & (g[None, :] >= g[:, None]) & ((c[None, :] < c[:, None]) | (g[None, :] > g[:, None]))
    return {a for a, d in zip(names, dom.any(axis=1)) if not d}


def test_frontier_matches_a_brute_force_pareto_check():
    rng = np.random.default_rng(9)
    for trial in range(200):
        k = int(rng.integers(1, 9))
        pts = {f"a{i}": (float(rng.integers(1, 5)), float(rng.integers(-3, 4))) for i in range(k)}  # integer grid: ties happen
        assert set(fr.pareto_front(pts)) == brute_force_front(pts)


def sweep_study(n, shifts, costs, seed):
    t = table(model(n, {"baseline": {}, **shifts}, seed))
    settings = {a: {"lr": float(a.split("lr")[1]) if "lr" in a else 0.05, "iterations": 50} for a in shifts}
    p = {"big": perf({"baseline": (0.01, 6, "cuda"), **{a: (c, 6, "cuda") for a, c in costs.items()}}, seed, work={"baseline": 0.01, **costs})}
    return run({"big": t}, p, {"psnr": settings})["sweeps"]["big"]["psnr"]


def test_an_arm_off_the_frontier_is_never_recommended():
    rng = np.random.default_rng(10)
    for seed in range(8):
        shifts = {a: {"ssim": float(rng.uniform(-0.05, 0.15))} for a in ("psnr", "psnr-lr0.1", "psnr-lr0.2")}
        costs = {a: float(rng.uniform(0.05, 0.5)) for a in shifts}
        sw = sweep_study(16, shifts, costs, seed)
        for m, rec in sw["recommendation"].items():
            assert rec["recommended"] is None or rec["recommended"] in sw["frontier"][m]
            pts = {p["arm"]: (p["tflop_per_image"], p["gain"]) for p in sw["points"][m]}
            assert set(sw["frontier"][m]) == brute_force_front(pts)
    # the best-gain arm dearer and no better than a cheaper one: off the frontier, not the candidate
    pts = {"cheap": (0.1, 0.5), "dear": (0.3, 0.5), "mid": (0.2, 0.3)}
    assert fr.pareto_front(pts) == ["cheap"] and fr.candidate(pts) == ("cheap", "dear")


def test_recommendation_needs_a_shown_win_over_the_runner_up():
    clear = sweep_study(20, {"psnr": {"ssim": 0.02}, "psnr-lr0.1": {"ssim": 0.12}}, {"psnr": 0.1, "psnr-lr0.1": 0.2}, 11)
    assert clear["recommendation"]["ssim"]["recommended"] == "psnr-lr0.1"
    assert clear["vs_runner_up"]["ssim"]["verdict_study"] == "better"
    tied = sweep_study(20, {"psnr": {"ssim": 0.1}, "psnr-lr0.1": {"ssim": 0.1}}, {"psnr": 0.1, "psnr-lr0.1": 0.2}, 12)
    rec = tied["recommendation"]["ssim"]
    assert rec["recommended"] is None and rec["verdict"] == fr.NONE_SHOWN
    assert tied["vs_runner_up"]["ssim"]["verdict_study"] != "better"


def test_uncalibrated_purpose_is_not_recommended():
    sw = study_analysis({"big": table(model(20, {"baseline": {}, "psnr": {"lpips_alex": -0.3}, "psnr-lr0.1": {"lpips_alex": -0.01}}, 13))},
                        {"big": perf({"baseline": (0.01, 6, "cuda"), "psnr": (0.1, 6, "cuda"), "psnr-lr0.1": (0.2, 6, "cuda")})}, MODELS,
                        {"psnr": {"psnr": {"lr": 0.05}, "psnr-lr0.1": {"lr": 0.1}}}, objectives=OBJECTIVES, evaluation=EV, calibrated={"lpips": False},
                        settings={"big": {a: arm_settings(arm_block(a), 1) for a in ("psnr", "psnr-lr0.1")}})["sweeps"]["big"]["psnr"]
    assert sw["recommendation"]["lpips_alex"]["verdict"] == NOT_JUDGED and sw["recommendation"]["lpips_alex"]["recommended"] is None


def test_figures_render(tmp_path):
    shifts = {"baseline": {}, "psnr": {"ssim": 0.05}, "psnr-lr0.1": {"ssim": 0.1}, "lpips": {"ssim": 0.02}}
    tables = {"big": table(model(12, shifts, 17)), "tiny": table(model(12, shifts, 18))}
    for t in tables.values():
        t["psnr"] = t["psnr"] * 40
    a = run(tables, {m: perf({"baseline": (0.01, 6, "cuda"), "psnr": (0.1, 6, "cuda"), "psnr-lr0.1": (0.2, 6, "cuda"), "lpips": (0.3, 3, "cuda")}) for m in tables}, sweeps={"psnr": {"psnr": {"lr": 0.05}, "psnr-lr0.1": {"lr": 0.1}}})
    from latentopt.report.study_figures import GRID_RULE, pick_image, study_figures
    loaded = []

    def load(path):
        loaded.append(path)
        return np.full((24, 32, 3), 40 * (len(loaded) % 6), np.uint8)

    figs = study_figures(a, tables, tmp_path / "results", tmp_path / "figs", tmp_path, load=load)
    assert (tmp_path / figs["frontier"]).stat().st_size > 0 and (tmp_path / figs["grid"]).stat().st_size > 0
    key = pick_image(tables)
    gains = pd.concat([(t[t.dataset == arm].set_index(["split", "image_id"])["psnr"] - t[t.dataset == "baseline"].set_index(["split", "image_id"])["psnr"]) for t in tables.values() for arm in ("psnr", "psnr-lr0.1", "lpips")], axis=1).mean(axis=1)
    ranked = sorted(gains.items(), key=lambda kv: (kv[1], kv[0]))
    assert key == ranked[len(ranked) // 2][0] and "median" in GRID_RULE
    assert any(str(p).endswith("big/original_bsds500/test/%s.png" % key[1]) for p in loaded)
    assert any(str(p).endswith("tiny/psnr_dataset/png/test/%s.png" % key[1]) for p in loaded)
