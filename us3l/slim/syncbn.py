"""Batch statistics over every process of a distributed run (``sync_bn: true``), on CPU (gloo) and GPU.

``torch.nn.SyncBatchNorm`` runs on GPUs only ("SyncBatchNorm layers only work with GPU modules"), and would
replace the slimmable BatchNorm, whose affine is sliced per width, with a full-width one. Here the layers stay
what they are (:class:`us3l.slim.layers.SlimBatchNorm2d`, :class:`us3l.ssl.heads.GroupedBatchNorm1d`) and
:func:`enable_sync_bn` marks them: in training mode they normalise with the mean and variance of the whole global
batch at the active channels, computed by :func:`sync_batch_norm` with two all-reduces (the sum and count, then
the squared deviations from the global mean: no ``E[x²] - E[x]²`` cancellation). The all-reduces are
differentiable (their backward is an all-reduce of the gradients), so every process gets the gradient of the
global batch statistics, as ``nn.SyncBatchNorm`` computes it; DDP then averages the parameters' gradients.

While several views run as one call (:mod:`us3l.ssl.views`), each view's part is synchronised on its own, so the
statistics are those of one view's global batch, as with one call per view.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn


class _SumOverRanks(torch.autograd.Function):
    """All-reduce (sum) whose backward is the all-reduce of the gradients: d(sum_r L_r)/dx for every rank's x."""

    @staticmethod
    def forward(ctx: Any, tensor: Tensor, group: Any) -> Tensor:  # noqa: D102
        ctx.group = group
        out = tensor.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(out, group=group)
        return out

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:  # noqa: D102
        grad = grad.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(grad, group=ctx.group)
        return grad, None


def sync_batch_norm(
    x: Tensor,
    running_mean: Tensor | None,
    running_var: Tensor | None,
    weight: Tensor | None,
    bias: Tensor | None,
    momentum: float,
    eps: float,
    group: Any = None,
) -> Tensor:
    """Training-mode batch norm of ``x`` (N, C, ...) with the statistics of the batch of every process in
    ``group`` (default: the world). Running statistics, when given, are updated in place with the global mean and
    unbiased variance (``momentum`` as in ``F.batch_norm``). Computed in float32 for a half-precision ``x``
    (autocast), returned in ``x``'s dtype."""
    group = dist.group.WORLD if group is None else group
    c = x.shape[1]
    dims = [0, *range(2, x.dim())]
    shape = [1, c] + [1] * (x.dim() - 2)
    xf = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x  # statistics in float32 at least
    local = torch.cat([xf.sum(dims), xf.new_tensor([x.numel() // c])])
    total = _SumOverRanks.apply(local, group)
    count = total[c].detach()
    mean = total[:c] / count
    centered = xf - mean.view(shape)
    var = _SumOverRanks.apply((centered * centered).sum(dims), group) / count
    if running_mean is not None and running_var is not None:
        with torch.no_grad():
            n = float(count)
            unbiased = var.detach() * (n / (n - 1)) if n > 1 else var.detach()
            running_mean.mul_(1 - momentum).add_(mean.detach().to(running_mean.dtype), alpha=momentum)
            running_var.mul_(1 - momentum).add_(unbiased.to(running_var.dtype), alpha=momentum)
    y = centered * torch.rsqrt(var + eps).view(shape)
    if weight is not None:
        y = y * weight.to(y.dtype).view(shape)
    if bias is not None:
        y = y + bias.to(y.dtype).view(shape)
    return y.to(x.dtype)


def grouped_sync_batch_norm(
    x: Tensor,
    groups: int,
    running_mean: Tensor | None,
    running_var: Tensor | None,
    weight: Tensor | None,
    bias: Tensor | None,
    momentum: float | None,
    eps: float,
    num_batches_tracked: Tensor | None,
    group: Any = None,
) -> Tensor:
    """:func:`sync_batch_norm` of ``x`` as ``groups`` equal consecutive batches (views), each synchronised on its
    own, running statistics updated once per group in order (``us3l.slim.layers.grouped_batch_norm``'s contract).
    ``momentum`` None is the cumulative average of ``nn.BatchNorm``: 1 / batches tracked, counting this one."""
    if x.shape[0] % groups:
        raise ValueError(f"batch of {x.shape[0]} does not split into {groups} equal groups")
    outs = []
    for part in x.chunk(groups) if groups > 1 else (x,):
        factor = momentum
        if running_mean is not None and num_batches_tracked is not None:
            num_batches_tracked.add_(1)
            factor = 1.0 / float(num_batches_tracked) if momentum is None else momentum
        outs.append(sync_batch_norm(part, running_mean, running_var, weight, bias, factor or 0.0, eps, group))
    return outs[0] if len(outs) == 1 else torch.cat(outs)


def syncing(module: nn.Module) -> bool:
    """Whether ``module``, a BatchNorm its caller found marked by :func:`enable_sync_bn` (``sync_bn``), synchronises
    now: in training mode, in an initialised process group (a marked copy used alone, e.g. after the run,
    normalises per process)."""
    return module.training and dist.is_available() and dist.is_initialized()


def enable_sync_bn(module: nn.Module) -> list[nn.Module]:
    """Make every BatchNorm of ``module`` use the global batch statistics of the default process group in
    training mode (``sync_bn: true``); return them. Only the layers that know how (``SlimBatchNorm2d``,
    ``GroupedBatchNorm1d``) exist in us3l's models and heads; any other BatchNorm is a ``ValueError`` rather than
    left per-process without a word. The mark is a plain bool: a deep copy or a pickle of the module keeps it."""
    from torch.nn.modules.batchnorm import _BatchNorm

    from us3l.slim.layers import SlimBatchNorm2d
    from us3l.ssl.heads import GroupedBatchNorm1d

    found = []
    for name, m in module.named_modules():
        if isinstance(m, SlimBatchNorm2d | GroupedBatchNorm1d):
            m.sync_bn = True
            found.append(m)
        elif isinstance(m, _BatchNorm):
            raise ValueError(f"sync_bn: {name} ({type(m).__name__}) cannot synchronise its statistics")
    return found
