"""kNN (reused from us3l.train.knn) on a hand-made set, and the linear probe."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from us3l.errors import US3LError
from us3l.eval import (
    CalibrationSettings,
    KnnSettings,
    LinearProbeSettings,
    embedding_std,
    topk_accuracy,
    train_linear_probe,
)
from us3l.train.knn import knn_accuracy, knn_predict


def test_knn_hand_computed() -> None:
    # train bank on the unit circle (features are L2-normalised inside, so scale does not matter)
    train = torch.tensor([[1.0, 0.0], [0.0, 2.0], [0.0, -1.0], [3.0, 3.0]])
    labels = torch.tensor([0, 1, 1, 0])
    test = torch.tensor([[1.0, 1.0]])
    # cosines: a=1/sqrt2, b=1/sqrt2, c=-1/sqrt2, d=1; k=3 keeps d, a, b; T=0.5
    scores = knn_predict(train, labels, test, num_classes=2, k=3, temperature=0.5)
    e = math.exp
    s = 1 / math.sqrt(2)
    expected = torch.tensor([[e(1 / 0.5) + e(s / 0.5), e(s / 0.5)]])
    torch.testing.assert_close(scores, expected)
    # k=4 adds c's vote for class 1
    scores4 = knn_predict(train, labels, test, num_classes=2, k=4, temperature=0.5)
    torch.testing.assert_close(scores4, expected + torch.tensor([[0.0, e(-s / 0.5)]]))


def test_knn_accuracy_top1_top5() -> None:
    train = torch.eye(3).repeat(2, 1)
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    test = torch.tensor([[1.0, 0.1, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.2]])
    top1, top5 = knn_accuracy(train, labels, test, torch.tensor([0, 1, 1]), 3, k=2, temperature=0.1,
                              topk=(1, 5))
    assert top1 == pytest.approx(2 / 3)
    assert top5 == 1.0  # k clipped to the number of classes


def test_topk_accuracy() -> None:
    logits = torch.tensor([[0.1, 0.9, 0.0], [0.8, 0.1, 0.3]])
    assert topk_accuracy(logits, torch.tensor([1, 2]), (1, 2)) == (0.5, 1.0)


def test_linear_probe_separable() -> None:
    g = torch.Generator().manual_seed(0)
    centers = torch.randn(4, 16, generator=g) * 3
    y = torch.arange(200) % 4
    x = centers[y] + 0.3 * torch.randn(200, 16, generator=g)
    s = LinearProbeSettings(epochs=20, lr=0.5, batch_size=32)
    top1, top5, hits = train_linear_probe(x[:160], y[:160], x[160:], y[160:], 4, s)
    assert int(hits.sum()) == round(top1 * 40)  # the probe's per-image top-1 hits
    assert top1 == 1.0 and top5 == 1.0
    # deterministic given the seed
    assert train_linear_probe(x[:160], y[:160], x[160:], y[160:], 4, s)[:2] == (top1, top5)


def test_linear_settings_validation() -> None:
    with pytest.raises(US3LError):
        LinearProbeSettings(epochs=0)
    assert LinearProbeSettings(epochs=10).milestone_epochs() == [6, 8]


@pytest.mark.parametrize(
    ("make", "match"),
    [
        # epochs=2.5 failed with "'float' object cannot be interpreted as an integer" after the features were
        # computed; k=2.5 and k=True were truncated without a word (k_requested 2.5 in accuracy.json)
        (lambda: LinearProbeSettings(epochs=2.5), "^linear-probe epochs must be an integer, got 2.5$"),
        (lambda: LinearProbeSettings(batch_size="512"), "^linear-probe batch size must be an integer, got '512'$"),
        (lambda: LinearProbeSettings(lr="30"), "^linear-probe lr must be a number, got '30'$"),
        (lambda: KnnSettings(k=2.5), "^kNN k must be an integer or None, got 2.5$"),
        (lambda: KnnSettings(k=True), "^kNN k must be an integer or None, got True$"),
        (lambda: KnnSettings(temperature="0.1"), "^kNN temperature must be a number, got '0.1'$"),
        (lambda: KnnSettings(max_train=1e4), "^kNN max_train must be an integer or None, got 10000.0$"),
        (lambda: CalibrationSettings(batches=2.0), "^the number of calibration batches must be an integer, got 2.0$"),
    ],
)
def test_settings_of_the_wrong_type_are_refused_when_made(make: object, match: str) -> None:
    with pytest.raises(US3LError, match=match):
        make()  # type: ignore[operator]
    assert KnnSettings(k=np.int64(5)).requested_k({}) == 5  # a numpy count is a count


def test_a_diverged_linear_probe_gets_no_accuracy() -> None:
    # at lr 1e38 the probe's outputs were inf/NaN and topk over them "scored" 25 % on four classes (chance)
    g = torch.Generator().manual_seed(0)
    y = torch.arange(200) % 4
    x = torch.randn(200, 16, generator=g)
    x[:, :4] += torch.nn.functional.one_hot(y, 4) * 3
    assert train_linear_probe(x, y, x, y, 4, LinearProbeSettings(epochs=5, lr=1.0))[0] > 0.9
    with pytest.raises(US3LError, match=r"^the linear probe diverged: its outputs are NaN or inf after 5 epoch\(s\) "
                                        r"at lr 1e\+38; lower --linear-lr$"):
        train_linear_probe(x, y, x, y, 4, LinearProbeSettings(epochs=5, lr=1e38))


def test_embedding_std_detects_collapse() -> None:
    g = torch.Generator().manual_seed(0)
    spread = torch.randn(500, 64, generator=g)
    assert 0.8 < embedding_std(spread) < 1.2
    collapsed = torch.ones(500, 64) + 1e-4 * torch.randn(500, 64, generator=g)
    assert embedding_std(collapsed) < 0.01


@pytest.mark.parametrize("temperature", [0.011, 0.005, 1e-4])
def test_knn_at_a_small_temperature_is_the_nearest_neighbour_vote(temperature: float) -> None:
    # exp(cos / T) overflowed float32 below T = 0.0113: inf votes, NaN scores, and `us3l eval --knn-t 0.011` reported
    # exactly chance (10.0 %, top-5 50.0 %) for a network that scores 33 % at T = 0.012
    g = torch.Generator().manual_seed(0)
    train = torch.randn(60, 8, generator=g)
    test = train[:40] + 0.2 * torch.randn(40, 8, generator=g)  # close to a train feature: cos above 0.9
    labels, test_labels = torch.arange(60) % 3, torch.arange(40) % 3
    scores = knn_predict(train, labels, test, num_classes=3, k=10, temperature=temperature)
    assert torch.isfinite(scores).all()
    sim = torch.nn.functional.normalize(test, dim=1) @ torch.nn.functional.normalize(train, dim=1).t()
    nearest = labels[sim.argmax(dim=1)]
    assert torch.equal(scores.argmax(dim=1), nearest)  # the sharpest vote: the nearest neighbour decides
    (top1,) = knn_accuracy(train, labels, test, test_labels, 3, k=10, temperature=temperature)
    assert top1 == pytest.approx((nearest == test_labels).float().mean().item())
