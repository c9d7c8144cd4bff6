"""Channel rounding and the width range of a slimmable network (method.md §1.2)."""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from us3l.errors import US3LError
from us3l.validate import number


def make_divisible(v: float, divisor: int = 8, min_value: int = 1) -> int:
    """Round ``v`` channels to a multiple of ``divisor`` like the reference implementation.

    ``new = max(min_value, int(v + divisor/2) // divisor * divisor)``; if that loses more than 10 % of ``v``,
    add one more ``divisor``. The result is never below ``min_value`` (1 by default). ``v`` must be a finite
    positive number, ``divisor`` a positive and ``min_value`` a non-negative integer (one ``US3LError`` line).
    """
    number(v, "v", positive=True)  # NaN and inf reached int(), -8 and 0 came back as 1 channel
    divisor = int(number(divisor, "divisor", positive=True, integer=True))  # 2.5 gave 65
    min_value = int(number(min_value, "min_value", nonnegative=True, integer=True))
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return max(1, int(new_v))


def check_width_value(w: object, lo: float, hi: float) -> float:
    """Return ``w`` as a float if it is a finite number in ``[lo, hi]``; raise ``ValueError`` otherwise."""
    if isinstance(w, bool) or not isinstance(w, numbers.Real):
        raise ValueError(f"width must be a number in [{lo:g}, {hi:g}], got {w!r}")
    f = float(w)
    if not math.isfinite(f) or f < lo - 1e-9 or f > hi + 1e-9:
        raise ValueError(f"width must be in [{lo:g}, {hi:g}], got {w!r}")
    return min(max(f, lo), hi)


@dataclass(frozen=True)
class WidthRange:
    """The widths a slimmable network supports and how channels are rounded at a width.

    ``min``/``max`` are ratios in (0, 1]; ``divisor`` is the channel granularity (8 in the reference).
    """

    min: float = 0.25
    max: float = 1.0
    divisor: int = 8

    def __post_init__(self) -> None:
        for name in ("min", "max"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v):
                raise ValueError(f"width range {name} must be a number in (0, 1], got {v!r}")
        if not (0.0 < self.min <= self.max <= 1.0):
            raise ValueError(f"width range must satisfy 0 < min <= max <= 1, got [{self.min}, {self.max}]")
        if isinstance(self.divisor, bool) or not isinstance(self.divisor, int) or self.divisor < 1:
            raise ValueError(f"channel divisor must be a positive integer, got {self.divisor!r}")

    def check(self, w: object) -> float:
        """Validate a width against this range (``ValueError`` names the valid range)."""
        return check_width_value(w, self.min, self.max)

    def channels(self, max_channels: int, w: float, ratio: int = 1) -> int:
        """Active channels of a layer with ``max_channels`` at width ``w``.

        ``ratio`` keeps channel counts a multiple of an expansion ratio (MobileNetV2: t × slimmed input).
        Never more than ``max_channels``. A channel count or ratio that is not a positive integer is a
        ``US3LError`` (-64 was returned as is); a width outside this range the ``ValueError`` of :meth:`check`.
        """
        full = int(number(max_channels, "max_channels", positive=True, integer=True))
        step = int(number(ratio, "ratio", positive=True, integer=True))
        w = self.check(w)
        if w >= 1.0:
            return full
        c = make_divisible(full * w / step, self.divisor) * step
        return min(full, c)

    def to_dict(self) -> dict[str, float | int]:
        return {"min": self.min, "max": self.max, "divisor": self.divisor}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> WidthRange:
        """Inverse of :meth:`to_dict`; a document without numbers for min and max, or with a divisor that is not
        a positive integer, is one ``US3LError`` line (None, {} and 2.5 were a TypeError, a KeyError, divisor 2)."""
        if not isinstance(d, Mapping):
            raise US3LError(f"width range must be a mapping of min, max and divisor, got {d!r:.60}")
        lo, hi = (number(d.get(key), f"width range {key}") for key in ("min", "max"))
        divisor = int(number(d.get("divisor", 8), "width range divisor", positive=True, integer=True))
        return cls(min=lo, max=hi, divisor=divisor)
