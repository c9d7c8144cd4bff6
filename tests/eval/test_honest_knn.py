"""Honest kNN: k capped by the smallest class, a seeded stratified bank, Wilson intervals."""

from __future__ import annotations

import math

import pytest
import torch

from us3l.data.datasets import ImageDataset
from us3l.errors import US3LError
from us3l.eval.intervals import wilson_interval
from us3l.train.knn import bank_dataset, effective_k, knn_accuracy, stratified_indices


def test_k_capped_by_smallest_class() -> None:
    labels = torch.tensor([0] * 9 + [1] * 5 + [2] * 30)
    assert effective_k(200, labels) == 2  # smallest class 5 -> 5 // 2
    assert effective_k(1, labels) == 1
    assert effective_k(200, torch.tensor([0, 1, 1, 1])) == 1  # a single-image class still gives k = 1
    assert effective_k(3, torch.tensor([4] * 10 + [7] * 12)) == 3  # absent classes 0..3, 5, 6 do not count
    with pytest.raises(US3LError):
        effective_k(0, labels)


def test_capped_k_is_what_the_small_class_needs() -> None:
    """Class 1 has 3 bank images, class 0 has 20 far-ish away: with k=20 every test image of class 1 is
    out-voted; with the capped k=1 it is classified right."""
    g = torch.Generator().manual_seed(0)
    c0 = torch.tensor([1.0, 0.0]) + 0.6 * torch.randn(20, 2, generator=g)
    c1 = torch.tensor([0.0, 1.0]) + 0.05 * torch.randn(3, 2, generator=g)
    bank = torch.cat([c0, c1])
    y = torch.tensor([0] * 20 + [1] * 3)
    test = torch.tensor([[0.02, 1.0], [-0.02, 1.0]])
    test_y = torch.tensor([1, 1])
    (wide,) = knn_accuracy(bank, y, test, test_y, 2, k=20, temperature=1.0)
    (capped,) = knn_accuracy(bank, y, test, test_y, 2, k=effective_k(20, y), temperature=1.0)
    assert wide == 0.0 and capped == 1.0


def test_stratified_bank_proportions_and_seed() -> None:
    labels = torch.tensor([0] * 500 + [1] * 300 + [2] * 200)  # class-sorted, like folder data
    idx = stratified_indices(labels, 100, seed=0)
    assert idx.numel() == 100 and torch.equal(idx, idx.sort().values) and idx.unique().numel() == 100
    assert torch.bincount(labels[idx]).tolist() == [50, 30, 20]  # the same 10 % of every class
    assert torch.equal(idx, stratified_indices(labels, 100, seed=0))  # seeded: reproducible
    assert not torch.equal(idx, stratified_indices(labels, 100, seed=1))
    assert not torch.equal(idx, torch.arange(100))  # never the first N rows
    odd = stratified_indices(labels, 7, seed=0)  # rounding: largest remainder, total exact
    assert odd.numel() == 7 and torch.bincount(labels[odd], minlength=3).tolist() == [4, 2, 1]
    tiny = stratified_indices(torch.tensor([0] * 98 + [1, 2]), 3, seed=0)
    assert sorted(torch.tensor([0] * 98 + [1, 2])[tiny].tolist()) == [0, 1, 2]  # every class keeps one
    assert torch.equal(stratified_indices(labels, 5000), torch.arange(1000))  # not capped


def test_bank_dataset_subsets_in_memory_data() -> None:
    labels = torch.tensor([0] * 40 + [1] * 20)
    images = torch.arange(60, dtype=torch.uint8).view(60, 1, 1, 1).expand(60, 3, 2, 2).contiguous()
    ds = ImageDataset(images=images, labels=labels, classes=["a", "b"], name="toy", mean=(0.5,) * 3, std=(0.25,) * 3)
    sub = bank_dataset(ds, 15, seed=3)
    assert len(sub) == 15 and torch.bincount(sub.labels).tolist() == [10, 5]
    assert torch.equal(sub.images[:, 0, 0, 0].long(), stratified_indices(labels, 15, seed=3))
    assert bank_dataset(ds, None) is ds and bank_dataset(ds, 60) is ds


