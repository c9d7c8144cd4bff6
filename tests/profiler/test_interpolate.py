"""profiler/interpolate.py: the covering subset, the rough-interval refinement and interpolated statistics."""

from __future__ import annotations

import math

import pytest

from us3l.profiler import interpolate as ip
from us3l.profiler.stats import summarize


def test_initial_keys_cover_the_range() -> None:
    macs = {f"w{i}": float(i * 10 + 5) for i in range(40)}
    keys = ip.initial_keys(macs)
    assert len(keys) == 10  # a quarter of 40
    assert keys[0] == "w0" and keys[-1] == "w39"  # both extremes
    gaps = [macs[b] - macs[a] for a, b in zip(keys, keys[1:], strict=False)]
    assert max(gaps) <= 2 * min(gaps)  # evenly spread
    small = {"a": 1.0, "b": 2.0, "c": 3.0}
    assert ip.initial_keys(small) == ["a", "b", "c"]  # fewer than the minimum: measure everything


def _points(f, xs):
    return {x: ip.Point(float(x), f(x), 0.01 * f(x)) for x in xs}


def test_a_straight_line_needs_nothing_more() -> None:
    macs = {x: float(x) for x in range(0, 101, 5)}
    measured = _points(lambda x: 1.0 + 0.02 * x, [0, 25, 50, 75, 100])
    assert ip.rough_intervals(list(measured.values()), 0.02) == []
    assert ip.next_keys(macs, measured, 0.02) == []
    assert ip.fit_error(list(measured.values())) == pytest.approx(0.0, abs=1e-12)


def test_a_jump_is_refined_until_located() -> None:
    macs = {x: float(x) for x in range(0, 101, 5)}

    def f(x: float) -> float:  # a step at 62: a new kernel path
        return 1.0 + 0.01 * x + (1.0 if x >= 62 else 0.0)

    measured = _points(f, ip.initial_keys(macs))
    rounds = 0
    while True:
        nxt = ip.next_keys(macs, measured, 0.02)
        if not nxt:
            break
        assert all(k not in measured for k in nxt)
        measured.update(_points(f, nxt))
        rounds += 1
        assert rounds < 20
    assert 60 in measured and 65 in measured  # both sides of the step are measured
    assert len(measured) < len(macs)  # and not everything
    # every unmeasured width is predicted within tolerance of the truth
    stats = {k: (macs[k], summarize([f(k)] * 5)) for k in measured}
    for k in macs:
        if k not in measured:
            pred = ip.interpolated_stats(macs[k], stats, ip.fit_error(list(measured.values())))
            assert pred.p50_ms == pytest.approx(f(k), rel=0.03)


def test_interpolated_stats_are_flagged_and_widened() -> None:
    a, b = summarize([1.0, 1.1, 0.9, 1.0, 1.05]), summarize([3.0, 3.1, 2.9, 3.0, 3.05])
    s = ip.interpolated_stats(150.0, {"a": (100.0, a), "b": (200.0, b)}, rel_err=0.1)
    assert s.n == 0 and s.samples_ms == () and s.stable is False
    assert s.p50_ms == pytest.approx(0.5 * (a.p50_ms + b.p50_ms))
    lo, hi = s.ci95_ms["p50"]
    assert lo < s.p50_ms < hi
    assert lo == pytest.approx(0.5 * (a.ci95_ms["p50"][0] + b.ci95_ms["p50"][0]) / 1.1)
    assert math.isfinite(s.rel_ci_halfwidth) and s.rel_ci_halfwidth > 0
    # outside the measured range: clamp to the nearest measured width
    assert ip.interpolated_stats(50.0, {"a": (100.0, a), "b": (200.0, b)}, 0.0).p50_ms == pytest.approx(a.p50_ms)
    with pytest.raises(ValueError):
        ip.interpolated_stats(1.0, {}, 0.0)


def test_a_fit_error_over_100_percent_keeps_the_bounds_positive() -> None:
    """`us3l profile --adaptive` on a noisy machine (torch eager, leave-one-out error 250 %) widened the lower
    bounds by 1 - error, below zero: `the measured profile is not valid, not written: ... ci95_ms.p50[0] must be a
    finite positive number, got -196.0`, after the whole sweep."""
    from us3l.profiler.profile_file import Profile, ProfileRecord, validate_profile

    a, b = summarize([1.0, 1.1, 0.9, 1.0, 1.05]), summarize([3.0, 3.1, 2.9, 3.0, 3.05])
    s = ip.interpolated_stats(150.0, {"a": (100.0, a), "b": (200.0, b)}, rel_err=2.5)
    for lo, hi in s.ci95_ms.values():
        assert 0 < lo <= hi
    assert s.ci95_ms["p50"][0] < s.p50_ms < s.ci95_ms["p50"][1]
    rec = ProfileRecord(width=0.5, channels=8, macs=150, params=10, weight_bytes=40, activation_bytes=40,
                        latency=s, stop_reason="interpolated", interpolated=True)
    prof = Profile(model="toy", device="cpu", backend="torch", precision="fp32", input_shape=(1, 3, 8, 8),
                   threads=1, policy={}, fingerprint={}, records=(rec,))
    validate_profile(prof.to_dict(), "p.json")
