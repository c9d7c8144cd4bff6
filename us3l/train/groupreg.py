"""Group regularization (method.md §3; reference ``losses/regularizers/GroupReg.py``).

R(θ, e) = Σ_p Σ_i λ_i(e)·‖p[group i]‖² (plain sum of squares), replacing weight decay. Groups are ``bins``
contiguous slices along dim 0 of size ``dim // bins``, the last one taking the remainder (so a dimension
smaller than ``bins`` falls entirely into the last group, as in the reference). 4-D and 1-D tensors are
grouped; 2-D Linear weights get a uniform λ. ``λ_i = λ(1 − α(e)·i)`` ("linear") or ``λ·α(e)^i`` ("exp").

Exclusions by parameter name (the SSL module names its parts like the reference, see ``us3l.ssl.methods``):
names containing ``encoder_k`` or ``proj_conv`` always; names containing ``predictor`` (``predictor`` and
``predictor_new``) only at the maximum width.

ViT variant (``vit=True``): 2-D Linear weights are grouped along their *input* dimension, everything else
gets a uniform λ.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import Tensor, nn


@dataclass(frozen=True)
class GroupRegConfig:
    """λ (``lam``), α, number of bins, warm-up epochs, decay type, ViT variant."""

    lam: float = 5e-5
    alpha: float = 0.05
    bins: int = 8
    warmup_epochs: int = 0
    decay: str = "linear"
    vit: bool = False


def alpha_at(epoch: int, epochs: int, alpha: float, warmup_epochs: int) -> float | None:
    """α(e): ``None`` (plain uniform L2) during warm-up, then a linear ramp reaching ``alpha`` at E//2."""
    if epoch < warmup_epochs:
        return None
    half = epochs // 2
    if epoch < half:
        return alpha * (epoch - warmup_epochs) / (half - warmup_epochs)
    return alpha


def group_coefficients(cfg: GroupRegConfig, epoch: int, epochs: int) -> list[float]:
    """λ_0 … λ_{bins-1} for ``epoch``."""
    a = alpha_at(epoch, epochs, cfg.alpha, cfg.warmup_epochs)
    if a is None:
        return [cfg.lam] * cfg.bins
    if cfg.decay == "linear":
        return [cfg.lam * (1.0 - a * i) for i in range(cfg.bins)]
    if cfg.decay == "exp":
        return [cfg.lam * a**i for i in range(cfg.bins)]
    raise ValueError(f"unknown group-regularizer decay {cfg.decay!r} (linear or exp)")


