"""Tests for latentopt.analysis.statistics against hand-worked values and scipy references."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sst

from latentopt.analysis import statistics as st


# ---------------------------------------------------------------------------- summarize

def test_summarize_matches_scipy_t_interval(rng):
    x = rng.normal(3.0, 2.0, size=25)
    s = st.summarize(x)
    assert s["n"] == 25
    assert s["mean"] == pytest.approx(x.mean())
    assert s["std"] == pytest.approx(x.std(ddof=1))
    assert s["median"] == pytest.approx(np.median(x))
    low, high = sst.t.interval(0.95, 24, loc=x.mean(), scale=sst.sem(x))
    assert s["ci95_low"] == pytest.approx(low, rel=1e-12)
    assert s["ci95_high"] == pytest.approx(high, rel=1e-12)


def test_summarize_nan_safe_and_small_n():
    s = st.summarize([1.0, np.nan, 3.0, np.inf])
    assert s["n"] == 2 and s["mean"] == pytest.approx(2.0)
    one = st.summarize([np.nan, 5.0])
    assert one["n"] == 1 and one["mean"] == 5.0
    assert one["ci95_low"] is None and one["ci95_high"] is None
    empty = st.summarize([np.nan])
    assert empty["n"] == 0 and math.isnan(empty["mean"]) and empty["ci95_low"] is None


# ---------------------------------------------------------------------------- paired_comparison

def test_paired_comparison_detects_clear_shift(rng):
    b = rng.normal(0.0, 1.0, size=40)
    a = b + 1.0 + rng.normal(0.0, 1.0, size=40)  # mean shift of 1 sd of the differences
    r = st.paired_comparison(a, b, n_boot=2000, seed=0)
    assert r["n"] == 40
    assert r["p_wilcoxon"] < 0.01 and r["p_ttest"] < 0.01
    assert r["ci95_low"] > 0 and r["ci95_high"] > r["ci95_low"]
    assert r["ci95_low"] <= r["mean_diff"] <= r["ci95_high"]
    ref_t = sst.ttest_rel(a, b)
    assert r["t_stat"] == pytest.approx(ref_t.statistic)
    assert r["p_ttest"] == pytest.approx(ref_t.pvalue)
    ref_w = sst.wilcoxon(a - b)
    assert r["p_wilcoxon"] == pytest.approx(ref_w.pvalue)
    d = a - b
    assert r["cohens_dz"] == pytest.approx(d.mean() / d.std(ddof=1))
    assert r["median_diff"] == pytest.approx(np.median(d))
    # Seeded bootstrap is reproducible.
    assert st.paired_comparison(a, b, n_boot=2000, seed=0)["ci95_low"] == r["ci95_low"]


def test_paired_comparison_identical_samples_no_exception(rng):
    a = rng.normal(size=30)
    with np.errstate(all="raise"):
        r = st.paired_comparison(a, a.copy(), n_boot=200)
    assert r["p_wilcoxon"] == 1.0 and r["wilcoxon_stat"] == 0.0
    assert r["p_ttest"] == 1.0 and r["t_stat"] == 0.0
    assert r["cohens_dz"] == 0.0 and r["rank_biserial"] == 0.0
    assert r["mean_diff"] == 0.0 and r["n_zero"] == 30
    rows = st.pairwise_tests({"x": a, "y": a.copy()}, n_boot=100, seed=0)
    assert rows[0]["significant"] is False and rows[0]["p_wilcoxon_holm"] == 1.0


def test_paired_comparison_constant_nonzero_difference():
    a = np.arange(10.0)
    r = st.paired_comparison(a + 2.0, a, n_boot=100)
    assert r["t_stat"] == math.inf and r["p_ttest"] == 0.0 and r["cohens_dz"] == math.inf
    assert r["rank_biserial"] == 1.0


def test_rank_biserial_signs(rng):
    b = rng.normal(size=20)
    up = st.paired_comparison(b + rng.uniform(0.1, 2.0, 20), b, n_boot=50)
    down = st.paired_comparison(b - rng.uniform(0.1, 2.0, 20), b, n_boot=50)
    assert up["rank_biserial"] == 1.0 and down["rank_biserial"] == -1.0
    # Hand-worked: d = [1, -2, 3] -> ranks 1, 2, 3; R+ = 4, R- = 2 -> (4 - 2) / 6.
    mixed = st.paired_comparison([1.0, -2.0, 3.0], [0.0, 0.0, 0.0], n_boot=50)
    assert mixed["rank_biserial"] == pytest.approx(1.0 / 3.0)


def test_paired_comparison_drops_incomplete_pairs():
    a = np.array([1.0, 2.0, np.nan, 4.0, 5.0])
    b = np.array([0.0, np.inf, 1.0, 3.0, 3.0])
    r = st.paired_comparison(a, b, n_boot=50)
    assert r["n"] == 3
    assert r["mean_diff"] == pytest.approx(np.mean([1.0, 1.0, 2.0]))
    with pytest.raises(ValueError):
        st.paired_comparison([1.0, 2.0], [1.0])


# ---------------------------------------------------------------------------- holm

def test_holm_hand_worked():
    assert st.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])


def test_holm_monotone_and_capped():
    p = [0.5, 0.01, 0.3, 0.02, 0.9]
    adj = st.holm(p)
    # sorted: 0.01*5=0.05, 0.02*4=0.08, 0.3*3=0.9, 0.5*2=1.0, 0.9*1=0.9 -> max-acc -> 1.0
    assert adj == pytest.approx([1.0, 0.05, 0.9, 0.08, 1.0])
    order = np.argsort(p)
    assert np.all(np.diff(np.asarray(adj)[order]) >= 0)
    assert max(adj) <= 1.0
    assert all(a >= q for a, q in zip(adj, p))
    nan_case = st.holm([0.01, float("nan"), 0.02])
    assert nan_case[0] == pytest.approx(0.02) and math.isnan(nan_case[1])
    assert nan_case[2] == pytest.approx(0.02)
    assert st.holm([]) == []


# ---------------------------------------------------------------------------- pairwise / spearman

def test_pairwise_tests_pairs_and_holm(rng):
    base = rng.normal(size=30)
    table = {name: base + shift + rng.normal(0, 0.2, 30)
             for name, shift in [("psnr", 0.0), ("ssim", 0.5), ("lpips", 1.0), ("base", 0.0)]}
    rows = st.pairwise_tests(table, n_boot=200, seed=1)
    k = len(table)
    assert len(rows) == k * (k - 1) // 2
    assert {(r["a"], r["b"]) for r in rows} == {
        ("psnr", "ssim"), ("psnr", "lpips"), ("psnr", "base"),
        ("ssim", "lpips"), ("ssim", "base"), ("lpips", "base")}
    assert [r["p_wilcoxon_holm"] for r in rows] == pytest.approx(
        st.holm([r["p_wilcoxon"] for r in rows]))
    assert [r["p_ttest_holm"] for r in rows] == pytest.approx(
        st.holm([r["p_ttest"] for r in rows]))
    by_pair = {(r["a"], r["b"]): r for r in rows}
    assert by_pair[("psnr", "lpips")]["significant"] is True
    assert by_pair[("psnr", "lpips")]["mean_diff"] < 0  # d = a - b
    for r in rows:
        assert r["significant"] == (r["p_wilcoxon_holm"] < 0.05)
    with pytest.raises(ValueError):
        st.pairwise_tests({"a": [1.0, 2.0], "b": [1.0]}, n_boot=10, seed=0)


def test_spearman_matrix_matches_scipy(rng):
    x = rng.normal(size=50)
    y = x ** 3 + rng.normal(0, 0.5, 50)
    z = rng.normal(size=50)
    z[[3, 7]] = np.nan
    res = st.spearman_matrix({"x": x, "y": y, "z": z})
    ref = sst.spearmanr(x, y)
    assert res["rho"]["x"]["y"] == pytest.approx(ref.statistic)
    assert res["p"]["y"]["x"] == pytest.approx(ref.pvalue)
    keep = np.isfinite(z)
    ref_xz = sst.spearmanr(x[keep], z[keep])
    assert res["rho"]["z"]["x"] == pytest.approx(ref_xz.statistic)
    assert res["n"]["x"]["z"] == 48 and res["n"]["x"]["y"] == 50
    assert res["rho"]["x"]["x"] == pytest.approx(1.0)
    assert len(res["pairs"]) == 3
    const = st.spearman_matrix({"x": x, "c": np.ones(50)})
    assert math.isnan(const["rho"]["x"]["c"])


# ---------------------------------------------------------------------------- small samples


def test_docstring_wilcoxon_null_matches_installed_scipy():
    """The module docstring's account of scipy's method='auto' holds for the installed scipy:
    ties or zeros at n <= 13 give the exact all-sign-flip permutation p (not the normal
    approximation), no ties give the exact signed-rank p, ties above 13 the normal one."""
    import itertools

    doc = st.__doc__
    assert "exact permutation test over all 2^n" in doc and "normal approximation" in doc
    d = np.array([1.0, 1.0, 2.0, -3.0, 4.0, 5.0, 6.0, -7.0])  # ties, n = 8
    ranks = sst.rankdata(np.abs(d))
    observed = ranks[d > 0].sum()
    flips = [sum(r for r, s in zip(ranks, signs) if s) for signs in itertools.product([0, 1], repeat=d.size)]
    centre = ranks.sum() / 2
    p_perm = np.mean([abs(w - centre) >= abs(observed - centre) - 1e-12 for w in flips])
    assert st.paired_comparison(d, np.zeros_like(d))["p_wilcoxon"] == pytest.approx(p_perm, rel=1e-12)
    assert p_perm != pytest.approx(sst.wilcoxon(d, method="asymptotic").pvalue, rel=1e-3)
    big = np.concatenate([np.arange(1.0, 16.0), [3.0]])  # ties, n = 16 > 13: normal approximation
    assert sst.wilcoxon(big).pvalue == pytest.approx(sst.wilcoxon(big, method="asymptotic").pvalue)


@pytest.mark.parametrize("n", [1, 2, 3, 8, 20, 50, 60])
def test_min_attainable_p_is_what_scipy_returns_at_the_extreme(n):
    """The smallest p: all n differences of one sign (distinct magnitudes)."""
    expected = 1.0 if n == 1 else sst.wilcoxon(np.arange(1.0, n + 1)).pvalue
    assert st.min_attainable_p(n) == pytest.approx(expected, rel=1e-9)
    # no other sign pattern does better (checked exhaustively for small n)
    if n <= 8:
        import itertools

        ps = [sst.wilcoxon(np.arange(1.0, n + 1) * np.array(s)).pvalue for s in itertools.product([1, -1], repeat=n)] if n > 1 else [1.0]
        assert min(ps) == pytest.approx(st.min_attainable_p(n))


def test_holm_family_floor_and_min_n():
    """With 8 images and 6 pairs every Holm p is at least 6 * 2/2^8 = 0.047: the floor is
    reported with each row, and min_n_for_alpha says which n can reach alpha."""
    rng = np.random.default_rng(1)
    base = rng.normal(size=8)
    table = {k: base + 10 * i for i, k in enumerate("abcd")}  # every pair differs on every image
    rows = st.pairwise_tests(table, n_boot=50)
    for r in rows:
        assert r["m_tests"] == 6 and r["n_pos"] + r["n_neg"] == 8
        assert r["p_wilcoxon_holm_min"] == pytest.approx(6 * 2 / 2**8)
        assert r["p_wilcoxon_holm"] >= r["p_wilcoxon_holm_min"] - 1e-15
    assert st.min_n_for_alpha(0.05, 1) == 6 and st.min_n_for_alpha(0.05, 6) == 8 and st.min_n_for_alpha(0.05, 3) == 7
    assert 6 * st.min_attainable_p(8) >= 0.01  # n = 8, 6 pairs cannot reach 0.01


def test_no_interval_below_minimum_n():
    x = [1.0, 2.0, 3.0, 4.0]
    assert st.MIN_N_INTERVAL == 5
    s = st.summarize(x)
    assert s["ci95_low"] is None and s["std"] == pytest.approx(np.std(x, ddof=1))
    assert st.summarize(x + [5.0])["ci95_low"] is not None
    r = st.paired_comparison(x, [0.0] * 4, n_boot=20)
    assert r["ci95_low"] is None and r["mean_diff"] == pytest.approx(2.5)


@pytest.mark.parametrize("n", [2, 4, 5, 6, 7, 8])
def test_n_too_small_is_the_one_rule_behind_intervals_and_tests(n):
    """n_too_small decides what the intervals and the tests actually do: no interval exactly
    when summarize and paired_comparison give none, and a Holm family of m Wilcoxon tests is
    'too small' exactly when m x scipy's smallest p at n (all n differences of one sign)
    reaches alpha; p_floor replaces that floor (another test, or a family of several n)."""
    x = np.arange(1.0, n + 1)
    assert st.n_too_small(n) == (st.summarize(x)["ci95_low"] is None)
    assert st.n_too_small(n) == (st.paired_comparison(x, np.zeros(n), n_boot=20)["ci95_low"] is None)
    extreme = sst.wilcoxon(x).pvalue  # the best p any n pairs can give
    for alpha in (0.05, 0.01):
        for m in (1, 3, 6):
            assert st.n_too_small(n, alpha, m) == (m * extreme >= alpha - 1e-15)
    assert st.n_too_small(n, 0.05, 1, p_floor=0.04) is False and st.n_too_small(n, 0.05, 2, p_floor=0.04) is True
    assert st.min_n_for_alpha(0.05, 6) == min(k for k in range(1, 20) if not st.n_too_small(k, 0.05, 6))
