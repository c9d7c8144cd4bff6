"""Statistics on synthetic arrays, against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from us3l.profiler.stats import (
    LatencyStats,
    drift_detected,
    median_interval_is_full,
    order_statistic_ranks,
    percentile,
    quantile_ci,
    ratio_interval,
    rel_ci_halfwidth,
    summarize,
)

ONE_TO_TEN = [float(v) for v in range(1, 11)]


def test_percentiles_linear_interpolation():
    # rank (n-1)*q: 4.5 -> 5.5 ; 8.1 -> 9 + 0.1 ; 8.91 -> 9 + 0.91
    assert percentile(ONE_TO_TEN, 50) == pytest.approx(5.5)
    assert percentile(ONE_TO_TEN, 90) == pytest.approx(9.1)
    assert percentile(ONE_TO_TEN, 99) == pytest.approx(9.91)
    assert percentile([3.0], 99) == 3.0
    with pytest.raises(ValueError):
        percentile([], 50)


def test_median_ci_ranks_n10_by_hand():
    # Binomial(10, 1/2): P(B<=1) = 11/1024 <= 0.025 < P(B<=2) = 56/1024 -> l = 2
    #                    P(B<=7) = 968/1024 < 0.975 <= P(B<=8) = 1013/1024 -> u = 9
    assert order_statistic_ranks(10, 0.5) == (2, 9)
    assert quantile_ci(ONE_TO_TEN[::-1], 0.5) == (2.0, 9.0)  # order of the input does not matter
    assert rel_ci_halfwidth(ONE_TO_TEN) == pytest.approx((9 - 2) / 2 / 5.5)


def test_small_n_bounds_are_clipped():
    # n = 5: P(B=0) = 1/32 > 0.025, no lower rank exists; the bound is clipped to the minimum
    assert order_statistic_ranks(5, 0.5) == (0, 6)
    assert quantile_ci([5.0, 1.0, 3.0, 2.0, 4.0], 0.5) == (1.0, 5.0)
    # p99 needs hundreds of samples for a finite upper rank
    assert order_statistic_ranks(100, 0.99)[1] == 101


def test_ci_coverage_is_at_least_95_percent():
    rng = np.random.default_rng(0)
    hits = 0
    for _ in range(400):
        x = rng.exponential(1.0, size=60)  # true median ln 2
        lo, hi = quantile_ci(x, 0.5)
        hits += lo <= math.log(2) <= hi
    assert hits / 400 >= 0.93


def test_summarize_fields_and_roundtrip():
    s = summarize(ONE_TO_TEN, target_rel_ci=0.02)
    assert (s.n, s.min_ms, s.max_ms, s.mean_ms) == (10, 1.0, 10.0, 5.5)
    assert s.std_ms == pytest.approx(np.std(ONE_TO_TEN, ddof=1))
    assert (s.p50_ms, s.p90_ms, s.p99_ms) == pytest.approx((5.5, 9.1, 9.91))
    assert s.ci95_ms["p50"] == (2.0, 9.0)
    assert s.stable is False  # +-64 % is far from the 2 % target
    assert s.samples_ms == tuple(ONE_TO_TEN)
    assert LatencyStats.from_dict(s.to_dict()) == s


def test_tight_samples_are_stable_and_drift_is_not():
    rng = np.random.default_rng(1)
    tight = 10.0 + rng.normal(0, 0.01, size=200)
    assert summarize(tight).stable
    drifting = np.concatenate([10.0 + rng.normal(0, 0.01, 100), 12.0 + rng.normal(0, 0.01, 100)])
    assert drift_detected(drifting)
    assert not drift_detected(tight)
    s = summarize(drifting, target_rel_ci=0.1)
    assert s.rel_ci_halfwidth <= 0.1 and not s.stable  # CI target met, but 18 % drift


def _ranks_ci(x: list[float], q: float) -> tuple[float, float]:
    """The documented rule computed from the order-statistic ranks (clipped to the sample min/max)."""
    s = sorted(x)
    low, up = order_statistic_ranks(len(s), q)
    return s[max(low, 1) - 1], s[min(up, len(s)) - 1]


@pytest.mark.parametrize("n", [1, 2, 5, 8, 10, 20, 31, 50, 100, 257, 1000])
@pytest.mark.parametrize("q", [0.5, 0.9, 0.99])
def test_quantile_ci_is_scipy_quantile_test_where_both_bounds_exist(n: int, q: float) -> None:
    """``quantile_ci`` is scipy.stats.quantile_test's interval; a bound scipy leaves undefined (nan: too few
    samples) is the sample min / max, as documented."""
    import math

    import numpy as np
    import scipy.stats

    x = list(np.random.default_rng(n).lognormal(size=n))
    ci = scipy.stats.quantile_test(x, q=float(np.median(x)), p=q).confidence_interval(0.95)
    ours = quantile_ci(x, q)
    assert ours == _ranks_ci(x, q)
    for got, ref, clip in ((ours[0], ci.low, min(x)), (ours[1], ci.high, max(x))):
        assert got == (clip if math.isnan(ref) else ref)


def test_min_samples_for_upper_bound_is_the_first_n_with_an_interior_bound() -> None:
    from us3l.profiler.stats import min_samples_for_upper_bound, order_statistic_ranks

    for q, below in ((0.9, 2), (0.9, 1), (0.5, 2), (0.99, 1)):
        n = min_samples_for_upper_bound(q, below)
        assert order_statistic_ranks(n, q)[1] <= n - below
        assert order_statistic_ranks(n - 1, q)[1] > n - 1 - below
    # p90 at 95 %: with 20 samples the bound does not exist (rank 21 > n), at 70 it is the 68th
    assert order_statistic_ranks(20, 0.9)[1] == 21 and min_samples_for_upper_bound(0.9) == 70


def test_ratio_interval_bounds_a_ratio_of_medians() -> None:
    """The spread the benchmarks print beside p50(a) / p50(b): from the two medians' intervals, at least 90 %."""
    a, b = summarize(ONE_TO_TEN), summarize([2 * v for v in ONE_TO_TEN])
    (a_lo, a_hi), (b_lo, b_hi) = a.ci95_ms["p50"], b.ci95_ms["p50"]
    assert ratio_interval(a, b) == (a_lo / b_hi, a_hi / b_lo)
    assert ratio_interval(a, b)[0] < a.p50_ms / b.p50_ms < ratio_interval(a, b)[1]
    assert ratio_interval(a, summarize([0.0, 0.0, 1.0]))[1] == math.inf
    rng = np.random.default_rng(0)
    hits = 0
    for _ in range(400):  # true medians 3 ln 2 and ln 2: the true ratio is 3
        lo, hi = ratio_interval(summarize(rng.exponential(3.0, size=60)), summarize(rng.exponential(1.0, size=60)))
        hits += lo <= 3.0 <= hi
    assert hits / 400 >= 0.9