def group_index(dim: int, bins: int) -> Tensor:
    """Group of each of ``dim`` rows: ``min(r // (dim//bins), bins-1)``; all in the last group if dim < bins."""
    size = dim // bins
    if size == 0:
        return torch.full((dim,), bins - 1, dtype=torch.long)
    return torch.clamp(torch.arange(dim) // size, max=bins - 1)


def is_excluded(name: str, at_max_width: bool) -> bool:
    """The reference's name-based exclusions."""
    if "encoder_k" in name or "proj_conv" in name:
        return True
    return at_max_width and "predictor" in name


class GroupRegularizer:
    """Callable computing R(θ, e) at a width; build once from ``named_parameters()``."""

    def __init__(
        self, named_params: Iterable[tuple[str, nn.Parameter]], cfg: GroupRegConfig, epochs: int, max_width: float = 1.0
    ) -> None:
        self.cfg = cfg
        self.epochs = epochs
        self.max_width = max_width
        self.params = [(n, p) for n, p in named_params if p.requires_grad]
        self._cache: dict[tuple[int, str], Tensor] = {}
        self._fused: dict[tuple[int, bool], tuple[list[Tensor], list[Tensor]]] = {}

    def _grouped_dim(self, p: Tensor) -> int | None:
        if self.cfg.vit:
            return 1 if p.dim() == 2 else None
        return None if p.dim() == 2 else 0

    def _row_coeffs(self, epoch: int, name: str, p: Tensor, dim: int) -> Tensor:
        key = (epoch, name)
        c = self._cache.get(key)
        if c is None:
            if len(self._cache) > 4 * len(self.params) + 16:
                self._cache.clear()
            coeffs = torch.tensor(group_coefficients(self.cfg, epoch, self.epochs), dtype=torch.float64)
            c = coeffs[group_index(p.shape[dim], self.cfg.bins)].to(device=p.device, dtype=p.dtype)
            self._cache[key] = c
        return c

    def __call__(self, width: float, epoch: int) -> Tensor:
        at_max = width >= self.max_width
        total: Tensor | None = None
        for name, p in self.params:
            if is_excluded(name, at_max):
                continue
            dim = self._grouped_dim(p)
            if dim is None or p.dim() == 0:
                term = self.cfg.lam * p.pow(2).sum()
            else:
                other = [d for d in range(p.dim()) if d != dim]
                rows = p.pow(2).sum(dim=other) if other else p.pow(2)
                term = (rows * self._row_coeffs(epoch, name, p, dim)).sum()
            total = term if total is None else total + term
        if total is None:
            return torch.zeros(())
        return total

    # -- the training loop's path: the value without an autograd graph, the gradient added in place ------------
    def _twice_coeffs(self, epoch: int, at_max: bool) -> tuple[list[Tensor], list[Tensor]]:
        """The included parameters and, per parameter, 2·λ broadcastable to it (a column of rows, or a scalar)."""
        key = (epoch, at_max)
        hit = self._fused.get(key)
        if hit is None:
            if any(e != epoch for e, _ in self._fused):
                self._fused.clear()  # coefficients change with the epoch: keep the current one's only
            params, coeffs = [], []
            for name, p in self.params:
                if is_excluded(name, at_max):
                    continue
                dim = self._grouped_dim(p)
                if dim is None or p.dim() == 0:
                    c = torch.full((), 2 * self.cfg.lam, dtype=p.dtype, device=p.device)
                else:
                    shape = [1] * p.dim()
                    shape[dim] = -1
                    c = 2 * self._row_coeffs(epoch, name, p, dim).view(shape)
                params.append(p)
                coeffs.append(c)
            hit = self._fused[key] = (params, coeffs)
        return hit

    @torch.no_grad()
    def value(self, width: float, epoch: int) -> Tensor:
        """R(θ, e) as a detached scalar (``__call__`` up to float summation order), a few multi-tensor ops."""
        params, coeffs = self._twice_coeffs(epoch, width >= self.max_width)
        if not params:
            return torch.zeros(())
        sq = torch._foreach_mul(params, params)
        torch._foreach_mul_(sq, coeffs)
        return torch.stack(torch._foreach_norm(sq, 1)).sum() / 2  # every term is ≥ 0: the L1 norm is the sum

    @torch.no_grad()
    def add_grad_(self, width: float, epoch: int, scale: float = 1.0) -> None:
        """``p.grad += scale·2·λ_i·p`` for every included parameter (a missing gradient counts as zero).

        After ``loss.backward()`` this gives the gradients of ``loss + R`` that autograd computes through
        ``__call__`` at ``scale`` 1: autograd forms ``λ_i·(2·p)``, here ``(2·λ_i)·p`` is added (the same number,
        scaling by 2 is exact). Bit for bit where the loss reaches ``p`` once; where several loss terms reach it
        (both views through the same weight), autograd may add the terms in another order (1 ulp).
        """
        params, coeffs = self._twice_coeffs(epoch, width >= self.max_width)
        have = [i for i, p in enumerate(params) if p.grad is not None]
        for i, p in enumerate(params):
            if p.grad is None:
                p.grad = coeffs[i] * p if scale == 1.0 else coeffs[i] * p * scale
        if have:
            torch._foreach_addcmul_(
                [params[i].grad for i in have], [coeffs[i] for i in have], [params[i] for i in have], value=scale
            )
