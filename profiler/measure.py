"""The interleaved measurement loop with its stopping rule.

Every width gets a *timer*: a callable ``timer(k) -> list of k latencies in seconds`` (a local runtime, a remote
runner over SSH, or a ``trtexec`` run). The loop warms every timer up, then runs rounds; in each round every
width that has not stopped yet takes ``chunk`` samples, in a rotating order, so that slow drift of the machine
(thermal, frequency, background load) spreads evenly over the widths instead of landing on the last ones.
A width stops when (a) it has at least ``min_samples`` samples (``min_repeats``, raised to what the upper 95 % CI bound
of the ``tail_quantile`` needs to be an order statistic below the sample maximum) and the 95 % interval of its
median is within ``target_rel_ci`` of the median, or (b) it reached ``max_repeats`` samples, or (c) its accumulated
timing time reached ``max_seconds``.

``measure_windowed`` holds at most ``window`` widths' timers open at once: a width's timer is opened (and warmed
up) when a slot is free and closed as soon as it stops, so memory is bounded by the window, not by the grid.
Under a total budget each width gets a share of the time left when it is opened (``us3l.profiler.window``); one
that does not reach the target within its share stops with (d) ``budget`` and is flagged unstable.
"""

from __future__ import annotations

import math
import numbers
import time
from collections import deque
from collections.abc import Callable, Hashable, Mapping, Sequence
from contextlib import AbstractContextManager, ExitStack, nullcontext
from dataclasses import asdict, dataclass, replace
from typing import Any, TypeVar

from us3l.errors import US3LError
from us3l.profiler.stats import (
    DEFAULT_TARGET_REL_CI,
    LatencyStats,
    min_samples_for_upper_bound,
    rel_ci_halfwidth,
    summarize,
)

K = TypeVar("K", bound=Hashable)
Timer = Callable[[int], Sequence[float]]


#: The longest one timed inference may be, in seconds (an hour): a timer's sample above it (a remote runner's or
#: trtexec's 1e300) is refused when it arrives; it was refused only when the profile was written, after the whole
#: sweep, or recorded as measured where every sample of the width was alike.
MAX_SAMPLE_S = 3600.0
#: Upper bounds of a policy's settings: a warm-up or a chunk is one timing call, which no time cap interrupts, and
#: the sample count a tail quantile needs grows without bound as it nears 1 (0.99: 720 samples).
_MOST = {"warmup": 10_000, "min_repeats": 1_000_000, "max_repeats": 1_000_000, "chunk": 1_000}


@dataclass(frozen=True)
class MeasurementPolicy:
    """How long to measure one width.

    ``max_seconds`` caps the accumulated timing time *per width*; ``chunk`` is the number of consecutive
    samples a width takes per round. ``tail_quantile`` is the quantile whose upper 95 % CI bound a latency budget
    compares (``us3l select``'s default: p90): a width is not stopped for reaching the median's target before
    that bound is an order statistic two places under the sample maximum (70 samples for p90; with fewer it does
    not exist and one slow sample sets it). 0 turns this off (``min_repeats`` alone); ``max_repeats`` and
    ``max_seconds`` still cap a width below that count (``us3l select`` then warns that the bound is missing).
    """

    warmup: int = 10
    min_repeats: int = 30
    max_repeats: int = 3000
    target_rel_ci: float = DEFAULT_TARGET_REL_CI
    max_seconds: float = 20.0
    chunk: int = 10
    tail_quantile: float = 0.9

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():  # NaN passes every comparison below: refuse it first
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, got {value!r}")
        for name in ("warmup", "min_repeats", "max_repeats", "chunk"):
            if not float(getattr(self, name)).is_integer():
                raise ValueError(f"{name} must be a whole number, got {getattr(self, name)!r}")
            object.__setattr__(self, name, int(getattr(self, name)))  # 2.0 from a TOML file: the count 2
        for name, most in _MOST.items():  # one timing call is not interrupted: bound what it can be asked for
            if getattr(self, name) > most:
                raise ValueError(f"{name} must be <= {most:g}, got {getattr(self, name)!r}")
        if self.warmup < 0:
            raise ValueError(f"warmup must be >= 0, got {self.warmup}")
        if self.min_repeats < 2:
            raise ValueError(f"min_repeats must be >= 2, got {self.min_repeats}")
        if self.tail_quantile != 0 and not 0.5 <= self.tail_quantile <= 0.99:
            raise ValueError(f"tail_quantile must be 0 (off) or in [0.5, 0.99], got {self.tail_quantile}")
        if self.max_repeats < self.min_repeats:
            raise ValueError(f"max_repeats ({self.max_repeats}) < min_repeats ({self.min_repeats})")
        if not 0.0 < self.target_rel_ci < 1.0:
            raise ValueError(f"target_rel_ci must be in (0, 1), got {self.target_rel_ci}")
        if self.max_seconds <= 0:
            raise ValueError(f"max_seconds must be > 0, got {self.max_seconds}")
        if self.chunk < 1:
            raise ValueError(f"chunk must be >= 1, got {self.chunk}")

    @property
    def min_samples(self) -> int:
        """The fewest samples before the ``target`` rule may stop a width."""
        if not self.tail_quantile:
            return int(self.min_repeats)
        return max(int(self.min_repeats), min_samples_for_upper_bound(float(self.tail_quantile)))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def replace(self, **changes: Any) -> MeasurementPolicy:
        """A copy with the non-None ``changes`` applied."""
        d = self.to_dict()
        d.update({k: v for k, v in changes.items() if v is not None})
        return MeasurementPolicy(**d)


