"""95 % Wilson score interval of an accuracy measured on ``n`` test images (scipy's ``binomtest``)."""

from __future__ import annotations

from us3l.errors import US3LError

CONFIDENCE = 0.95


def wilson_interval(accuracy: float, n: int, confidence: float = CONFIDENCE) -> list[float]:
    """``[lo, hi]`` of the Wilson score interval (no continuity correction) for ``accuracy`` = hits / ``n``.

    The hit count is ``round(accuracy * n)`` (accuracies here are exact fractions of ``n``). Unlike the normal
    approximation it stays inside [0, 1] and is not empty at 0 % or 100 %.
    """
    from scipy.stats import binomtest

    if not isinstance(n, int) or n < 1:
        raise US3LError(f"an accuracy interval needs at least one test image, got n={n!r}")
    if not 0.0 <= accuracy <= 1.0:
        raise US3LError(f"accuracy must be a fraction in [0, 1], got {accuracy!r}")
    hits = round(accuracy * n)
    ci = binomtest(hits, n).proportion_ci(confidence_level=confidence, method="wilson")
    return [max(0.0, float(ci.low)), min(1.0, float(ci.high))]
