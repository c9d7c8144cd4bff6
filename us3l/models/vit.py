"""Slimmable ViT (method.md §5, MoCo v3 style): only the input side of each block Linear is sliced.

The residual stream, LayerNorms, head count, patch embedding and head stay full width; each of qkv, proj,
fc1 and fc2 reads the first ``make_divisible(in × w)`` channels of its input. Linear MACs scale with about
``w``; the attention matmuls do not.
"""

from __future__ import annotations

import math
from functools import partial

import torch
from torch import nn

from us3l.models.base import SlimNet
from us3l.models.registry import register_model
from us3l.slim.layers import SlimLinear
from us3l.slim.rounding import WidthRange
from us3l.validate import number, require_types


def sincos_pos_embed(grid: int, dim: int, temperature: float = 10000.0) -> torch.Tensor:
    """Fixed 2-D sin-cos position embedding (MoCo v3), with a zero row for the class token. On the meta device (a
    network built for its shapes, ``us3l.models.meta``) only its shape: the arithmetic there would import sympy,
    and computing it elsewhere would allocate the table of a network that may be too large for any machine."""
    if dim % 4:
        raise ValueError("embedding dim must be divisible by 4 for the 2-D sin-cos position embedding")
    if torch.empty(0).is_meta:  # the default device
        return torch.empty(1, grid * grid + 1, dim)
    gh, gw = torch.meshgrid(torch.arange(grid, dtype=torch.float32), torch.arange(grid, dtype=torch.float32),
                            indexing="ij")
    pos_dim = dim // 4
    omega = 1.0 / temperature ** (torch.arange(pos_dim, dtype=torch.float32) / pos_dim)
    out_w = gw.flatten()[:, None] * omega[None]
    out_h = gh.flatten()[:, None] * omega[None]
    pe = torch.cat([out_w.sin(), out_w.cos(), out_h.sin(), out_h.cos()], dim=1)
    return torch.cat([torch.zeros(1, dim), pe], dim=0)[None]


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int, lin: partial) -> None:
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.qkv = lin(dim, dim * 3)
        self.proj = lin(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = (q @ k.transpose(-2, -1)) * self.scale
        out = (attn.softmax(dim=-1) @ v).transpose(1, 2).reshape(b, n, c)
        return self.proj(out)


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_ratio: float, lin: partial) -> None:
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads, lin)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.fc1 = lin(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = lin(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.fc2(self.act(self.fc1(self.norm2(x))))


class SlimViT(SlimNet):
    """Vision Transformer whose block Linears read the first channels of their inputs at a width."""

    def __init__(
        self,
        width_range: WidthRange,
        embed_dim: int,
        depth: int,
        heads: int,
        img_size: int = 224,
        patch_size: int = 16,
        mlp_ratio: float = 4.0,
        num_classes: int = 0,
        stop_grad_conv1: bool = False,
    ) -> None:
        super().__init__(width_range)
        # 0 built a model of no patches, -32 and patch_size -16 / 0 reached torch (RuntimeError, ZeroDivisionError)
        img_size = int(number(img_size, "img_size", positive=True, integer=True))
        patch_size = int(number(patch_size, "patch_size", positive=True, integer=True))
        require_types("stop_grad_conv1", stop_grad_conv1, bool)
        number(mlp_ratio, "mlp_ratio", positive=True)  # 0: an MLP of no units; -1: torch's RuntimeError
        if img_size % patch_size:
            raise ValueError(f"input size {img_size} is not a multiple of the patch size {patch_size}")
        self.input_size = img_size
        self.patch_embed = nn.Conv2d(3, embed_dim, patch_size, patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.register_buffer("pos_embed", sincos_pos_embed(img_size // patch_size, embed_dim), persistent=False)
        lin = partial(SlimLinear, slim_in=True, slim_out=False, slice_input=True, width_range=width_range)
        self.blocks = nn.Sequential(*[Block(embed_dim, heads, mlp_ratio, lin) for _ in range(depth)])
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        self.num_features = embed_dim
        if num_classes > 0:
            self.head = nn.Linear(embed_dim, num_classes)
        self._init_weights()
        if stop_grad_conv1:  # MoCo v3 --stop-grad-conv1: a frozen random patch embedding (run_ofa.sh passes it)
            self.patch_embed.weight.requires_grad_(False)
            self.patch_embed.bias.requires_grad_(False)

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, SlimLinear | nn.Linear):
                if isinstance(m, SlimLinear) and m.out_features == 3 * m.in_features:  # qkv, as MoCo v3
                    bound = math.sqrt(6.0 / float(m.weight.shape[0] // 3 + m.weight.shape[1]))
                    nn.init.uniform_(m.weight, -bound, bound)
                else:
                    nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        fan = 3 * self.patch_embed.kernel_size[0] * self.patch_embed.kernel_size[1]
        bound = math.sqrt(6.0 / float(fan + self.num_features))
        nn.init.uniform_(self.patch_embed.weight, -bound, bound)
        nn.init.zeros_(self.patch_embed.bias)
        nn.init.normal_(self.cls_token, std=1e-6)

    def feature_dim(self, w: float) -> int:
        self.width_range.check(w)
        return self.num_features

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        x = self.norm(self.blocks(x))
        return x[:, 0]


@register_model("vit_tiny", "ViT-Tiny/16 (dim 192, depth 12, 6 heads), MoCo v3 style", 224, size_option="img_size")
def vit_tiny(width_range: WidthRange, **kw: object) -> SlimViT:
    return SlimViT(width_range, embed_dim=192, depth=12, heads=6, **kw)  # type: ignore[arg-type]


@register_model("vit_small", "ViT-Small/16 (dim 384, depth 12, 12 heads), MoCo v3 style", 224,
                size_option="img_size")
def vit_small(width_range: WidthRange, **kw: object) -> SlimViT:
    return SlimViT(width_range, embed_dim=384, depth=12, heads=12, **kw)  # type: ignore[arg-type]
