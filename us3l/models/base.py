"""Base class of the registered slimmable backbones."""

from __future__ import annotations

import torch
from torch import nn

from us3l.slim.context import width_grid
from us3l.slim.rounding import WidthRange


class SlimNet(nn.Module):
    """A slimmable backbone: ``forward_features`` gives the embedding, ``forward`` adds the optional head.

    Subclasses set ``width_range``, ``input_size`` (default square input side), ``num_features``
    (embedding size at full width) and implement ``forward_features`` and ``feature_dim``.
    """

    width_range: WidthRange
    input_size: int
    num_features: int

    def __init__(self, width_range: WidthRange) -> None:
        super().__init__()
        self.width_range = width_range
        self.head: nn.Module = nn.Identity()

    def feature_dim(self, w: float) -> int:
        """Embedding size at width ``w``."""
        raise NotImplementedError

    def width_grid(self, max_points: int | None = None) -> tuple[float, ...]:
        """The distinct widths (one per distinct channel configuration), ascending; see
        :func:`us3l.slim.width_grid` for ``max_points``."""
        return width_grid(self, max_points)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x))
