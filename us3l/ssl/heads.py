"""Projector, predictor and feature-adapter heads (method.md §1.1, §1.4).

The heads are not slimmable, except that the first projector layer and the feature adapters take the first
``c`` input channels of a width-``w`` backbone output (the reference's ``USLinear/USConv2d(us=[True, False])``).
Head BatchNorm1d layers use batch statistics only (``track_running_stats=False``): the reference trains them
in train mode and drops them before evaluation, so their running statistics are never used; not tracking
them keeps monitors (which run the heads under ``no_grad``) from mutating training state.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from us3l.slim.syncbn import grouped_sync_batch_norm, syncing


class InputSlicedLinear(nn.Linear):
    """A Linear whose input may be the first ``k ≤ in_features`` features: uses ``weight[:, :k]``."""

    def forward(self, x: Tensor) -> Tensor:
        k = x.shape[-1]
        return F.linear(x, self.weight[:, :k], self.bias)


class InputSlicedConv1x1(nn.Conv2d):
    """1×1 conv from the first ``k`` of ``C`` channels to all ``C`` (the reference ``proj_conv``)."""

    def __init__(self, channels: int) -> None:
        super().__init__(channels, channels, kernel_size=1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.weight[:, : x.shape[1]])


class GroupedBatchNorm1d(nn.BatchNorm1d):
    """``nn.BatchNorm1d`` that, while ``batch_groups`` > 1 in training mode, normalises its batch as that many
    equal consecutive groups, each with its own statistics: several views in one call compute what one call per
    view computes (:mod:`us3l.ssl.views`). Same parameters, buffers and state-dict keys as ``nn.BatchNorm1d``."""

    batch_groups = 1
    sync_bn = False  # us3l.slim.syncbn.enable_sync_bn: statistics over every process of a distributed run

    def forward(self, x: Tensor) -> Tensor:
        groups = self.batch_groups
        if self.sync_bn and syncing(self):
            return self._synced(x, groups)
        if groups == 1 or not self.training:
            return super().forward(x)
        if x.shape[0] % groups:
            raise ValueError(f"batch of {x.shape[0]} does not split into {groups} equal groups")
        return torch.cat([super(GroupedBatchNorm1d, self).forward(part) for part in x.chunk(groups)])

    def _synced(self, x: Tensor, groups: int) -> Tensor:
        self._check_input_dim(x)
        running = self.track_running_stats and self.running_mean is not None
        tracked = self.num_batches_tracked if running else None
        mean, var = (self.running_mean, self.running_var) if running else (None, None)
        return grouped_sync_batch_norm(x, groups, mean, var, self.weight, self.bias, self.momentum, self.eps, tracked)


def _bn1d(dim: int, affine: bool = True) -> GroupedBatchNorm1d:
    return GroupedBatchNorm1d(dim, affine=affine, track_running_stats=False)


def projector(in_features: int, hidden: int, out: int, middle_bias: bool, out_bn: bool = False) -> nn.Sequential:
    """fc0 (input-sliced) → BN → ReLU → Linear → BN → ReLU → Linear(→out) [→ BN(out, affine=False)].

    ``middle_bias`` is True for SimCLR-type methods and False for BYOL/SimSiam (method.md §1.1). ``out_bn``
    appends the reference SimSiam's output ``BatchNorm1d(out, affine=False)`` and freezes the last Linear's
    bias (``requires_grad=False``: a bias in front of a BN without affine has no effect on the output; the
    reference sets ``fc[6].bias.requires_grad = False``), so the optimizer never sees it.
    """
    layers: list[nn.Module] = [
        InputSlicedLinear(in_features, hidden),
        _bn1d(hidden),
        nn.ReLU(inplace=True),
        nn.Linear(hidden, hidden, bias=middle_bias),
        _bn1d(hidden),
        nn.ReLU(inplace=True),
        nn.Linear(hidden, out),
    ]
    if out_bn:
        last = layers[-1]
        assert isinstance(last, nn.Linear) and last.bias is not None
        last.bias.requires_grad_(False)
        layers.append(_bn1d(out, affine=False))
    return nn.Sequential(*layers)


def predictor(dim: int, hidden: int) -> nn.Sequential:
    """Linear(D→hidden, no bias) → BN → ReLU → Linear(hidden→D)."""
    return nn.Sequential(
        nn.Linear(dim, hidden, bias=False),
        _bn1d(hidden),
        nn.ReLU(inplace=True),
        nn.Linear(hidden, dim),
    )


def mocov3_mlp(num_layers: int, in_features: int, hidden: int, out: int, last_bn: bool = True) -> nn.Sequential:
    """MoCo v3's ``_build_mlp``: bias-free Linears, BN + ReLU between them, and (``last_bn``) a final
    ``BatchNorm1d(out, affine=False)``. The first Linear is input-sliced like :func:`projector`'s ``fc0``."""
    layers: list[nn.Module] = []
    for i in range(num_layers):
        d_in = in_features if i == 0 else hidden
        d_out = out if i == num_layers - 1 else hidden
        layers.append(InputSlicedLinear(d_in, d_out, bias=False) if i == 0 else nn.Linear(d_in, d_out, bias=False))
        if i < num_layers - 1:
            layers += [_bn1d(d_out), nn.ReLU(inplace=True)]
        elif last_bn:
            layers.append(_bn1d(d_out, affine=False))
    return nn.Sequential(*layers)
