"""Adaptive sweeps: measure a covering subset of widths, interpolate latency in MACs, refine where it is rough.

Latency of a width's static network is a smooth function of its MACs over most of a grid, so timing every one
of 90 widths mostly re-measures a straight line. ``us3l profile --adaptive`` measures instead:

1. a covering subset (:func:`initial_keys`): the smallest and the largest network and evenly spaced ranks in
   between, about a quarter of the distinct channel configurations (at least 5);
2. then, in rounds, the midpoint of every *rough* interval (:func:`rough_intervals`): an interval between two
   measured neighbours of a measured width whose leave-one-out prediction from those neighbours misses its
   measured median by more than its own 95 % interval (or the CI target), i.e. where the curve bends or jumps;
3. until no rough interval holds an unmeasured width. Every other width is interpolated linearly in MACs
   between its measured neighbours (:func:`interpolated_stats`), flagged ``interpolated`` and never stable:
   ``us3l select`` only ever commits to a measured width.

Everything here is pure (numbers in, numbers out); ``us3l.profiler.sweep`` drives the measurements.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from us3l.profiler.stats import LatencyStats

K = TypeVar("K", bound=Hashable)

MIN_INITIAL = 5
INITIAL_FRACTION = 0.25


@dataclass(frozen=True)
class Point:
    """A measured width in the fit: its MACs, median latency (ms) and the half-width of its median's 95 % CI."""

    macs: float
    median_ms: float
    ci_half_ms: float


def initial_keys(macs: Mapping[K, float], fraction: float = INITIAL_FRACTION, minimum: int = MIN_INITIAL) -> list[K]:
    """The first widths to measure: the extremes in MACs and evenly spaced ranks between them."""
    order = sorted(macs, key=lambda k: (macs[k], str(k)))
    n = len(order)
    k = min(n, max(minimum, math.ceil(fraction * n)))
    if k >= n:
        return order
    ranks = sorted({round(i * (n - 1) / (k - 1)) for i in range(k)})
    return [order[r] for r in ranks]


def _interp(x: float, a: Point, b: Point) -> float:
    if b.macs == a.macs:
        return 0.5 * (a.median_ms + b.median_ms)
    t = (x - a.macs) / (b.macs - a.macs)
    return a.median_ms + t * (b.median_ms - a.median_ms)


def rough_intervals(points: Sequence[Point], target_rel_ci: float) -> list[tuple[float, float]]:
    """MAC intervals ``(lo, hi)`` where linear interpolation is not trustworthy.

    For each interior measured point, predict its median from its two measured neighbours (leave one out); if the
    prediction misses by more than ``max(its CI half-width, target_rel_ci * median)``, both intervals around it
    are rough."""
    pts = sorted(points, key=lambda p: p.macs)
    rough: set[tuple[float, float]] = set()
    for i in range(1, len(pts) - 1):
        a, m, b = pts[i - 1], pts[i], pts[i + 1]
        err = abs(_interp(m.macs, a, b) - m.median_ms)
        if err > max(m.ci_half_ms, target_rel_ci * m.median_ms):
            rough.add((a.macs, m.macs))
            rough.add((m.macs, b.macs))
    return sorted(rough)


def next_keys(macs: Mapping[K, float], measured: Mapping[K, Point], target_rel_ci: float) -> list[K]:
    """The unmeasured widths to measure next: in every rough interval that still holds some, the one nearest
    the interval's middle (in MACs). Empty when the fit is smooth everywhere (or everything is measured)."""
    todo = [k for k in macs if k not in measured]
    if not todo:
        return []
    if len(measured) < 2:
        return sorted(todo, key=lambda k: (macs[k], str(k)))
    picks: list[K] = []
    for lo, hi in rough_intervals(list(measured.values()), target_rel_ci):
        inside = [k for k in todo if lo < macs[k] < hi and k not in picks]
        if inside:
            mid = 0.5 * (lo + hi)
            picks.append(min(inside, key=lambda k: (abs(macs[k] - mid), str(k))))
    return picks


def fit_error(points: Sequence[Point]) -> float:
    """The largest relative leave-one-out error of the piecewise-linear fit over interior measured points (0 when
    fewer than 3): the uncertainty an interpolated width carries beside its neighbours' own intervals."""
    pts = sorted(points, key=lambda p: p.macs)
    triples = zip(pts, pts[1:], pts[2:], strict=False)  # (left, middle, right) neighbours
    errs = [abs(_interp(m.macs, a, b) - m.median_ms) / m.median_ms for a, m, b in triples if m.median_ms > 0]
    return max(errs, default=0.0)


def interpolated_stats(x: float, measured: Mapping[K, tuple[float, LatencyStats]], rel_err: float) -> LatencyStats:
    """Latency statistics of an unmeasured width at ``x`` MACs, linear in MACs between the measured neighbours
    (``measured``: key -> (macs, stats)); intervals are the interpolated neighbours' widened by ``rel_err``.
    ``n = 0``, no samples, never stable."""
    pts = sorted(measured.values(), key=lambda t: t[0])
    if not pts:
        raise ValueError("no measured widths to interpolate from")
    lo = max((p for p in pts if p[0] <= x), key=lambda p: p[0], default=pts[0])
    hi = min((p for p in pts if p[0] >= x), key=lambda p: p[0], default=pts[-1])
    (xa, sa), (xb, sb) = lo, hi
    t = 0.0 if xb == xa else min(1.0, max(0.0, (x - xa) / (xb - xa)))

    def mix(u: float, v: float) -> float:
        return u + t * (v - u)

    p50 = mix(sa.p50_ms, sb.p50_ms)
    ci = {}
    for q in ("p50", "p90", "p99"):
        ca, cb = sa.ci95_ms.get(q), sb.ci95_ms.get(q)
        if ca is None or cb is None:
            continue
        # widened by the factor 1 + rel_err both ways: a fit error of 100 % or more (a noisy machine) must not give
        # a negative lower bound, which the profile file refuses (the whole sweep was then not written)
        ci[q] = (mix(ca[0], cb[0]) / (1.0 + rel_err), mix(ca[1], cb[1]) * (1.0 + rel_err))
    half = 0.5 * (ci["p50"][1] - ci["p50"][0]) if "p50" in ci else 0.0
    return LatencyStats(
        n=0,
        mean_ms=mix(sa.mean_ms, sb.mean_ms),
        std_ms=mix(sa.std_ms, sb.std_ms),
        p50_ms=p50,
        p90_ms=mix(sa.p90_ms, sb.p90_ms),
        p99_ms=mix(sa.p99_ms, sb.p99_ms),
        min_ms=mix(sa.min_ms, sb.min_ms),
        max_ms=mix(sa.max_ms, sb.max_ms),
        ci95_ms=ci,
        rel_ci_halfwidth=half / p50 if p50 > 0 else math.inf,
        stable=False,
        samples_ms=(),
    )


def point_of(macs: float, stats: LatencyStats) -> Point:
    """The fit's view of a measured width."""
    lo, hi = stats.ci95_ms.get("p50", (stats.p50_ms, stats.p50_ms))
    return Point(macs=float(macs), median_ms=stats.p50_ms, ci_half_ms=0.5 * (hi - lo))
