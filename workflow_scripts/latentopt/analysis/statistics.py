"""Descriptive statistics and paired tests for per-image metric tables (numpy/scipy only).

Every per-image metric (PSNR, SSIM, LPIPS, ...) is a vector with one entry per image; two
vectors computed on the same images are *paired* by position (entry i of both is image i).
The quantities below are defined exactly as implemented.

Missing values
    Non-finite entries (NaN, +-inf) are dropped. ``summarize`` drops them per sample; the paired
    functions keep only the positions ``i`` where both ``a[i]`` and ``b[i]`` are finite. ``n`` is
    always the number of values (or pairs) actually used.

``summarize(x)``
    ``mean`` = (1/n) sum x_i; ``std`` = sample standard deviation with ddof=1,
    sqrt(sum (x_i - mean)^2 / (n - 1)); ``median`` = sample median; ``ci95_low``/``ci95_high`` =
    two-sided 95 % Student-t confidence interval for the mean,
    mean -+ t_{0.975, n-1} * std / sqrt(n) (identical to ``scipy.stats.t.interval(0.95, n-1,
    loc=mean, scale=std/sqrt(n))``). For n < 2 the std and for n < MIN_N_INTERVAL the
    interval are ``None``; for n = 0 mean and median are NaN.

Minimum sample sizes (below them a cell of the report says "n too small", never a number)
    ``MIN_N_INTERVAL`` = 5 for every 95 % interval (Student-t of a mean, bootstrap of a mean
    difference, bootstrap of FID/KID): n values have C(2n-1, n) distinct bootstrap resamples,
    126 at n = 5 but 35 at n = 4, fewer than the 40 needed for a 2.5 % tail to hold more
    than one resample; and t_{0.975, n-1} > 2.78 below n = 5, so a t-interval of 2-4 values
    rests on a normality assumption they cannot check (at n = 2 it is often wider than the
    metric's range). A test family of m Holm-corrected Wilcoxon tests can reject at alpha only
    when m * 2 / 2^n < alpha (``min_n_for_alpha(alpha, m)``: n = 6 for one test at 0.05, 8 for
    6 pairs); below that its cells say "n too small" for the test.

``paired_comparison(a, b)``
    d_i = a_i - b_i over the n complete pairs.
    ``mean_diff`` = mean(d); ``median_diff`` = median(d); ``sd_diff`` = std(d, ddof=1).
    ``ci95_low``/``ci95_high``: percentile bootstrap 95 % CI of mean(d): ``n_boot`` resamples of
    the n differences drawn with replacement by ``numpy.random.default_rng(seed)``; the bounds
    are the 2.5th and 97.5th percentiles (numpy default linear interpolation) of the resampled
    means. ``None`` for n < MIN_N_INTERVAL. The resample draws depend only on (n, seed) and the
    order of the pairs; callers pass pairs sorted by image id, so every output file that
    resamples the same images with the same seed draws the same images. (Means use the
    Student-t interval, differences this bootstrap interval: two methods, each named where
    it is shown.)
    ``wilcoxon_stat``/``p_wilcoxon``: ``scipy.stats.wilcoxon(d)`` with its defaults
    (two-sided, zero_method='wilcox' i.e. zero differences are discarded). With method='auto'
    the installed scipy (1.17) chooses the null distribution as follows (checked by
    tests/test_statistics.py): n <= 50 without ties or zeros: exact distribution of the
    signed-rank statistic; ties or zeros and n <= 13: an exact permutation test over all 2^n
    sign flips (``scipy.stats.PermutationMethod``, deterministic); n > 50, or ties/zeros with
    n > 13: normal approximation with continuity correction. The statistic is scipy's
    two-sided statistic min(R+, R-). If every difference is zero the test is undefined and we
    report statistic 0 and p = 1. ``n_pos``/``n_neg``: how many differences are > 0 / < 0.
    ``p_wilcoxon_min``: the smallest two-sided p the test can return at this number of nonzero
    differences k (``min_attainable_p(k)``: 2 / 2^k exactly for k <= 50, e.g. 0.0078 at k = 8;
    1 for k <= 1) -- at small n a large p is what the design allows, not evidence of no effect.
    ``t_stat``/``p_ttest``: paired Student t test ``scipy.stats.ttest_rel(a, b)`` (two-sided),
    t = mean(d) / (sd(d)/sqrt(n)), df = n - 1. If sd(d) = 0 exactly: t = 0, p = 1 when
    mean(d) = 0, otherwise t = +-inf, p = 0.
    ``cohens_dz`` = mean(d) / sd(d) (ddof=1); 0 when both are 0, +-inf when only sd is 0.
    ``rank_biserial``: matched-pairs rank-biserial correlation. The nonzero differences are
    ranked by |d_i| (average ranks for ties, ``scipy.stats.rankdata``); R+ and R- are the rank
    sums of the positive and of the negative differences; r = (R+ - R-) / (R+ + R-), in
    [-1, 1] (+1: every nonzero difference positive). 0 when every difference is zero.
    ``n_zero`` counts the zero differences (discarded by the Wilcoxon test and by r).
    All quantities that need n >= 2 are NaN below that; the CI is None below MIN_N_INTERVAL.

``holm(p)``
    Holm-Bonferroni step-down adjusted p-values. With the m finite p-values sorted ascending,
    p_(1) <= ... <= p_(m): p~_(k) = min(1, max_{j <= k} (m - j + 1) * p_(j)), returned in the
    input order. NaN inputs stay NaN and are not counted in m. Rejecting H_(k) when
    p~_(k) < alpha controls the family-wise error rate at alpha.

``pairwise_tests(table)``
    ``paired_comparison(table[a], table[b])`` for every unordered pair {a, b} of the named
    samples (in the order of ``itertools.combinations`` over the table's key order; d = a - b),
    plus ``p_wilcoxon_holm`` / ``p_ttest_holm`` = ``holm`` applied across all the pairs of that
    one call (separately for the Wilcoxon and the t p-values), ``significant`` =
    p_wilcoxon_holm < 0.05, ``m_tests`` = the number of pairs in the family and
    ``p_wilcoxon_holm_min`` = min(1, m_tests * p_wilcoxon_min): the smallest Holm-adjusted
    p that row can reach.

``spearman_matrix(columns)``
    For every pair of columns, Spearman's rank correlation rho and its two-sided p-value from
    ``scipy.stats.spearmanr`` on the pairwise-complete observations (positions where both are
    finite), with that pair's n. rho and p are NaN when n < 3 or a column is constant there.
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Mapping, Sequence

import numpy as np
from scipy import stats

__all__ = ["summarize", "paired_comparison", "holm", "pairwise_tests", "spearman_matrix",
           "min_attainable_p", "min_n_for_alpha", "n_too_small", "MIN_N_INTERVAL"]

MIN_N_INTERVAL = 5

_NAN = float("nan")


def _as_1d(x) -> np.ndarray:
    arr = np.asarray(x, dtype=float)
    if arr.ndim != 1:
        arr = arr.reshape(-1)
    return arr


def _paired(a, b) -> tuple[np.ndarray, np.ndarray]:
    a = _as_1d(a)
    b = _as_1d(b)
    if a.shape != b.shape:
        raise ValueError(f"paired samples must have the same length, got {a.size} and {b.size}")
    keep = np.isfinite(a) & np.isfinite(b)
    return a[keep], b[keep]


def summarize(x) -> dict:
    """mean, std (ddof=1), median, 95 % t-interval for the mean, n (finite values only)."""
    arr = _as_1d(x)
    arr = arr[np.isfinite(arr)]
    n = int(arr.size)
    if n == 0:
        return {"mean": _NAN, "std": None, "median": _NAN, "ci95_low": None, "ci95_high": None,
                "n": 0}
    mean = float(arr.mean())
    median = float(np.median(arr))
    if n < 2:
        return {"mean": mean, "std": None, "median": median, "ci95_low": None,
                "ci95_high": None, "n": n}
    std = float(arr.std(ddof=1))
    if n_too_small(n):
        return {"mean": mean, "std": std, "median": median, "ci95_low": None,
                "ci95_high": None, "n": n}
    half = float(stats.t.ppf(0.975, n - 1)) * std / math.sqrt(n)
    return {"mean": mean, "std": std, "median": median, "ci95_low": mean - half,
            "ci95_high": mean + half, "n": n}


def _bootstrap_mean_ci(d: np.ndarray, n_boot: int, seed) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    n = d.size
    means = np.empty(n_boot)
    # Chunk the (n_boot, n) index matrix so memory stays bounded for large n.
    chunk = max(1, min(n_boot, 4_000_000 // max(n, 1)))
    for start in range(0, n_boot, chunk):
        stop = min(n_boot, start + chunk)
        idx = rng.integers(0, n, size=(stop - start, n))
        means[start:stop] = d[idx].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(low), float(high)


def min_attainable_p(k: int) -> float:
    """Smallest two-sided p of ``scipy.stats.wilcoxon`` (method='auto') with k nonzero
    differences: 2 / 2^k for 1 <= k <= 50 (exact or all-sign-flip permutation null), the
    normal approximation's value for all-positive differences above 50; 1 for k <= 1."""
    k = int(k)
    if k <= 1:
        return 1.0
    if k <= 50:
        return min(1.0, 2.0 ** (1 - k))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(stats.wilcoxon(np.arange(1.0, k + 1.0)).pvalue)


