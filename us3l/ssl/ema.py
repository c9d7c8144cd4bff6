"""The momentum (EMA) teacher update (method.md §1.1)."""

from __future__ import annotations

import math

import torch
from torch import nn


@torch.no_grad()
def ema_update(teacher: nn.Module, student: nn.Module, momentum: float) -> None:
    """ξ ← m·ξ + (1−m)·θ over parameters (buffers are not averaged, like the reference)."""
    for t, s in zip(teacher.parameters(), student.parameters(), strict=True):
        t.mul_(momentum).add_(s.detach(), alpha=1.0 - momentum)


def cosine_momentum(base: float, progress: float) -> float:
    """MoCo v3 schedule: ``m`` from ``base`` at progress 0 to 1 at progress 1 (cosine)."""
    return 1.0 - (1.0 - base) * 0.5 * (1.0 + math.cos(math.pi * progress))
