"""Weighted k-nearest-neighbour classification on L2-normalised features (Wu et al. 2018, as in InstDisc/
MoCo/DINO monitors): each of the k most similar train features votes for its label with ``exp(cos/T)``.

Two rules keep the number honest on small or class-sorted data (shared by ``us3l eval`` and the training
monitor):

- **k is capped by the data** (:func:`effective_k`): ``k = min(k_requested, max(1, n_min // 2))`` where
  ``n_min`` is the smallest class's count in the feature bank. A vote over more neighbours than the smallest
  class has members is dominated by the other classes (k=200 over classes of ~140 images is mostly noise).
- **a capped bank is a seeded stratified subset** (:func:`stratified_indices`): the same fraction of every
  class, drawn with a seeded numpy RNG, never the first N rows (the first N of class-sorted folder data
  are a handful of classes).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from us3l.errors import US3LError

#: Seed of the stratified feature-bank subset when the bank is capped (``us3l eval`` and the monitor).
BANK_SEED = 0


def effective_k(k_requested: int, bank_labels: Tensor) -> int:
    """``min(k_requested, max(1, n_min // 2))``; ``n_min`` = the smallest count of a class present in the bank.

    Classes absent from the bank do not count (they cannot be voted for anyway).
    """
    if k_requested < 1:
        raise US3LError(f"kNN k must be >= 1, got {k_requested}")
    counts = torch.bincount(bank_labels.to(torch.int64).flatten())
    counts = counts[counts > 0]
    if counts.numel() == 0:
        raise US3LError("the kNN feature bank is empty")
    return int(min(int(k_requested), max(1, int(counts.min()) // 2)))


def stratified_indices(labels: Tensor, max_n: int, seed: int = BANK_SEED) -> Tensor:
    """Sorted indices of a seeded stratified subset of at most ``max_n`` rows (all rows if there are fewer).

    Each class keeps ``count_c * max_n / N`` rows, rounded by largest remainder so that the total is exactly
    ``max_n``; every class present keeps at least one row when ``max_n`` allows. Rows within a class are
    drawn without replacement by ``numpy.random.default_rng(seed)``.
    """
    if max_n < 1:
        raise US3LError(f"the kNN bank cap must be >= 1, got {max_n}")
    y = labels.to(torch.int64).flatten().cpu().numpy()
    n = y.shape[0]
    if n <= max_n:
        return torch.arange(n)
    classes, counts = np.unique(y, return_counts=True)
    exact = counts * (max_n / n)
    quota = np.floor(exact).astype(np.int64)
    order = np.lexsort((classes, -(exact - quota)))  # largest remainder first, then class id
    quota[order[: max_n - int(quota.sum())]] += 1
    if max_n >= classes.size:
        while (quota == 0).any():  # a tiny class rounded to zero: take one row from the largest quota
            quota[int(np.argmax(quota))] -= 1
            quota[int(np.argmax(quota == 0))] = 1
    rng = np.random.default_rng(seed)
    picked = [
        rng.choice(np.flatnonzero(y == c), size=int(q), replace=False) for c, q in zip(classes, quota, strict=True)
    ]
    return torch.from_numpy(np.sort(np.concatenate(picked)))


def subset_dataset(ds: Any, indices: Tensor) -> Any:
    """The rows ``indices`` of an in-memory ``ImageDataset`` (``images``/``labels``) or a ``FolderDataset``
    (``samples``), as a dataset of the same type."""
    idx = indices.to(torch.int64)
    if hasattr(ds, "images"):
        return replace(ds, images=ds.images[idx], labels=ds.labels[idx])
    if hasattr(ds, "samples"):
        return replace(ds, samples=[ds.samples[i] for i in idx.tolist()])
    raise TypeError(f"cannot subset a {type(ds).__name__} (expected images/labels or samples)")


def dataset_labels(ds: Any) -> Tensor:
    """All labels of a dataset as int64 (N,), without reading images."""
    return torch.as_tensor(ds.labels, dtype=torch.int64)


def bank_dataset(ds: Any, max_train: int | None, seed: int = BANK_SEED) -> Any:
    """``ds`` itself, or its seeded stratified subset of ``max_train`` rows when it is larger."""
    if max_train is None or len(ds) <= max_train:
        return ds
    return subset_dataset(ds, stratified_indices(dataset_labels(ds), max_train, seed))


#: Temperatures below this get their votes scaled per test row (``knn_predict``): exp(1 / T) overflows float32
_SHIFT_BELOW_T = 1 / 80


@torch.no_grad()
def knn_predict(
    train_features: Tensor,
    train_labels: Tensor,
    test_features: Tensor,
    num_classes: int,
    k: int = 200,
    temperature: float = 0.1,
    chunk: int = 1024,
) -> Tensor:
    """Class scores (N_test, num_classes) with exactly ``k`` neighbours (clipped to the number of train
    features only); apply :func:`effective_k` first for the data-supported k.

    A score is the sum of ``exp(cos / temperature)`` over the neighbours of that class. Below
    ``temperature`` 1/80, where ``exp`` overflows float32 (cos/T > 88.7: inf votes, and 0 * inf = NaN scores), each
    test row is scaled by ``exp(-max cos / temperature)`` instead: the same ranking, finite numbers."""
    train = F.normalize(train_features.float(), dim=1)
    test = F.normalize(test_features.float(), dim=1)
    k = max(1, min(int(k), train.shape[0]))
    out = []
    for start in range(0, test.shape[0], chunk):
        sim = test[start : start + chunk] @ train.t()
        top_sim, top_idx = sim.topk(k, dim=1)
        shift = top_sim[:, :1] if temperature < _SHIFT_BELOW_T else 0.0  # the row's largest cosine (topk: first)
        weights = ((top_sim - shift) / temperature).exp()
        votes = F.one_hot(train_labels[top_idx], num_classes).to(weights.dtype)
        out.append((votes * weights.unsqueeze(-1)).sum(dim=1))
    return torch.cat(out, dim=0)


@torch.no_grad()
def knn_accuracy(
    train_features: Tensor,
    train_labels: Tensor,
    test_features: Tensor,
    test_labels: Tensor,
    num_classes: int,
    k: int = 200,
    temperature: float = 0.1,
    topk: tuple[int, ...] = (1,),
) -> tuple[float, ...]:
    """Top-k accuracies (fractions in [0, 1]) of :func:`knn_predict` with the given ``k`` (not capped here:
    callers pass ``effective_k(k_requested, train_labels)``)."""
    scores = knn_predict(train_features, train_labels, test_features, num_classes, k, temperature)
    return topk_accuracy(scores, test_labels, topk)


@torch.no_grad()
def topk_hits(scores: Tensor, labels: Tensor, ks: tuple[int, ...] = (1, 5)) -> tuple[Tensor, ...]:
    """Per k, which images (rows of class ``scores``) have their label among the k best classes (a bool tensor),
    k clipped to the number of classes; every k from one ranking."""
    hits = scores.argsort(dim=1, descending=True) == labels.view(-1, 1)
    return tuple(hits[:, : min(k, scores.shape[1])].any(dim=1) for k in ks)


def hit_rate(hits: Tensor) -> float:
    """The share of ``hits`` that are true as an exact fraction hits / n, counted in integers, so 366 of 1000 is
    0.366, not float32's 0.3659999966621399."""
    return int(hits.sum()) / int(hits.numel())


def topk_accuracy(scores: Tensor, labels: Tensor, ks: tuple[int, ...] = (1, 5)) -> tuple[float, ...]:
    """Top-k accuracies of class ``scores`` (rows: images), :func:`hit_rate` of :func:`topk_hits`."""
    return tuple(hit_rate(h) for h in topk_hits(scores, labels, ks))


def accuracy_and_hits(scores: Tensor, labels: Tensor) -> tuple[float, float, Tensor]:
    """(top-1, top-5, which images are right at top-1) of class ``scores``, from one ranking: the per-image hits
    that accuracy.json stores beside the accuracy (``us3l.eval.hits``) are the very ones it counts."""
    hits1, hits5 = topk_hits(scores, labels, (1, 5))
    return hit_rate(hits1), hit_rate(hits5), hits1


def check_knn_data(num_classes: int, max_train: int | None, num_train: int, spec: str, flag: str) -> None:
    """Refuse (one line) a kNN evaluation that cannot mean anything: data of fewer than two classes (every image
    is "right": 100 %), or a bank capped below one image per class (a class missing from it is never predicted)."""
    if num_classes < 2:
        raise US3LError(f"{spec} has {num_classes} class: kNN accuracy needs at least 2 (one folder per class)")
    if max_train is not None and num_train > max_train and max_train < num_classes:
        raise US3LError(f"{flag} {max_train} is below the number of classes ({num_classes}) of {spec}: the kNN bank "
                        "needs at least one image per class")