def n_too_small(n: int | None, alpha: float | None = None, m: int = 1, p_floor: float | None = None) -> bool:
    """The one below-minimum-n rule of the module docstring's "Minimum sample sizes", which every
    analysis applies (where it holds, a result says "n too small", never a number).

    Without ``alpha``: a 95 % interval from n values (or pairs, or batches) needs
    n >= MIN_N_INTERVAL. With ``alpha``: a family of m Holm-corrected tests can reject only
    when m * p_floor < alpha, ``p_floor`` being the smallest p a test of the family can return
    (default ``min_attainable_p(n)``: Wilcoxon signed-rank with n nonzero differences; pass it
    for another test, or for a family whose tests have different n)."""
    if alpha is None:
        return n < MIN_N_INTERVAL
    return m * (min_attainable_p(n) if p_floor is None else p_floor) >= alpha


def min_n_for_alpha(alpha: float, m: int = 1) -> int:
    """Smallest n at which m Holm-corrected Wilcoxon tests can reach p < alpha
    (m * min_attainable_p(n) < alpha)."""
    n = 1
    while n_too_small(n, alpha, m):
        n += 1
    return n


def _rank_biserial(d: np.ndarray) -> float:
    nz = d[d != 0]
    if nz.size == 0:
        return 0.0
    ranks = stats.rankdata(np.abs(nz))
    r_plus = float(ranks[nz > 0].sum())
    r_minus = float(ranks[nz < 0].sum())
    return (r_plus - r_minus) / (r_plus + r_minus)


