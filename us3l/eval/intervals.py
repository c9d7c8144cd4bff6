"""95 % Wilson score interval of an accuracy measured on ``n`` test images (scipy's ``binomtest``)."""

from __future__ import annotations

import numbers

from us3l.errors import US3LError

CONFIDENCE = 0.95


def wilson_interval(accuracy: float, n: int, confidence: float = CONFIDENCE) -> list[float]:
    """``[lo, hi]`` of the Wilson score interval (no continuity correction) for ``accuracy`` = hits / ``n``.

    The hit count is ``round(accuracy * n)`` (accuracies here are exact fractions of ``n``). Unlike the normal
    approximation it stays inside [0, 1] and is not empty at 0 % or 100 %.
    """
    from scipy.stats import binomtest

    # numbers.Integral: a count from numpy (np.int64) is a count too; a bool is not
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
        raise US3LError(f"an accuracy interval needs at least one test image, got n={n!r}")
    if isinstance(accuracy, bool) or not isinstance(accuracy, numbers.Real) or not 0.0 <= accuracy <= 1.0:
        raise US3LError(f"accuracy must be a fraction in [0, 1], got {accuracy!r}")
    n = int(n)
    hits = round(float(accuracy) * n)
    ci = binomtest(hits, n).proportion_ci(confidence_level=confidence, method="wilson")
    return [max(0.0, float(ci.low)), min(1.0, float(ci.high))]