@dataclass(frozen=True)
class Measurement:
    """One width's outcome: its statistics and why it stopped (``target``, ``max_repeats``, ``time_cap``,
    ``budget``), the timing seconds it took and, under a total budget, the share it was given."""

    stats: LatencyStats
    stop_reason: str
    elapsed_s: float
    share_s: float | None = None


def stop_reason(
    samples_s: Sequence[float], elapsed_s: float, policy: MeasurementPolicy, share_s: float | None = None
) -> str | None:
    """The stopping rule: the reason to stop now, or None to keep measuring (``share_s``: the width's share of
    a total budget, ``budget`` when it is used up before the other rules fire)."""
    n = len(samples_s)
    if n >= policy.min_samples and rel_ci_halfwidth(samples_s) <= policy.target_rel_ci:
        return "target"
    if n >= policy.max_repeats:
        return "max_repeats"
    if elapsed_s >= policy.max_seconds:
        return "time_cap"
    if share_s is not None and elapsed_s >= share_s:
        return "budget"
    return None


def check_samples(got: Sequence[float], need: int, key: Hashable) -> list[float]:
    """The ``need`` timings a timer returned, each a finite positive number of seconds up to ``MAX_SAMPLE_S``;
    ``US3LError`` if not.

    A runtime (or a remote runner, or trtexec) that answers NaN, a negative, zero or absurd time, or the wrong count
    is refused: its statistics would be meaningless and a budget solver could pick the width for it.
    """
    values = list(got)
    if len(values) != need:
        raise US3LError(f"timer of width {key} returned {len(values)} samples, asked for {need}")
    for j, v in enumerate(values):
        ok = isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v) and 0 < v <= MAX_SAMPLE_S
        if not ok:
            raise US3LError(f"timer of width {key}: sample {j} must be a finite positive time of at most "
                            f"{MAX_SAMPLE_S:g} s, got {v!r}")
    return [float(v) for v in values]


def measure_interleaved(
    timers: Mapping[K, Timer],
    policy: MeasurementPolicy,
    clock: Callable[[], float] = time.perf_counter,
    on_round: Callable[[int, dict[K, int]], None] | None = None,
) -> dict[K, Measurement]:
    """Measure every timer until its stopping rule fires, all of them interleaved (one window holding every
    width); see the module docstring.

    ``on_round(round_index, {key: n_samples})`` is called after each round (progress display).
    """
    return measure_windowed(
        list(timers), lambda k, _live: nullcontext(timers[k]), policy, window=max(1, len(timers)), clock=clock,
        on_round=on_round,
    ).results


class WindowFull(Exception):  # noqa: N818 - a signal, not an error: the width is opened later
    """Raised by an ``open_timer`` that cannot hold one more session now (memory); the width waits until
    another one closes. Never raised with no session open (``live == 0``)."""


@dataclass(frozen=True)
class SweepProgress:
    """Where a windowed measurement stands (for a progress display).

    ``eta_s``: estimated seconds left (under a budget, never more than the budget left); None before any
    width has finished.
    """

    done: int
    live: int
    pending: int
    stable: int
    elapsed_s: float
    eta_s: float | None
    budget_left_s: float | None


@dataclass(frozen=True)
class WindowedResult:
    """``results`` per key, the most timers that were open at once, and the measurement's wall time."""

    results: dict[Any, Measurement]
    max_live: int
    wall_s: float


def _or(value: float | None, default: float) -> float:
    return default if value is None else value


def _summary(samples: list[float], reason: str, policy: MeasurementPolicy) -> LatencyStats:
    stats = summarize([s * 1e3 for s in samples], policy.target_rel_ci)
    if reason == "budget" and stats.stable and stats.n < policy.min_samples:
        stats = replace(stats, stable=False)  # cut short by the budget before min_samples: not called stable
    return stats