def paired_comparison(a, b, *, n_boot: int = 2000, seed=0) -> dict:
    """Paired comparison of a and b (d = a - b); see the module docstring for definitions."""
    a, b = _paired(a, b)
    d = a - b
    n = int(d.size)
    out = {
        "n": n,
        "mean_diff": _NAN, "median_diff": _NAN, "sd_diff": _NAN,
        "ci95_low": None, "ci95_high": None,
        "wilcoxon_stat": _NAN, "p_wilcoxon": _NAN,
        "t_stat": _NAN, "p_ttest": _NAN,
        "cohens_dz": _NAN, "rank_biserial": _NAN,
        "n_zero": int(np.count_nonzero(d == 0)),
        "n_pos": int(np.count_nonzero(d > 0)), "n_neg": int(np.count_nonzero(d < 0)),
        "p_wilcoxon_min": min_attainable_p(int(np.count_nonzero(d != 0))),
        "n_boot": int(n_boot), "seed": seed,
    }
    if n == 0:
        return out
    mean = float(d.mean())
    out["mean_diff"] = mean
    out["median_diff"] = float(np.median(d))
    out["rank_biserial"] = _rank_biserial(d)

    # Wilcoxon signed-rank (defined for n >= 1 nonzero differences).
    if np.all(d == 0):
        out["wilcoxon_stat"], out["p_wilcoxon"] = 0.0, 1.0
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            try:
                res = stats.wilcoxon(d)
                out["wilcoxon_stat"] = float(res.statistic)
                out["p_wilcoxon"] = float(res.pvalue)
            except ValueError:
                pass
    if n < 2:
        return out

    sd = float(d.std(ddof=1))
    out["sd_diff"] = sd
    if not n_too_small(n):
        out["ci95_low"], out["ci95_high"] = _bootstrap_mean_ci(d, int(n_boot), seed)
    if sd == 0.0:
        if mean == 0.0:
            out["t_stat"], out["p_ttest"], out["cohens_dz"] = 0.0, 1.0, 0.0
        else:
            out["t_stat"] = math.copysign(math.inf, mean)
            out["p_ttest"] = 0.0
            out["cohens_dz"] = math.copysign(math.inf, mean)
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            res = stats.ttest_rel(a, b)
        out["t_stat"] = float(res.statistic)
        out["p_ttest"] = float(res.pvalue)
        out["cohens_dz"] = mean / sd
    return out


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (monotone, capped at 1) in the input order."""
    p = np.asarray(list(pvalues), dtype=float).reshape(-1)
    adjusted = np.full(p.shape, np.nan)
    finite = np.flatnonzero(np.isfinite(p))
    m = finite.size
    if m:
        order = finite[np.argsort(p[finite], kind="stable")]
        factors = m - np.arange(m)
        stepped = np.maximum.accumulate(factors * p[order])
        adjusted[order] = np.minimum(stepped, 1.0)
    return [float(v) for v in adjusted]


def pairwise_tests(table: Mapping[str, Sequence[float]], *, n_boot: int = 2000,
                   seed=0) -> list[dict]:
    """paired_comparison for every unordered pair of named samples, Holm-corrected per call."""
    names = list(table)
    lengths = {name: _as_1d(table[name]).size for name in names}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"all samples must have the same length (paired), got {lengths}")
    rows = []
    for name_a, name_b in itertools.combinations(names, 2):
        row = {"a": name_a, "b": name_b}
        row.update(paired_comparison(table[name_a], table[name_b], n_boot=n_boot, seed=seed))
        rows.append(row)
    p_w = holm([r["p_wilcoxon"] for r in rows])
    p_t = holm([r["p_ttest"] for r in rows])
    for row, pw, pt in zip(rows, p_w, p_t):
        row["p_wilcoxon_holm"] = pw
        row["p_ttest_holm"] = pt
        row["significant"] = bool(pw < 0.05)
        row["m_tests"] = len(rows)
        row["p_wilcoxon_holm_min"] = min(1.0, len(rows) * row["p_wilcoxon_min"])
    return rows


def spearman_matrix(columns: Mapping[str, Sequence[float]]) -> dict:
    """Pairwise-complete Spearman rho and p for every pair of columns.

    Returns ``{"names": [...], "rho": {a: {b: rho}}, "p": {a: {b: p}}, "n": {a: {b: n}},
    "pairs": [{"a", "b", "rho", "p", "n"}, ...]}``; the nested dicts are symmetric and include
    the diagonal (rho 1, p 0 for a non-constant column with n >= 3), so
    ``pandas.DataFrame(result["rho"])`` is the correlation matrix.
    """
    names = list(columns)
    data = {name: _as_1d(columns[name]) for name in names}
    lengths = {name: v.size for name, v in data.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"all columns must have the same length, got {lengths}")
    rho = {a: {} for a in names}
    pval = {a: {} for a in names}
    count = {a: {} for a in names}
    pairs = []
    for i, a in enumerate(names):
        for b in names[i:]:
            x, y = _paired(data[a], data[b])
            n = int(x.size)
            r, p = _NAN, _NAN
            if n >= 3 and np.ptp(x) > 0 and np.ptp(y) > 0:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    res = stats.spearmanr(x, y)
                r, p = float(res.statistic), float(res.pvalue)
            rho[a][b] = rho[b][a] = r
            pval[a][b] = pval[b][a] = p
            count[a][b] = count[b][a] = n
            if a != b:
                pairs.append({"a": a, "b": b, "rho": r, "p": p, "n": n})
    return {"names": names, "rho": rho, "p": pval, "n": count, "pairs": pairs}
