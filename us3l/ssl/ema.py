"""The momentum (EMA) teacher update (method.md §1.1)."""

from __future__ import annotations

import math

import torch
from torch import nn


@torch.no_grad()
def ema_update(teacher: nn.Module, student: nn.Module, momentum: float) -> None:
    """ξ ← m·ξ + (1−m)·θ over parameters (buffers are not averaged, like the reference)."""
    t_params = list(teacher.parameters())
    s_params = [s.detach() for s in student.parameters()]
    if len(t_params) != len(s_params):
        raise ValueError(f"teacher has {len(t_params)} parameters, student {len(s_params)}")
    # One multi-tensor call per operation (same element-wise ops as a per-tensor mul_/add_ loop, bit for bit).
    torch._foreach_mul_(t_params, momentum)
    torch._foreach_add_(t_params, s_params, alpha=1.0 - momentum)


def cosine_momentum(base: float, progress: float) -> float:
    """MoCo v3 schedule: ``m`` from ``base`` at progress 0 to 1 at progress 1 (cosine)."""
    return 1.0 - (1.0 - base) * 0.5 * (1.0 + math.cos(math.pi * progress))
