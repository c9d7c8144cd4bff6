"""Latency statistics: the only place in us3l where they are computed.

Definitions (see docs/profiling.md):

* percentiles use linear interpolation between order statistics (numpy's default, Hyndman-Fan type 7);
* the 95 % confidence interval of a quantile ``q`` is the distribution-free order-statistic interval
  ``[x_(l), x_(u)]`` (1-based ranks of the sorted samples) where ``l`` is the largest rank with
  ``P(B <= l-1) <= 0.025`` and ``u`` the smallest rank with ``P(B <= u-1) >= 0.975`` for ``B ~ Binomial(n, q)``.
  It needs no assumption about the shape of the latency distribution; it is ``scipy.stats.quantile_test``'s
  interval. When ``n`` is too small for a rank to exist, the bound is clipped to the sample minimum/maximum
  (the interval then covers less than 95 %);
* ``rel_ci_halfwidth`` is half the width of the median's interval divided by the median;
* ``stable`` means the median's interval met the target *and* no drift was seen: the medians of the first and
  second half of the samples (in time order) differ by at most ``target`` relative, or their own 95 %
  intervals overlap (a difference explained by noise alone is not called drift).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

#: Confidence level of every interval reported by us3l.
CONFIDENCE = 0.95
#: Default target relative half-width of the median's 95 % interval.
DEFAULT_TARGET_REL_CI = 0.02


def percentile(samples: Sequence[float] | np.ndarray, q: float) -> float:
    """The ``q``-th percentile (``q`` in [0, 100]) with linear interpolation (numpy's default)."""
    arr = np.asarray(samples, dtype=np.float64)
    if arr.size == 0:
        raise ValueError("percentile of an empty sample")
    return float(np.percentile(arr, q))


def _binom_cdf_table(n: int, p: float) -> np.ndarray:
    """``cdf[k] = P(B <= k)`` for ``B ~ Binomial(n, p)``, k = 0..n (scipy.stats.binom)."""
    from scipy.stats import binom

    return np.asarray(binom.cdf(np.arange(n + 1), n, p), dtype=np.float64)


@lru_cache(maxsize=4096)  # a pure function of its arguments; scipy takes ~5 ms a call, a profile reads many
def order_statistic_ranks(n: int, q: float, confidence: float = CONFIDENCE) -> tuple[int, int]:
    """1-based ranks ``(l, u)`` of the distribution-free interval for the ``q``-quantile (q in (0, 1)).

    ``l`` may be 0 and ``u`` may be ``n + 1`` when ``n`` is too small for that bound to exist.
    """
    if n <= 0:
        raise ValueError("need at least one sample")
    if not 0.0 < q < 1.0:
        raise ValueError(f"quantile must be in (0, 1), got {q}")
    alpha = (1.0 - confidence) / 2.0
    cdf = _binom_cdf_table(n, q)
    eps = 1e-12
    # interval [x_(l), x_(u)] misses the quantile below with prob P(B <= l-1) = cdf[l-1]
    lower_ok = np.nonzero(cdf <= alpha + eps)[0]  # candidate values of l-1
    low = int(lower_ok[-1]) + 1 if lower_ok.size else 0
    # ... and above with prob 1 - P(B <= u-1) = 1 - cdf[u-1]
    upper_ok = np.nonzero(cdf >= 1.0 - alpha - eps)[0]  # candidate values of u-1
    up = int(upper_ok[0]) + 1  # cdf[n] == 1, so never empty; n + 1 means "no finite upper bound"
    return low, up


@lru_cache(maxsize=64)
def min_samples_for_upper_bound(q: float, below_max: int = 2, confidence: float = CONFIDENCE) -> int:
    """The fewest samples for which the upper ``confidence`` bound of the ``q``-quantile is the order statistic
    ``below_max`` places under the sample maximum or lower (with fewer, it does not exist or is the maximum
    itself, so a single tail sample sets it). ``below_max=0``: the fewest for which the bound exists at all
    (p90: 36, p99: 368)."""
    n = 2
    while order_statistic_ranks(n, q, confidence)[1] > n - below_max:
        n += 1
    return n


def quantile_ci(
    samples: Sequence[float] | np.ndarray, q: float, confidence: float = CONFIDENCE
) -> tuple[float, float]:
    """Distribution-free ``confidence`` interval for the ``q``-quantile (q in (0, 1)).

    The same interval as ``scipy.stats.quantile_test(...).confidence_interval`` (tests/profiler/test_stats.py
    checks it), computed from the ranks directly because that is ~50x faster at the sample sizes of a
    measurement loop; a bound whose rank does not exist for this sample size (scipy: nan) is clipped to the
    sample min / max.
    """
    x = np.sort(np.asarray(samples, dtype=np.float64))
    n = x.size
    low, up = order_statistic_ranks(n, q, confidence)
    return float(x[max(low, 1) - 1]), float(x[min(up, n) - 1])


def rel_ci_halfwidth(samples: Sequence[float] | np.ndarray, confidence: float = CONFIDENCE) -> float:
    """Half-width of the median's interval relative to the median (``inf`` with fewer than 2 samples)."""
    x = np.asarray(samples, dtype=np.float64)
    if x.size < 2:
        return math.inf
    lo, hi = quantile_ci(x, 0.5, confidence)
    med = float(np.median(x))
    if med <= 0.0:
        return math.inf
    return (hi - lo) / 2.0 / med


def drift_detected(samples: Sequence[float] | np.ndarray, target: float = DEFAULT_TARGET_REL_CI) -> bool:
    """True when the first and second half (time order) have clearly different medians.

    Clearly: their relative difference exceeds ``target`` and their own 95 % intervals do not overlap.
    Fewer than 12 samples are never called drift (too little data to tell).
    """
    x = np.asarray(samples, dtype=np.float64)
    if x.size < 12:
        return False
    half = x.size // 2
    a, b = x[:half], x[x.size - half :]
    ma, mb = float(np.median(a)), float(np.median(b))
    ref = float(np.median(x))
    if ref <= 0 or abs(ma - mb) / ref <= target:
        return False
    la, ha = quantile_ci(a, 0.5)
    lb, hb = quantile_ci(b, 0.5)
    return ha < lb or hb < la


@dataclass(frozen=True)
class LatencyStats:
    """Summary of one width's latency samples, in milliseconds, with the raw samples kept."""

    n: int
    mean_ms: float
    std_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    min_ms: float
    max_ms: float
    ci95_ms: dict[str, tuple[float, float]]
    rel_ci_halfwidth: float
    stable: bool
    samples_ms: tuple[float, ...] = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict in the profile-file layout (CONTRACT.md)."""
        d = asdict(self)
        d["ci95_ms"] = {k: [float(v[0]), float(v[1])] for k, v in self.ci95_ms.items()}
        d["samples_ms"] = [float(s) for s in self.samples_ms]
        d["rel_ci_halfwidth"] = None if math.isinf(self.rel_ci_halfwidth) else self.rel_ci_halfwidth
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LatencyStats:
        """Inverse of :meth:`to_dict`."""
        rel = d.get("rel_ci_halfwidth")
        return cls(
            n=int(d["n"]),
            mean_ms=float(d["mean_ms"]),
            std_ms=float(d["std_ms"]),
            p50_ms=float(d["p50_ms"]),
            p90_ms=float(d["p90_ms"]),
            p99_ms=float(d["p99_ms"]),
            min_ms=float(d["min_ms"]),
            max_ms=float(d["max_ms"]),
            ci95_ms={k: (float(v[0]), float(v[1])) for k, v in d["ci95_ms"].items()},
            rel_ci_halfwidth=math.inf if rel is None else float(rel),
            stable=bool(d.get("stable", False)),
            # an interpolated width (us3l profile --adaptive) has none: validate_profile accepts it without the key
            samples_ms=tuple(float(s) for s in d.get("samples_ms") or ()),
        )


def summarize(
    samples_ms: Sequence[float] | np.ndarray, target_rel_ci: float = DEFAULT_TARGET_REL_CI
) -> LatencyStats:
    """Summarize latency samples given in milliseconds, in the order they were taken."""
    x = np.asarray(samples_ms, dtype=np.float64)
    if x.size == 0:
        raise ValueError("no latency samples to summarize")
    if x.size == 1:
        ci = {k: (float(x[0]), float(x[0])) for k in ("p50", "p90", "p99")}
    else:
        ci = {k: quantile_ci(x, q) for k, q in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99))}
    rel = rel_ci_halfwidth(x)
    stable = rel <= target_rel_ci and not drift_detected(x, target_rel_ci)
    return LatencyStats(
        n=int(x.size),
        mean_ms=float(x.mean()),
        std_ms=float(x.std(ddof=1)) if x.size > 1 else 0.0,
        p50_ms=percentile(x, 50),
        p90_ms=percentile(x, 90),
        p99_ms=percentile(x, 99),
        min_ms=float(x.min()),
        max_ms=float(x.max()),
        ci95_ms=ci,
        rel_ci_halfwidth=rel,
        stable=bool(stable),
        samples_ms=tuple(float(v) for v in x),
    )


def median_interval_is_full(n: int, confidence: float = CONFIDENCE) -> bool:
    """Whether ``n`` samples give the median a full ``confidence`` interval (both of its ranks exist: from 6
    samples on at 95 %); with fewer the bounds are clipped to the sample range and cover less."""
    low, up = order_statistic_ranks(n, 0.5, confidence)
    return low >= 1 and up <= n


def clipped_medians_note(n: int, samples: str = "rounds", of: str | None = None, holds: str = "90 %") -> str | None:
    """The caveat a benchmark prints under its ratios when ``n`` samples per median are too few for the median's
    full 95 % interval (``median_interval_is_full``), else None: ``fewer than 6 rounds: each median's interval is
    the range of its rounds, and the bounds hold with less than 90 %`` (``of``: the samples' name after "its",
    default ``samples``)."""
    if median_interval_is_full(n):
        return None
    return (f"fewer than 6 {samples}: each median's interval is the range of its {of or samples}, and the bounds "
            f"hold with less than {holds}")


def ratio_interval(num: LatencyStats, den: LatencyStats) -> tuple[float, float]:
    """Bounds on ``num.p50 / den.p50`` from the two medians' 95 % intervals: ``[num low / den high, num high /
    den low]``. Each interval misses its median with at most 5 %, so both hold, and the ratio lies within these
    bounds, with at least 90 % confidence: the spread a benchmark prints beside a ratio of two medians it timed
    side by side. With too few samples for a 95 % interval (fewer than 6: the bounds are clipped to the sample
    range, see above) the confidence is lower. ``inf`` above when ``den``'s interval reaches 0."""
    (n_lo, n_hi), (d_lo, d_hi) = num.ci95_ms["p50"], den.ci95_ms["p50"]
    return n_lo / d_hi, (n_hi / d_lo if d_lo > 0 else math.inf)
