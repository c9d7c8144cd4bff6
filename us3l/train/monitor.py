"""Training monitors: kNN accuracy per width on the held-out split, and a collapse indicator.

BN during monitoring: the model is put in ``eval()`` mode under ``no_grad``. The slimmable BN layers have no
running statistics during US3L training (like the reference), so in eval mode they normalise each feature
batch with its own statistics (``monitor_batch`` images); the head BN1d layers do the same, so the batches are
a seeded shuffle (``MONITOR_SEED``) of the split: class-sorted folder data would otherwise be normalised one
class at a time. Nothing in the model is modified. (The ``single`` baseline tracks running statistics and uses
them.) Calibrating BN per width first (``us3l.slim.calibrating``) is what ``us3l eval`` does; the monitor skips
it for speed.

kNN: the same honest protocol as ``us3l eval`` (``us3l.train.knn``): the feature bank is the train split, or
when it has more than ``knn_max_train`` images a seeded stratified subset (same fraction of every class, never
the first N rows), and k is capped at half the bank's smallest class.

Collapse: the std over the batch of the L2-normalised projector output, averaged over dimensions and
multiplied by sqrt(D): about 1 for well-spread embeddings, 0 for a collapsed (constant) output.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from us3l.data import EvalTransform, iterate_batches
from us3l.ssl.methods import SSLMethod
from us3l.train.knn import BANK_SEED, bank_dataset, dataset_labels, effective_k, knn_accuracy

#: Seed of the shuffled monitor batches (the same order at every width and epoch).
MONITOR_SEED = 0


@dataclass
class WidthReport:
    """Monitor results at one width (``k``: the k used; ``bank_size``: images in the kNN feature bank)."""

    width: float
    knn_top1: float
    collapse_std: float  # of the projector output
    k: int | None = None
    k_requested: int | None = None
    bank_size: int | None = None
    bank_seed: int | None = None
    #: the same indicator on the backbone features: a projector ending in ``BatchNorm1d(affine=False)`` (naive
    #: SimSiam) rescales every output dimension to unit variance, which hides a collapse of the features under it
    backbone_std: float | None = None

    @property
    def lowest_std(self) -> float:
        """The lower of the two collapse indicators (the projector output's alone when there is no backbone one)."""
        return min(s for s in (self.collapse_std, self.backbone_std) if s is not None)


@torch.no_grad()
def embed(
    method: SSLMethod,
    ds: object,
    w: float,
    transform: EvalTransform,
    device: torch.device,
    batch: int = 256,
    limit: int | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """(backbone features, projector outputs, labels) of ``ds`` at width ``w``, in the order of a seeded
    shuffle (``MONITOR_SEED``; batch statistics then mix classes), the first ``limit`` samples of it."""
    from us3l.slim import width as width_ctx

    was = method.training
    method.eval()
    feats, zs, labels = [], [], []
    seen = 0
    try:
        order = torch.Generator().manual_seed(MONITOR_SEED)
        for images, y in iterate_batches(ds, batch, shuffle=True, generator=order):  # type: ignore[arg-type]
            if limit is not None and seen >= limit:
                break
            x = transform(images.to(device))
            with width_ctx(method.encoder_q.backbone, w):
                f = method.encoder_q.backbone(x)
            zs.append(method.encoder_q.projector(f).float().cpu())
            feats.append(f.float().cpu())
            labels.append(y)
            seen += y.shape[0]
    finally:
        method.train(was)
    return torch.cat(feats), torch.cat(zs), torch.cat(labels)


def collapse_std(z: Tensor) -> float:
    """sqrt(D) · mean over dims of std over samples of L2-normalised ``z`` (≈1 healthy, 0 collapsed)."""
    zn = F.normalize(z.float(), dim=1)
    return float(zn.std(dim=0).mean() * math.sqrt(z.shape[1]))


def monitor(
    method: SSLMethod,
    train_ds: object,
    test_ds: object,
    widths: list[float],
    transform: EvalTransform,
    device: torch.device,
    num_classes: int,
    k: int = 200,
    t: float = 0.1,
    max_train: int | None = 10000,
    bank_seed: int = BANK_SEED,
) -> list[WidthReport]:
    """kNN top-1 on ``test_ds`` with a ``train_ds`` feature bank (a seeded stratified subset of ``max_train``
    images when larger; k capped by ``effective_k``), and the collapse std of the projector output and of the backbone
    features, at each width."""
    bank_ds = bank_dataset(train_ds, max_train, bank_seed)
    capped = bank_ds is not train_ds
    k_used = effective_k(k, dataset_labels(bank_ds))
    out = []
    for w in widths:
        ftr, _, ytr = embed(method, bank_ds, w, transform, device)
        fte, zte, yte = embed(method, test_ds, w, transform, device)
        (top1,) = knn_accuracy(ftr, ytr, fte, yte, num_classes, k_used, t)
        out.append(
            WidthReport(
                width=w,
                knn_top1=top1,
                collapse_std=collapse_std(zte),
                backbone_std=collapse_std(fte),
                k=k_used,
                k_requested=k,
                bank_size=len(bank_ds),  # type: ignore[arg-type]
                bank_seed=bank_seed if capped else None,
            )
        )
    return out
