"""The built-in data set: ten shape classes rendered procedurally, with nuisances that hide them from pixels.

Each image is one shape (disk, ring, square, hollow square, triangle, plus, star, crescent, T, pair of dots)
drawn at a random position, scale and rotation, in one of four greys on a background of another, with a
random linear shading across the image and pixel noise. The class is only in the shape's outline; the
nuisances (brightness, polarity, position, scale, rotation, shading, noise) carry most of the pixel variance,
so raw pixels and random convolutional features are poor kNN features here, while augmentation-invariant
self-supervised features are not (docs/data.md gives the measured baselines).

Everything is drawn from one seeded ``torch.Generator``, so a seed gives bit-identical images on every
machine; nothing is downloaded. Shapes are rendered at ``SUPERSAMPLE`` times the resolution and box-filtered
(anti-aliased edges).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

CLASSES = (
    "disk",
    "ring",
    "square",
    "hollow_square",
    "triangle",
    "plus",
    "star",
    "crescent",
    "tee",
    "dots",
)
SUPERSAMPLE = 2
SCALE = (0.6, 0.9)  # half-size of the shape's box as a fraction of the image half-size
REACH = 0.9  # centre offsets stay within +-(1 - REACH * scale): most of the shape stays inside the image
ROTATION = 0.2  # radians, uniform in +-ROTATION
NOISE_STD = 0.08  # pixel noise on [0, 1] values
SHADING = 0.6  # maximum amplitude of the linear shading across the image
MIN_CONTRAST = 0.25  # minimum brightness difference between the foreground and the background grey
# Four grey levels: brightness and polarity carry most of the pixel variance (so raw pixels and random
# features cluster by them), yet every (background, foreground) pair is shared by hundreds of images and
# brightness/contrast jitter moves an image between levels, so they are no shortcut for
# instance-discriminative self-supervision. Full colour made the colour pair such a shortcut (measured:
# SSL kNN barely above random init), docs/data.md.
PALETTE = ((0.1, 0.1, 0.1), (0.35, 0.35, 0.35), (0.65, 0.65, 0.65), (0.9, 0.9, 0.9))
_CHUNK = 512

Mask = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _triangle(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    inside = torch.ones_like(u, dtype=torch.bool)
    for k in range(3):
        a = math.pi / 2 + k * 2 * math.pi / 3
        inside &= (u * math.cos(a) + v * math.sin(a)) > -0.42
    return inside


def _radius(u: torch.Tensor, v: torch.Tensor, cu: float = 0.0) -> torch.Tensor:
    return torch.sqrt((u - cu) ** 2 + v * v)


def _box(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return torch.maximum(u.abs(), v.abs())


# Each mask takes shape-frame coordinates (u, v) (the shape's box is [-1, 1]^2) and returns a bool mask.
_MASKS: dict[str, Mask] = {
    "disk": lambda u, v: _radius(u, v) < 0.8,
    "ring": lambda u, v: (_radius(u, v) > 0.45) & (_radius(u, v) < 0.85),
    "square": lambda u, v: _box(u, v) < 0.68,
    "hollow_square": lambda u, v: (_box(u, v) > 0.42) & (_box(u, v) < 0.75),
    "triangle": _triangle,
    "plus": lambda u, v: ((u.abs() < 0.24) & (v.abs() < 0.85)) | ((v.abs() < 0.24) & (u.abs() < 0.85)),
    "star": lambda u, v: _radius(u, v) < 0.42 + 0.42 * torch.cos(5 * torch.atan2(v, u)).clamp(min=0) ** 1.5,
    "crescent": lambda u, v: (_radius(u, v) < 0.85) & (_radius(u, v, 0.4) > 0.62),
    "tee": lambda u, v: ((u.abs() < 0.85) & (v > 0.42) & (v < 0.85)) | ((u.abs() < 0.22) & (v.abs() < 0.85)),
    "dots": lambda u, v: (_radius(u, v, 0.48) < 0.36) | (_radius(u, v, -0.48) < 0.36),
}


def _luma(i: int) -> float:
    r, g, b = PALETTE[i]
    return 0.299 * r + 0.587 * g + 0.114 * b


def _contrast(i: int, j: int) -> bool:
    return abs(_luma(i) - _luma(j)) >= MIN_CONTRAST


def generate_shapes(n: int, size: int = 32, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` images (uint8 (n,3,size,size)) and labels (int64 (n,), balanced: ``n // 10`` or one more per class).

    The same ``(n, size, seed)`` always gives the same tensors.
    """
    if n < 1 or size < 4:
        raise ValueError(f"need n >= 1 and size >= 4, got n={n}, size={size}")
    g = torch.Generator().manual_seed(seed)

    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=g)

    labels = (torch.arange(n) % len(CLASSES))[torch.randperm(n, generator=g)]
    scale = SCALE[0] + (SCALE[1] - SCALE[0]) * rand(n)
    angle = ROTATION * (2 * rand(n) - 1)
    reach = (1 - REACH * scale).clamp(min=0)
    tx, ty = (2 * rand(n) - 1) * reach, (2 * rand(n) - 1) * reach
    palette = torch.tensor(PALETTE)
    pairs = torch.tensor([(i, j) for i in range(len(PALETTE)) for j in range(len(PALETTE)) if _contrast(i, j)])
    pick = pairs[torch.randint(len(pairs), (n,), generator=g)]
    bg, fg = palette[pick[:, 0]], palette[pick[:, 1]]
    shade_dir, shade_amp = 2 * math.pi * rand(n), SHADING * rand(n)
    noise = NOISE_STD * torch.randn(n, 3, size, size, generator=g)

    side = size * SUPERSAMPLE
    axis = torch.linspace(-1, 1, side)
    ys, xs = torch.meshgrid(axis, axis, indexing="ij")
    images = torch.empty(n, 3, size, size)
    for start in range(0, n, _CHUNK):
        sl = slice(start, min(start + _CHUNK, n))
        s, a = scale[sl].view(-1, 1, 1), angle[sl].view(-1, 1, 1)
        x, y = (xs - tx[sl].view(-1, 1, 1)) / s, (ys - ty[sl].view(-1, 1, 1)) / s
        u, v = torch.cos(a) * x + torch.sin(a) * y, -torch.sin(a) * x + torch.cos(a) * y
        mask = torch.zeros_like(u)
        for c, name in enumerate(CLASSES):
            rows = (labels[sl] == c).nonzero().flatten()
            if rows.numel():
                mask[rows] = _MASKS[name](u[rows], v[rows]).float()
        d = shade_dir[sl].view(-1, 1, 1)
        shade = 1 + shade_amp[sl].view(-1, 1, 1) * (torch.cos(d) * xs + torch.sin(d) * ys)
        bgc, fgc = bg[sl].view(-1, 3, 1, 1), fg[sl].view(-1, 3, 1, 1)
        big = (bgc + (fgc - bgc) * mask.unsqueeze(1)) * shade.unsqueeze(1)
        images[sl] = F.avg_pool2d(big, SUPERSAMPLE)
    images = (images + noise).clamp(0, 1).mul(255).round().to(torch.uint8)
    return images, labels.to(torch.int64)