def test_a_median_interval_is_full_from_six_samples() -> None:
    """Below 6 samples the 95 % ranks of the median do not exist and the bounds are the sample range."""
    assert [n for n in range(1, 12) if median_interval_is_full(n)] == list(range(6, 12))


def test_order_statistic_ranks_are_scipys_and_each_bound_misses_at_most_2_5_percent() -> None:
    """For every n up to 80 and a spread of larger ones: the 1-based ranks are those scipy.stats.quantile_test
    takes (``binom.ppf(0.025)`` and ``binom.isf(0.025) + 1``), each side misses the quantile with at most 2.5 %
    (P(B <= l-1) and P(B >= u)), and neither rank can move inward; 0 / n + 1 exactly when no rank exists."""
    from scipy.stats import binom

    for q in (0.5, 0.9, 0.99, 0.2):
        for n in [*range(1, 81), 99, 100, 101, 367, 368, 369, 1000]:
            low, up = order_statistic_ranks(n, q)
            bd = binom(n, q)
            assert (low, up) == (int(bd.ppf(0.025)), int(bd.isf(0.025)) + 1), (n, q)
            cdf = bd.cdf(np.arange(n + 1))
            assert 0 <= low <= n and 1 <= up <= n + 1 and low < up
            assert (cdf[low - 1] if low else 0.0) <= 0.025 + 1e-12 < cdf[low]  # l - 1 is the last rank allowed
            assert (1.0 - cdf[up - 1] if up <= n else 0.0) <= 0.025 + 1e-12
            assert up == 1 or 1.0 - cdf[up - 2] > 0.025  # u - 1 would miss more than 2.5 %
    # the bound exists from 36 samples for p90 and 368 for p99 (0.9^n <= 0.025, 0.99^n <= 0.025)
    from us3l.profiler.stats import min_samples_for_upper_bound

    assert min_samples_for_upper_bound(0.9, 0) == 36 and min_samples_for_upper_bound(0.99, 0) == 368
    assert order_statistic_ranks(35, 0.9)[1] == 36 and order_statistic_ranks(36, 0.9)[1] == 36
