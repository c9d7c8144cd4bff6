"""Several augmented views through one network call, with batch statistics per view.

The reference forwards each view separately, so every training-mode BatchNorm normalises one view's batch.
Running the views as one concatenated batch gives each convolution and linear layer twice the rows per call,
which on a CPU is the cheaper way to spend the same MACs (narrow sub-network layers are dominated by fixed
cost per call; docs/training.md, "Both views in one call"). Every BatchNorm then normalises each view's part
of the batch with that view's own statistics (:func:`us3l.slim.layers.grouped_batch_norm`), so the function,
its gradients and any running statistics are those of separate calls; only float rounding differs.

A module qualifies when every BatchNorm in it knows how to split its batch (``SlimBatchNorm2d`` and the heads'
:class:`us3l.ssl.heads.GroupedBatchNorm1d`, also under ``sync_bn``: :mod:`us3l.slim.syncbn` synchronises each
view's part on its own). Any other BatchNorm makes :func:`run_views` fall back to one call per view.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from us3l.slim.layers import SlimBatchNorm2d
from us3l.ssl.heads import GroupedBatchNorm1d

T = TypeVar("T")


def grouped_norms(module: nn.Module) -> list[nn.Module] | None:
    """The batch-splitting BatchNorm layers of ``module``, or None when some BatchNorm cannot split its batch."""
    found: list[nn.Module] = []
    for m in module.modules():
        if isinstance(m, SlimBatchNorm2d | GroupedBatchNorm1d):
            found.append(m)
        elif isinstance(m, _BatchNorm):
            return None
    return found


class batch_groups:  # noqa: N801 - used as a context manager, like torch.no_grad
    """Within the block, ``norms`` split their training-mode batch into ``groups`` equal parts."""

    def __init__(self, norms: Sequence[nn.Module], groups: int) -> None:
        self.norms, self.groups = norms, groups

    def __enter__(self) -> None:
        for m in self.norms:
            m.batch_groups = self.groups

    def __exit__(self, *exc: object) -> None:
        for m in self.norms:
            m.batch_groups = 1


def run_views(module: nn.Module, fn: Callable[[Tensor], T], xs: Sequence[Tensor], batched: bool = True) -> list[T]:
    """``[fn(x) for x in xs]``, computed as one call on the concatenated views when ``batched`` and ``module``
    (whose BatchNorms ``fn`` runs) qualifies and the views have one shape.

    ``fn`` returns a tensor or a ``(tensor, [tensors])`` pair; every returned tensor's first dimension must be the
    batch (it is split back into one part per view)."""
    n = len(xs)
    norms = grouped_norms(module) if batched and n > 1 else None
    if norms is None or any(x.shape != xs[0].shape for x in xs[1:]):
        return [fn(x) for x in xs]
    with batch_groups(norms, n):
        out = fn(torch.cat(list(xs)))
    return _split(out, n)


def _split(out: object, n: int) -> list:
    if isinstance(out, Tensor):
        return list(out.chunk(n))
    if isinstance(out, tuple | list):
        parts = [_split(o, n) for o in out]
        kind = tuple if isinstance(out, tuple) else list
        return [kind(p[i] for p in parts) for i in range(n)]
    raise TypeError(f"cannot split a {type(out).__name__} by view")
