"""Random two-view batches for the self-supervised method tests."""

from __future__ import annotations

import torch


def random_views(batch: int = 4, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Two batches of ``batch`` random 16-px RGB images, drawn one after the other from a generator seeded ``seed``."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 3, 16, 16, generator=g), torch.randn(batch, 3, 16, 16, generator=g)
