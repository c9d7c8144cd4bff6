"""Which widths are tied with the most accurate one: a paired test where the per-image hits allow it.

Two widths evaluated on the same test images are compared image by image: ``b`` images only the most accurate
width gets right, ``c`` only the other. Under equal accuracy each such discordant image is a fair coin, so the
exact McNemar test is the two-sided binomial test of ``b`` in ``b + c`` at 1/2 (``scipy.stats.binomtest``). The
comparisons against the best width are one family: Holm's step-down adjustment keeps the chance of calling *any*
truly equal width worse at 5 %, so a width counts as worse only when the data clearly say so, as before, but the
noise is now that of the difference, not of two separate intervals.

A comparison where either side has no hits (an accuracy file written before ``knn_top1_hits`` /
``linear_top1_hits``) falls back to the interval rule: tied when the two 95 % intervals overlap.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: family-wise error rate of the paired comparisons (Holm)
ALPHA = 0.05
PAIRED = "paired"  # every comparison had per-image hits: exact McNemar, Holm-adjusted
OVERLAP = "overlap"  # none had: 95 % intervals overlap
MIXED = "paired+overlap"  # some of each


def mcnemar_p(best: np.ndarray, other: np.ndarray) -> float:
    """Two-sided exact McNemar p-value of two hit vectors over the same images (1.0 when no image differs)."""
    if best.shape != other.shape:
        raise ValueError(f"hit vectors of {best.shape[0]} and {other.shape[0]} images are not paired")
    return paired_difference(best, other).p if best.size else 1.0


@dataclass(frozen=True)
class PairedDifference:
    """Accuracy of ``a`` minus accuracy of ``b`` over the same images, with an exact conditional interval."""

    diff: float  # (a's hits - b's hits) / images
    ci: tuple[float, float]  # 95 % (``level``) interval of ``diff``
    p: float  # two-sided exact McNemar p-value
    discordant: int  # images exactly one of the two gets right


def paired_difference(a: np.ndarray, b: np.ndarray, level: float = 0.95) -> PairedDifference:
    """``a``'s accuracy minus ``b``'s over the same images: the difference, the exact McNemar p-value and an
    interval that, like the test, conditions on the ``m`` discordant images: the Clopper-Pearson interval of the
    share ``a`` wins among them, mapped to ``(2·share - 1)·m / n`` (zero width when no image differs)."""
    from scipy.stats import binomtest

    if a.shape != b.shape or a.ndim != 1 or not a.size:
        raise ValueError(f"hit vectors of shapes {a.shape} and {b.shape} are not paired over the same images")
    n = int(a.size)
    wins = int(np.count_nonzero(a & ~b))
    m = wins + int(np.count_nonzero(~a & b))
    diff = (2 * wins - m) / n
    if m == 0:
        return PairedDifference(0.0, (0.0, 0.0), 1.0, 0)
    test = binomtest(wins, m, 0.5)
    share = test.proportion_ci(confidence_level=level, method="exact")
    ci = ((2 * share.low - 1) * m / n, (2 * share.high - 1) * m / n)
    return PairedDifference(diff, ci, float(test.pvalue), m)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-adjusted p-values, in the input's order (a hypothesis is rejected at level a when its value is < a)."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    m, running, out = len(p_values), 0.0, [1.0] * len(p_values)
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        out[i] = running
    return out


@dataclass(frozen=True)
class TieOutcome:
    """Which of the ``others`` are tied with the best, how each was tested, and the paired p-values."""

    tied: list[bool]  # per other, in the order given
    tests: list[str]  # per other: PAIRED or OVERLAP
    p_holm: list[float | None]  # per other: its Holm-adjusted McNemar p-value (None for an overlap comparison)

    @property
    def test(self) -> str | None:
        """PAIRED, OVERLAP or MIXED over the comparisons made; None when there were none."""
        kinds = set(self.tests)
        if not kinds:
            return None
        return kinds.pop() if len(kinds) == 1 else MIXED


def ties_with_best(
    best_hits: np.ndarray | None,
    best_ci: tuple[float, float],
    others: Sequence[tuple[np.ndarray | None, tuple[float, float] | None]],
    alpha: float = ALPHA,
) -> TieOutcome:
    """For each of ``others`` (its hits and 95 % interval), whether it is tied with the best (``best_hits``,
    ``best_ci``): paired where both have hits of the same length, else by interval overlap (no interval: not
    tied)."""
    tests: list[str] = []
    raw: list[float | None] = []
    overlap: list[bool] = []
    lo, hi = best_ci
    for hits, ci in others:
        paired = best_hits is not None and hits is not None and hits.shape == best_hits.shape
        tests.append(PAIRED if paired else OVERLAP)
        raw.append(mcnemar_p(best_hits, hits) if paired else None)  # type: ignore[arg-type]
        overlap.append(ci is not None and ci[1] >= lo and ci[0] <= hi)
    paired_idx = [i for i, p in enumerate(raw) if p is not None]
    adjusted = holm([raw[i] for i in paired_idx])  # type: ignore[misc]
    p_holm: list[float | None] = [None] * len(others)
    for i, p in zip(paired_idx, adjusted, strict=True):
        p_holm[i] = p
    tied = [(p_holm[i] >= alpha) if tests[i] == PAIRED else overlap[i] for i in range(len(others))]  # type: ignore[operator]
    return TieOutcome(tied, tests, p_holm)
