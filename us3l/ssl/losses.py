"""SSL and distillation losses (method.md §1.4, §1.6).

Every loss that takes a *target* applies the stop-gradient itself (``target.detach()``), so a caller cannot
forget it. Pair-wise losses are symmetrised over the two views with :func:`cross_view`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import ParamSpec, TypeVar

import torch
import torch.nn.functional as F
from torch import Tensor

_P = ParamSpec("_P")
_R = TypeVar("_R")


def full_precision(fn: Callable[_P, _R]) -> Callable[_P, _R]:
    """Compute a loss in float32 under mixed precision: autocast off for the inputs' device, floating tensor
    arguments cast to float32 (a no-op outside autocast). Under CUDA autocast the similarity matmul of a
    contrastive loss would otherwise run in fp16; it is small (2B x 2B), so float32 costs next to nothing.
    Prompted by one AMP run of the default recipe on an H200 that ended below two fp32 runs; over two seeds
    afterwards AMP was within the noise of fp32 (docs/training.md, "Training on a GPU")."""

    @functools.wraps(fn)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        dev = next((a.device.type for a in args if isinstance(a, Tensor)), "cpu")
        if not torch.is_autocast_enabled(dev):
            return fn(*args, **kwargs)
        cast = [a.float() if isinstance(a, Tensor) and a.is_floating_point() else a for a in args]
        with torch.autocast(device_type=dev, enabled=False):
            return fn(*cast, **kwargs)  # type: ignore[arg-type]

    return wrapper


@full_precision
def nt_xent(a: Tensor, b: Tensor, temperature: float = 0.5) -> Tensor:
    """NT-Xent (SimCLR) between rows of ``a`` and ``b`` (reference ``InfoNCEv2_distill``).

    L2-normalise, stack ``X = [a; b]`` (2B rows), ``sim = exp(X Xᵀ / T)`` without its diagonal; the positive
    of row i is row i±B; the loss is the mean over all 2B rows of ``-log(pos / Σ_{j≠i} sim_ij)``.
    Negatives are the local batch only (no all-gather), like the reference. ``b`` is *not* detached here:
    callers pass ``target.detach()`` where ``b`` is a target (see :func:`nt_xent_target`).
    """
    x = torch.cat([F.normalize(a, dim=1), F.normalize(b, dim=1)], dim=0)
    n = x.shape[0]
    bsz = n // 2
    logits = x @ x.t() / temperature
    logits = logits.masked_fill(torch.eye(n, dtype=torch.bool, device=x.device), float("-inf"))
    pos_index = torch.cat([torch.arange(bsz, n), torch.arange(0, bsz)]).to(x.device)
    return F.cross_entropy(logits, pos_index)


def nt_xent_target(a: Tensor, target: Tensor, temperature: float = 0.5) -> Tensor:
    """NT-Xent of online ``a`` against a stop-gradient ``target``."""
    return nt_xent(a, target.detach(), temperature)


@full_precision
def neg_cosine(p: Tensor, target: Tensor) -> Tensor:
    """``-cos(p, sg(target))`` averaged over the batch (reference ``CosineSimilarity``; not 2-2cos)."""
    return -F.cosine_similarity(p, target.detach(), dim=1).mean()


def cross_view(loss: Callable[[Tensor, Tensor], Tensor], online: Sequence[Tensor], targets: Sequence[Tensor]) -> Tensor:
    """½ Σ over (s,t) ∈ {(1,2),(2,1)} of ``loss(online[s], targets[t])``: symmetric in the two views."""
    o1, o2 = online
    t1, t2 = targets
    return 0.5 * (loss(o1, t2) + loss(o2, t1))


@full_precision
def mocov3_contrastive(q: Tensor, k: Tensor, tau: float = 0.2) -> Tensor:
    """MoCo v3 ``ctr(q, k) = CE(q·kᵀ/τ, labels)·2τ`` with ``k`` (stop-gradient) gathered over DDP ranks."""
    q = F.normalize(q, dim=1)
    k = F.normalize(k.detach(), dim=1)
    rank = 0
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        world = torch.distributed.get_world_size()
        if world > 1:
            rank = torch.distributed.get_rank()
            gathered = [torch.empty_like(k) for _ in range(world)]
            torch.distributed.all_gather(gathered, k.contiguous())
            k = torch.cat(gathered, dim=0)
    logits = q @ k.t() / tau
    labels = torch.arange(q.shape[0], device=q.device) + rank * q.shape[0]
    return F.cross_entropy(logits, labels) * (2 * tau)


def mocov3_pair(online: Sequence[Tensor], targets: Sequence[Tensor], tau: float = 0.2) -> Tensor:
    """MoCo v3's symmetric loss ``ctr(q1, k2) + ctr(q2, k1)`` (a sum, as in MoCo v3, not a mean)."""
    return mocov3_contrastive(online[0], targets[1], tau) + mocov3_contrastive(online[1], targets[0], tau)


def feature_mse(student: Sequence[Tensor], teacher: Sequence[Tensor]) -> Tensor:
    """Cross-view feature distillation: mean over view pairs of ``MSE(student_s, sg teacher_t)``.

    Feature maps are spatially unaligned across views; that is what the reference does (method.md §1.4).
    """
    return cross_view(lambda s, t: F.mse_loss(s, t.detach()), student, teacher)