def _wilson_closed_form(hits: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    p = hits / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def test_wilson_against_hand_computed_values() -> None:
    # 50/100: centre 0.5, half-width 1.96*sqrt(0.0025 + 0.000096)/1.0384 = 0.09617
    lo, hi = wilson_interval(0.5, 100)
    assert lo == pytest.approx(0.403832, abs=1e-6) and hi == pytest.approx(0.596168, abs=1e-6)
    # 0/10 and 10/10: not empty, inside [0, 1]: upper bound z^2/(n+z^2) = 3.8415/13.8415
    assert wilson_interval(0.0, 10) == pytest.approx([0.0, 0.277533], abs=1e-6)
    assert wilson_interval(1.0, 10) == pytest.approx([0.722467, 1.0], abs=1e-6)
    # 359 test images at 75 % (the case): about +-4.5 points
    lo, hi = wilson_interval(269 / 359, 359)
    assert (lo, hi) == pytest.approx(_wilson_closed_form(269, 359), abs=1e-9)
    assert 0.04 < (hi - lo) / 2 < 0.05
    with pytest.raises(US3LError):
        wilson_interval(0.5, 0)
    with pytest.raises(US3LError):
        wilson_interval(1.5, 10)


@pytest.mark.slow  # 0.9 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_wilson_is_the_closed_form_for_every_count_small_and_large() -> None:
    """Every hit count of n = 1..40 (no hits and all hits included) and random counts up to 10^5 images: the
    closed form clipped to [0, 1], containing the estimate; another confidence level moves both ends."""
    import numpy as np

    cases = [(k, n) for n in range(1, 41) for k in range(n + 1)]
    rng = np.random.default_rng(0)
    cases += [(int(rng.integers(0, n + 1)), n) for n in rng.integers(41, 100_000, size=200).tolist()]
    for k, n in cases:
        lo, hi = wilson_interval(k / n, n)
        ref_lo, ref_hi = _wilson_closed_form(k, n)
        assert (lo, hi) == pytest.approx((max(0.0, ref_lo), min(1.0, ref_hi)), abs=1e-9)
        assert 0.0 <= lo <= k / n <= hi <= 1.0
        assert (lo == 0.0) == (k == 0) and (hi == 1.0) == (k == n)
    lo90, hi90 = wilson_interval(0.3, 50, confidence=0.90)
    assert (lo90, hi90) == pytest.approx(_wilson_closed_form(15, 50, z=1.6448536269514722), abs=1e-9)


def test_wilson_takes_any_integer_count_and_refuses_other_types() -> None:
    # a numpy count (np.int64) was refused as "needs at least one test image, got n=np.int64(100)", n=True was
    # taken as one image, and an accuracy given as text raised a bare TypeError
    import numpy as np

    assert wilson_interval(0.5, np.int64(100)) == wilson_interval(0.5, 100)
    assert wilson_interval(np.float32(0.5), 100) == pytest.approx(wilson_interval(0.5, 100))
    for n in (True, 10.0, "10"):
        with pytest.raises(US3LError, match="needs at least one test image"):
            wilson_interval(0.5, n)  # type: ignore[arg-type]
    for acc in ("0.5", None, True):
        with pytest.raises(US3LError, match="must be a fraction in"):
            wilson_interval(acc, 10)  # type: ignore[arg-type]


def test_requested_k_defaults_to_the_runs_training_knn_k():
    from us3l.eval.runner import DEFAULT_KNN_K, KnnSettings

    assert KnnSettings().requested_k({"config": {"knn_k": 20}}) == 20
    assert KnnSettings(k=7).requested_k({"config": {"knn_k": 20}}) == 7
    assert KnnSettings().requested_k({}) == DEFAULT_KNN_K
    assert KnnSettings().requested_k({"config": {"knn_k": True}}) == DEFAULT_KNN_K
    assert KnnSettings().requested_k({"config": "garbage"}) == DEFAULT_KNN_K


@pytest.mark.parametrize("t", [0.0, -0.1, float("inf"), float("nan")])
def test_knn_temperature_must_be_finite_and_positive(t: float) -> None:
    """T = inf turns the weighted vote into a plain majority vote without saying so; NaN poisons every weight."""
    from us3l.eval.runner import KnnSettings

    with pytest.raises(US3LError, match=r"^kNN temperature must be a finite number > 0, got "):
        KnnSettings(temperature=t)


@pytest.mark.parametrize("lr", [0.0, float("inf"), float("nan")])
def test_linear_probe_lr_must_be_finite_and_positive(lr: float) -> None:
    from us3l.eval.linear import LinearProbeSettings

    with pytest.raises(US3LError, match=r"^linear-probe lr must be a finite number > 0, got "):
        LinearProbeSettings(lr=lr)


def test_accuracies_are_exact_fractions_of_the_test_set() -> None:
    from us3l.train.knn import topk_accuracy

    labels = torch.arange(1000) % 3
    scores = torch.nn.functional.one_hot(labels, 3).float()
    scores[:634] = torch.tensor([0.0, 0.0, 0.0]).index_fill(0, torch.tensor(0), 1.0)  # first 634 all say class 0
    hits = int((labels[:634] == 0).sum()) + 366  # the last 366 are all right
    (top1,) = topk_accuracy(scores, labels, (1,))
    assert top1 == hits / 1000 and repr(top1) == repr(hits / 1000)  # an exact fraction, not float32 rounding
    assert topk_accuracy(scores, labels, (5,)) == (1.0,)  # k clipped to the 3 classes
