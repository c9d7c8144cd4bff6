"""The interleaved measurement loop with its stopping rule.

Every width gets a *timer*: a callable ``timer(k) -> list of k latencies in seconds`` (a local runtime, a remote
runner over SSH, or a ``trtexec`` run). The loop warms every timer up, then runs rounds; in each round every
width that has not stopped yet takes ``chunk`` samples, in a rotating order, so that slow drift of the machine
(thermal, frequency, background load) spreads evenly over the widths instead of landing on the last ones.
A width stops when (a) it has at least ``min_repeats`` samples and the 95 % interval of its median is within
``target_rel_ci`` of the median, or (b) it reached ``max_repeats`` samples, or (c) its accumulated timing time
reached ``max_seconds``.
"""

from __future__ import annotations

import math
import numbers
import time
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, TypeVar

from profiler.stats import DEFAULT_TARGET_REL_CI, LatencyStats, rel_ci_halfwidth, summarize
from us3l.errors import US3LError

K = TypeVar("K", bound=Hashable)
Timer = Callable[[int], Sequence[float]]


@dataclass(frozen=True)
class MeasurementPolicy:
    """How long to measure one width.

    ``max_seconds`` caps the accumulated timing time *per width*; ``chunk`` is the number of consecutive
    samples a width takes per round.
    """

    warmup: int = 10
    min_repeats: int = 30
    max_repeats: int = 3000
    target_rel_ci: float = DEFAULT_TARGET_REL_CI
    max_seconds: float = 20.0
    chunk: int = 10

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():  # NaN passes every comparison below: refuse it first
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, got {value!r}")
        for name in ("warmup", "min_repeats", "max_repeats", "chunk"):
            if not float(getattr(self, name)).is_integer():
                raise ValueError(f"{name} must be a whole number, got {getattr(self, name)!r}")
        if self.warmup < 0:
            raise ValueError(f"warmup must be >= 0, got {self.warmup}")
        if self.min_repeats < 2:
            raise ValueError(f"min_repeats must be >= 2, got {self.min_repeats}")
        if self.max_repeats < self.min_repeats:
            raise ValueError(f"max_repeats ({self.max_repeats}) < min_repeats ({self.min_repeats})")
        if not 0.0 < self.target_rel_ci < 1.0:
            raise ValueError(f"target_rel_ci must be in (0, 1), got {self.target_rel_ci}")
        if self.max_seconds <= 0:
            raise ValueError(f"max_seconds must be > 0, got {self.max_seconds}")
        if self.chunk < 1:
            raise ValueError(f"chunk must be >= 1, got {self.chunk}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def replace(self, **changes: Any) -> MeasurementPolicy:
        """A copy with the non-None ``changes`` applied."""
        d = self.to_dict()
        d.update({k: v for k, v in changes.items() if v is not None})
        return MeasurementPolicy(**d)


@dataclass(frozen=True)
class Measurement:
    """One width's outcome: its statistics and why it stopped (``target``, ``max_repeats``, ``time_cap``)."""

    stats: LatencyStats
    stop_reason: str
    elapsed_s: float


def stop_reason(samples_s: Sequence[float], elapsed_s: float, policy: MeasurementPolicy) -> str | None:
    """The stopping rule: the reason to stop now, or None to keep measuring."""
    n = len(samples_s)
    if n >= policy.min_repeats and rel_ci_halfwidth(samples_s) <= policy.target_rel_ci:
        return "target"
    if n >= policy.max_repeats:
        return "max_repeats"
    if elapsed_s >= policy.max_seconds:
        return "time_cap"
    return None


def check_samples(got: Sequence[float], need: int, key: Hashable) -> list[float]:
    """The ``need`` timings a timer returned, each a finite positive number of seconds; ``US3LError`` if not.

    A runtime (or a remote runner) that answers NaN, a negative or zero time, or the wrong count is refused:
    its statistics would be meaningless and a budget solver could pick the width for it.
    """
    values = list(got)
    if len(values) != need:
        raise US3LError(f"timer of width {key} returned {len(values)} samples, asked for {need}")
    for j, v in enumerate(values):
        ok = isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v) and v > 0
        if not ok:
            raise US3LError(f"timer of width {key}: sample {j} must be a finite positive time, got {v!r}")
    return [float(v) for v in values]


def measure_interleaved(
    timers: Mapping[K, Timer],
    policy: MeasurementPolicy,
    clock: Callable[[], float] = time.perf_counter,
    on_round: Callable[[int, dict[K, int]], None] | None = None,
) -> dict[K, Measurement]:
    """Measure every timer until its stopping rule fires; see the module docstring.

    ``on_round(round_index, {key: n_samples})`` is called after each round (progress display).
    """
    keys = list(timers)
    samples: dict[K, list[float]] = {k: [] for k in keys}
    elapsed: dict[K, float] = dict.fromkeys(keys, 0.0)
    reasons: dict[K, str] = {}
    if policy.warmup:
        for k in keys:
            timers[k](policy.warmup)
    rnd = 0
    while len(reasons) < len(keys):
        active = [k for k in keys if k not in reasons]
        shift = rnd % len(active)
        for k in active[shift:] + active[:shift]:  # rotate who goes first each round
            need = min(policy.chunk, policy.max_repeats - len(samples[k]))
            t0 = clock()
            got = timers[k](need)
            elapsed[k] += clock() - t0
            samples[k].extend(check_samples(got, need, k))
        for k in active:
            why = stop_reason(samples[k], elapsed[k], policy)
            if why is not None:
                reasons[k] = why
        if on_round is not None:
            on_round(rnd, {k: len(v) for k, v in samples.items()})
        rnd += 1
    return {
        k: Measurement(
            stats=summarize([s * 1e3 for s in samples[k]], policy.target_rel_ci),
            stop_reason=reasons[k],
            elapsed_s=elapsed[k],
        )
        for k in keys
    }
