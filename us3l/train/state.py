"""Resumable state: what goes into ``train_state.pt`` and the ``train.*`` tensors of the checkpoint.

Everything here is ``torch.load(weights_only=True)``-loadable: tensors, numbers, strings, lists, dicts.
Per-epoch data order and augmentation generators are derived from ``(seed, epoch, rank)``, so resuming at
an epoch boundary needs only the model, optimizer, scaler, width-sampler and global RNG states.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

BACKBONE_KEY = "encoder_q.backbone."


def split_state(method: nn.Module) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(backbone state, everything else) of a method's state dict."""
    sd = method.state_dict()
    backbone = {k[len(BACKBONE_KEY) :]: v for k, v in sd.items() if k.startswith(BACKBONE_KEY)}
    rest = {k: v for k, v in sd.items() if not k.startswith(BACKBONE_KEY)}
    return backbone, rest


def join_state(backbone: dict[str, torch.Tensor], rest: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Inverse of :func:`split_state`."""
    out = {BACKBONE_KEY + k: v for k, v in backbone.items()}
    out.update(rest)
    return out


def epoch_seed(seed: int, epoch: int, rank: int, stream: int) -> int:
    """A distinct 63-bit seed per (seed, epoch, rank, stream) for the data-order and augmentation generators."""
    x = (seed * 1_000_003 + epoch) * 1_000_033 + rank * 7919 + stream
    return x % (2**63 - 1)


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        try:
            torch.cuda.set_rng_state_all(state["cuda"])
        except RuntimeError:  # different number of GPUs: data order does not depend on it
            pass


@contextmanager
def kept_rng_state() -> Iterator[None]:
    """Put torch's global random generators back as they were once the body returns or raises: the CPU one, and
    the CUDA ones where CUDA was initialised before the body (reading them would initialise it, on every GPU). A
    run seeds them (``seed + rank``) and draws from them; a program calling ``run_training`` then drew numbers
    that depended on the run. The run's own reproducibility does not rest on them being left so: it seeds them
    when it starts and restores them from its checkpoint when it resumes."""
    cuda = torch.cuda.is_available() and torch.cuda.is_initialized()
    cpu_state = torch.get_rng_state()
    cuda_states = torch.cuda.get_rng_state_all() if cuda else None
    try:
        yield
    finally:
        torch.set_rng_state(cpu_state)
        if cuda_states is not None:
            torch.cuda.set_rng_state_all(cuda_states)
