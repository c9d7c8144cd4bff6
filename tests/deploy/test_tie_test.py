"""The paired tie test of ``us3l select`` (``us3l.deploy.tie_test``) and how select uses it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from us3l.deploy.select import Budget, select
from us3l.deploy.tie_test import ALPHA, MIXED, OVERLAP, PAIRED, holm, mcnemar_p, paired_difference, ties_with_best
from us3l.eval.hits import encode_hits
from us3l.eval.intervals import wilson_interval

from .conftest import latency

N = 1000


def hits(right: int, *, first: int = 0) -> np.ndarray:
    """N images, ``right`` of them right, starting at image ``first`` (wrapping)."""
    out = np.zeros(N, dtype=bool)
    out[(first + np.arange(right)) % N] = True
    return out


def test_mcnemar_is_the_exact_binomial_test_of_the_discordant_images() -> None:
    best, other = hits(600), hits(590)  # other's hits are a subset: 10 images only best gets right
    assert mcnemar_p(best, other) == pytest.approx(2 * 0.5**10)
    assert mcnemar_p(best, best) == 1.0
    shifted = hits(600, first=5)  # 5 images each way: no evidence either way
    assert mcnemar_p(best, shifted) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="hit vectors of 1000 and 999 images are not paired"):
        mcnemar_p(best, best[:-1])


def test_the_paired_difference_interval_conditions_on_the_discordant_images() -> None:
    """The interval the collapse benchmark prints beside us3l − single: Clopper-Pearson over the discordant
    images, mapped to the difference; it excludes 0 exactly when the McNemar test rejects at 5 % here."""
    best, other = hits(600), hits(590)  # 10 discordant images, all won by best
    d = paired_difference(best, other)
    assert d.diff == pytest.approx(0.01) and d.discordant == 10 and d.p == pytest.approx(2 * 0.5**10)
    assert d.ci == pytest.approx(((2 * 0.025 ** (1 / 10) - 1) * 10 / N, 0.01))  # CP lower bound of 10/10
    flipped = paired_difference(other, best)
    assert flipped.diff == pytest.approx(-0.01) and flipped.ci == pytest.approx((-d.ci[1], -d.ci[0]))
    swapped = paired_difference(hits(600), hits(560, first=260))  # 260 against 220: a 4-point gap, p 0.075
    assert swapped.diff == pytest.approx(0.04) and swapped.ci[0] < 0 < swapped.ci[1] and swapped.p > 0.05
    assert paired_difference(best, best) == type(d)(0.0, (0.0, 0.0), 1.0, 0)
    with pytest.raises(ValueError, match=r"hit vectors of shapes \(1000,\) and \(999,\) are not paired"):
        paired_difference(best, best[:-1])


def test_holm_adjusts_step_down_and_stays_monotone() -> None:
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5]) == [0.5] and holm([]) == []
    assert holm([0.4, 0.001]) == pytest.approx([0.4, 0.002])


def test_a_gap_inside_two_overlapping_intervals_is_told_apart_by_the_paired_test() -> None:
    """60.0 % and 56.0 % on 1000 images: the Wilson intervals overlap, so the interval rule calls them tied; the
    narrower width gets no image right that the wider one misses (40 discordant images, all one way)."""
    best, other = hits(600), hits(560)
    ci_best, ci_other = wilson_interval(0.6, N), wilson_interval(0.56, N)
    assert ci_other[1] >= ci_best[0]  # the intervals overlap
    paired = ties_with_best(best, ci_best, [(other, ci_other)])
    assert paired.tied == [False] and paired.test == PAIRED and paired.p_holm[0] < 1e-9
    unpaired = ties_with_best(None, ci_best, [(other, ci_other)])
    assert unpaired.tied == [True] and unpaired.test == OVERLAP and unpaired.p_holm == [None]


def test_a_gap_the_images_do_not_support_stays_a_tie() -> None:
    """The same 4-point gap from images the two widths swap (260 right only for best, 220 only for other)."""
    best, other = hits(600), hits(560, first=260)
    assert int((best & ~other).sum()) == 260 and int((~best & other).sum()) == 220
    out = ties_with_best(best, wilson_interval(0.6, N), [(other, wilson_interval(0.56, N))])
    assert out.tied == [True] and out.p_holm[0] > 0.05


def test_comparisons_without_hits_fall_back_to_the_intervals_and_holm_counts_only_paired_ones() -> None:
    best = hits(600)
    others = [(hits(590), wilson_interval(0.59, N)), (None, wilson_interval(0.59, N)), (hits(500), None)]
    out = ties_with_best(best, wilson_interval(0.6, N), others)
    assert out.tests == [PAIRED, OVERLAP, PAIRED] and out.test == MIXED
    # 10 one-way images (p 0.002) and 100 (p ~1e-30): Holm multiplies the smaller by 2, the larger by 1
    assert out.tied == [False, True, False]
    assert out.p_holm[0] == pytest.approx(2 * 0.5**10) and out.p_holm[1] is None
    assert out.p_holm[2] == pytest.approx(2 * 2 * 0.5**100)


def write_accuracy(tmp_path, rows: dict[float, np.ndarray], with_hits: bool = True):
    from us3l.io import header

    doc = header("accuracy", 2)
    doc.update(
        checkpoint_sha256="0" * 64, model="tiny", data="synthetic", num_test=N, protocols={}, baselines=None,
        widths=[{"width": w, "knn_top1": h.sum() / N, "knn_top1_ci": wilson_interval(h.sum() / N, N),
                 **({"knn_top1_hits": encode_hits(h)} if with_hits else {})} for w, h in sorted(rows.items())],
    )
    path = tmp_path / ("accuracy.json" if with_hits else "accuracy-nohits.json")
    path.write_text(json.dumps(doc))
    return path


def test_select_keeps_the_more_accurate_width_when_the_images_say_so(write_profile, tmp_path) -> None:
    prof = write_profile([{"width": w, "latency": latency(0.8 * ms, ms, 1.2 * ms)}
                          for w, ms in ((0.25, 1.0), (0.5, 2.0), (1.0, 3.0))])
    rows = {0.25: hits(560), 0.5: hits(598, first=1), 1.0: hits(600)}  # 0.5 and 1.0 differ on 2 images
    sel = select([prof], Budget(latency_ms=5), write_accuracy(tmp_path, rows))
    d = sel.devices[0]
    assert d.chosen.width == 0.5 and d.decided_by == "tie->latency" and d.tied_widths == [0.5, 1.0]
    assert d.tie_test == PAIRED and [p["width"] for p in d.tie_p_values] == [0.5, 0.25]
    doc = sel.to_document()
    assert doc["devices"][0]["tie_test"] == PAIRED and "McNemar" in doc["tie_rule"]
    assert "hits" not in doc["devices"][0]["chosen"]  # the per-image hits stay in the accuracy file
    # the same accuracies without their hits: the intervals overlap, and 0.25 wins on speed
    d = select([prof], Budget(latency_ms=5), write_accuracy(tmp_path, rows, with_hits=False)).devices[0]
    assert d.chosen.width == 0.25 and d.tie_test == OVERLAP and d.tie_p_values == []
    assert "ties tested by overlapping 95% intervals where knn_top1 has no per-image hits (a file written before " \
           "them): more widths count as tied than a paired test would find" in d.notes


def test_pooled_precisions_are_compared_image_by_image_too(write_profile, tmp_path) -> None:
    """An INT8 artifact's own hits (us3l eval --artifact) pair with the FP32 rows: 20 images fewer, all lost by
    INT8, is a real drop even though the two intervals overlap; INT8 wins on speed only when the images agree."""
    from us3l.io import header

    def ms(scale: float) -> list[dict]:
        return [{"width": w, "latency": latency(scale * t, scale * t, scale * t)} for w, t in ((0.5, 2.0), (1.0, 4.0))]

    fp32, int8 = write_profile(ms(1.0)), write_profile(ms(0.5), precision="int8")

    def accuracy(int8_hits: np.ndarray) -> object:
        doc = header("accuracy", 2)
        rows = []
        for w, h in ((0.5, hits(500)), (1.0, hits(600))):
            row = {"width": w, "knn_top1": h.sum() / N, "knn_top1_ci": wilson_interval(h.sum() / N, N),
                   "knn_top1_hits": encode_hits(h)}
            if w == 1.0:
                a = int8_hits.sum() / N
                row["precisions"] = {"int8": {"onnx": {"knn_top1": a, "knn_top1_ci": wilson_interval(a, N),
                                                       "knn_top1_hits": encode_hits(int8_hits)}}}
            rows.append(row)
        doc.update(checkpoint_sha256=None, model="tiny", data="synthetic", num_test=N, protocols={}, widths=rows)
        path = tmp_path / "accuracy.json"
        path.write_text(json.dumps(doc))
        return path

    (d,) = select([fp32, int8], Budget(latency_ms=5), accuracy(hits(580))).devices
    assert (d.chosen.width, d.chosen.precision, d.decided_by, d.tie_test) == (1.0, "fp32", "accuracy", PAIRED)
    (d,) = select([fp32, int8], Budget(latency_ms=5), accuracy(hits(598))).devices  # 2 images: inside the noise
    assert (d.chosen.width, d.chosen.precision, d.decided_by) == (1.0, "int8", "tie->latency")
    assert d.tied_pairs == [(1.0, "fp32"), (1.0, "int8")] and "tied accuracy, faster" in d.reason


def _random_pairs(count: int, seed: int = 0):
    """``count`` random pairs of hit vectors over 1..200 images (any accuracies, any overlap)."""
    rng = np.random.default_rng(seed)
    for _ in range(count):
        n = int(rng.integers(1, 201))
        yield rng.random(n) < rng.random(), rng.random(n) < rng.random()


@pytest.mark.slow  # 2.0 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_mcnemar_and_the_paired_interval_against_the_textbook_over_random_pairs() -> None:
    """Exact McNemar: 2·min(P(X <= b), P(X >= b)) for X ~ Binomial(b + c, 1/2), capped at 1, and 1 with no
    discordant image; symmetric in its two arguments. The paired interval: the Clopper-Pearson bounds (beta
    quantiles) of b / (b + c) mapped to (2·share − 1)·(b + c) / n, holding the difference, excluding 0 exactly
    when p <= 5 %."""
    from scipy.stats import beta, binom

    for a, b in _random_pairs(120):
        n = a.size
        wins, losses = int((a & ~b).sum()), int((~a & b).sum())
        m = wins + losses
        p = mcnemar_p(a, b)
        want = 1.0 if m == 0 else min(1.0, 2 * min(binom.cdf(wins, m, 0.5), binom.sf(wins - 1, m, 0.5)))
        assert p == pytest.approx(want, rel=1e-9, abs=1e-300) and mcnemar_p(b, a) == pytest.approx(p, rel=1e-12)
        d = paired_difference(a, b)
        assert d.p == pytest.approx(p, rel=1e-12) and d.discordant == m
        assert d.diff == pytest.approx(a.mean() - b.mean(), abs=1e-12)
        if m == 0:
            assert d.ci == (0.0, 0.0)
            continue
        lo = 0.0 if wins == 0 else beta.ppf(0.025, wins, m - wins + 1)
        hi = 1.0 if wins == m else beta.ppf(0.975, wins + 1, m - wins)
        assert d.ci == pytest.approx(((2 * lo - 1) * m / n, (2 * hi - 1) * m / n), abs=1e-9)
        assert d.ci[0] <= d.diff <= d.ci[1]
        assert (d.ci[0] > 0 or d.ci[1] < 0) == (d.p <= 0.05)
    one = np.array([True])
    assert mcnemar_p(one, one) == 1.0 and mcnemar_p(one, ~one) == 1.0  # n = 1: one discordant image is no evidence


def test_holm_is_the_step_down_definition_over_random_families() -> None:
    """Adjusted p of the j-th smallest (0-based) = max over i <= j of min(1, (m - i)·p_(i)), in the input's order;
    rejecting adjusted p < alpha is Holm's step-down procedure (stop at the first p_(j) >= alpha / (m - j))."""
    rng = np.random.default_rng(1)
    for _ in range(500):
        m = int(rng.integers(1, 9))
        ps = (rng.random(m) ** 4).tolist()
        if m > 1 and rng.random() < 0.3:
            ps[-1] = ps[0]  # equal p-values
        order = sorted(range(m), key=lambda i: ps[i])
        want, running = [0.0] * m, 0.0
        for j, i in enumerate(order):
            running = max(running, min(1.0, (m - j) * ps[i]))
            want[i] = running
        got = holm(ps)
        assert got == pytest.approx(want, rel=1e-12)
        assert all(ps[i] <= got[i] <= 1.0 for i in range(m))
        assert [got[i] for i in order] == sorted(got)  # monotone in the raw p-values
        rejected = set()
        for j, i in enumerate(order):
            if ps[i] >= ALPHA / (m - j):
                break
            rejected.add(i)
        assert {i for i in range(m) if got[i] < ALPHA} == rejected


def test_the_tie_rule_ties_what_the_images_do_not_show_less_accurate() -> None:
    """Identical widths, and widths of equal accuracy that swap images, are tied (p 1); a width is untied only
    when the Holm-adjusted McNemar p of the family (every paired comparison, not the interval ones) is < 5 %."""
    best = hits(600)
    ci = wilson_interval(0.6, N)
    same = ties_with_best(best, ci, [(best.copy(), ci), (hits(600, first=300), ci)])
    assert same.tied == [True, True] and same.p_holm == [1.0, 1.0]
    # 8 one-way images: p 2/2^8 = 0.0078; alone it is shown worse, with 7 more comparisons Holm keeps it tied
    lone = ties_with_best(best, ci, [(hits(592), ci)])
    assert lone.tied == [False] and lone.p_holm[0] == pytest.approx(2 * 0.5**8)
    family = ties_with_best(best, ci, [(hits(592), ci)] + [(best.copy(), ci)] * 7 + [(None, ci)] * 3)
    assert family.tied == [True] * 11 and family.p_holm[0] == pytest.approx(8 * 2 * 0.5**8)
    assert ties_with_best(best, ci, []).tied == [] and ties_with_best(best, ci, []).test is None