def measure_windowed(
    keys: Sequence[K],
    open_timer: Callable[[K, int], AbstractContextManager[Timer]],
    policy: MeasurementPolicy,
    *,
    window: int,
    max_total_s: float | None = None,
    clock: Callable[[], float] = time.perf_counter,
    on_round: Callable[[int, dict[K, int]], None] | None = None,
    on_progress: Callable[[SweepProgress], None] | None = None,
) -> WindowedResult:
    """Measure ``keys`` in order with at most ``window`` timers open at once; see the module docstring.

    ``open_timer(key, live)`` returns a context manager that yields the key's timer (``live``: how many are
    open now); it may raise ``WindowFull`` when ``live > 0``. A width's timer is warmed up when opened and
    closed as soon as the width stops. ``max_total_s``: the total budget of this call (opening, warm-up and
    timing), spread over the widths with ``us3l.profiler.window.width_share``. ``on_round(round, {key: n})`` gets
    the sample counts of the widths opened so far after each round.
    """
    from us3l.profiler.window import width_share

    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    if len(set(keys)) != len(keys):
        raise ValueError("keys must be distinct")
    t0 = clock()
    pending: deque[K] = deque(keys)
    live: dict[K, Timer] = {}
    stacks: dict[K, ExitStack] = {}
    samples: dict[K, list[float]] = {}
    elapsed: dict[K, float] = {}
    shares: dict[K, float | None] = {}
    reasons: dict[K, str] = {}
    results: dict[K, Measurement] = {}
    opening: list[float] = []  # seconds each width took to open and warm up
    max_live = 0

    def budget_left() -> float | None:
        return None if max_total_s is None else max_total_s - (clock() - t0)

    def reserved() -> float:
        return sum(max(0.0, (shares[k] or 0.0) - elapsed[k]) for k in live)

    def fill() -> None:
        nonlocal max_live
        while pending and len(live) < window:
            k = pending[0]
            start = clock()
            stack = ExitStack()
            try:
                timer = stack.enter_context(open_timer(k, len(live)))
            except WindowFull:
                stack.close()
                if not live:
                    raise RuntimeError(f"open_timer({k!r}) raised WindowFull with no timer open") from None
                return  # retried when a width closes
            except BaseException:
                stack.close()
                raise
            pending.popleft()
            live[k], stacks[k], samples[k], elapsed[k] = timer, stack, [], 0.0
            max_live = max(max_live, len(live))
            if policy.warmup:
                timer(policy.warmup)
            opening.append(clock() - start)
            left = budget_left()
            shares[k] = None
            if left is not None:
                overhead = sum(opening) / len(opening)
                shares[k] = width_share(left, reserved(), len(pending), overhead)

    def close(k: K, why: str) -> None:
        reasons[k] = why
        del live[k]
        stacks.pop(k).close()
        results[k] = Measurement(_summary(samples[k], why, policy), why, elapsed[k], shares[k])

    def progress() -> None:
        if on_progress is None:
            return
        done = [results[k] for k in results]
        left = budget_left()
        eta = None
        if done:
            per_timing = sum(m.elapsed_s for m in done) / len(done)
            per_open = sum(opening) / len(opening)
            cap = policy.max_seconds
            eta = sum(max(0.0, min(cap, _or(shares[k], cap), per_timing) - elapsed[k]) for k in live)
            eta += len(pending) * (per_open + min(cap, per_timing))
            if left is not None:
                eta = min(eta, max(0.0, left))
        stable = sum(1 for m in done if m.stats.stable)
        on_progress(SweepProgress(len(done), len(live), len(pending), stable, clock() - t0, eta, left))

    try:
        fill()
        rnd = 0
        while live:
            active = list(live)
            shift = rnd % len(active)
            for k in active[shift:] + active[:shift]:  # rotate who goes first each round
                need = min(policy.chunk, policy.max_repeats - len(samples[k]))
                t1 = clock()
                got = live[k](need)
                elapsed[k] += clock() - t1
                samples[k].extend(check_samples(got, need, k))
            spent = (budget_left() or 0.0) <= 0.0 if max_total_s is not None else False
            for k in active:
                why = stop_reason(samples[k], elapsed[k], policy, shares[k])
                if why is None and spent:
                    why = "budget"
                if why is not None:
                    close(k, why)
            if on_round is not None:
                on_round(rnd, {k: len(v) for k, v in samples.items()})
            progress()
            fill()
            rnd += 1
    finally:
        for k in list(stacks):
            stacks.pop(k).close()
    return WindowedResult({k: results[k] for k in keys}, max_live, clock() - t0)
