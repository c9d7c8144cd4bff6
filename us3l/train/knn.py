"""Weighted k-nearest-neighbour classification on L2-normalised features (Wu et al. 2018, as in InstDisc/
MoCo/DINO monitors): each of the k most similar train features votes for its label with ``exp(cos/T)``."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


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
    """Class scores (N_test, num_classes); ``k`` is clipped to the number of train features."""
    train = F.normalize(train_features.float(), dim=1)
    test = F.normalize(test_features.float(), dim=1)
    k = max(1, min(int(k), train.shape[0]))
    out = []
    for start in range(0, test.shape[0], chunk):
        sim = test[start : start + chunk] @ train.t()
        top_sim, top_idx = sim.topk(k, dim=1)
        weights = (top_sim / temperature).exp()
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
    """Top-k accuracies (fractions in [0, 1]) of :func:`knn_predict`."""
    scores = knn_predict(train_features, train_labels, test_features, num_classes, k, temperature)
    ranked = scores.argsort(dim=1, descending=True)
    hits = ranked == test_labels.view(-1, 1)
    return tuple(float(hits[:, : min(t, num_classes)].any(dim=1).float().mean()) for t in topk)
