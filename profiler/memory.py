"""Weight bytes and peak activation memory of a static (materialized) model.

Definitions (also in docs/profiling.md):

* ``weight_bytes``: every parameter and buffer of the static model (BN running statistics included) at the
  deployment precision (4 bytes per element for fp32, 2 for fp16), i.e. the size of the weights a runtime holds.
* ``activation_bytes``: the peak, over the execution of one forward pass at the profiled input shape (batch
  included), of the sum of the sizes of the activation tensors that are *live*: produced already and still
  needed by a later module (or the final output). The trace comes from forward hooks on every leaf module: a
  tensor is born when a module outputs it (or, for results of functional ops such as ``x + identity``, at its
  first use) and dies after its last use as a module input; tensors sharing storage (in-place ops, views)
  count once. Weights and runtime scratch buffers are not included; the network input is. It is what a
  runtime that frees each tensor after its last use must hold at minimum, measured in fp32 eager order.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

BYTES_PER_ELEMENT = {"fp32": 4, "fp16": 2, "int8": 1}


def weight_bytes(model: nn.Module, precision: str = "fp32") -> int:
    """Bytes of all parameters and buffers at ``precision`` (floating tensors; integer buffers as stored)."""
    per = BYTES_PER_ELEMENT.get(precision)
    if per is None:
        raise ValueError(f"unknown precision {precision!r} (known: {', '.join(BYTES_PER_ELEMENT)})")
    total = 0
    seen: set[int] = set()
    for t in [*model.parameters(), *model.buffers()]:
        if t.data_ptr() in seen:
            continue
        seen.add(t.data_ptr())
        total += t.numel() * (per if t.is_floating_point() else t.element_size())
    return total


@dataclass
class _Live:
    nbytes: int
    born: int
    last: int


def activation_bytes(model: nn.Module, example: torch.Tensor) -> int:
    """Peak live activation bytes of one forward pass of ``model`` on ``example`` (see module docstring)."""
    live: dict[int, _Live] = {}
    step = [0]
    keep: list[torch.Tensor] = []  # hold every traced tensor so the allocator cannot reuse its address

    def key(t: torch.Tensor) -> int:
        return t.untyped_storage().data_ptr()

    def note_use(t: torch.Tensor) -> None:
        keep.append(t)
        k = key(t)
        nbytes = t.untyped_storage().nbytes()
        if k not in live:
            live[k] = _Live(nbytes, step[0], step[0])
        else:
            live[k].last = step[0]
            live[k].nbytes = max(live[k].nbytes, nbytes)

    def tensors(obj: object) -> list[torch.Tensor]:
        if isinstance(obj, torch.Tensor):
            return [obj]
        if isinstance(obj, (list, tuple)):
            return [t for o in obj for t in tensors(o)]
        if isinstance(obj, dict):
            return [t for o in obj.values() for t in tensors(o)]
        return []

    def pre_hook(_m: nn.Module, args: tuple) -> None:
        step[0] += 1
        for t in tensors(args):
            note_use(t)

    def post_hook(_m: nn.Module, _args: tuple, out: object) -> None:
        for t in tensors(out):
            note_use(t)  # born now (or, for in-place ops, extends the input's life)

    leaves = [m for m in model.modules() if not list(m.children())]
    handles = [m.register_forward_pre_hook(pre_hook) for m in leaves]
    handles += [m.register_forward_hook(post_hook) for m in leaves]
    try:
        with torch.inference_mode():
            note_use(example)
            out = model(example)
            step[0] += 1
            for t in tensors(out):
                note_use(t)  # the output lives to the end
    finally:
        for h in handles:
            h.remove()
    keep.clear()
    peak = 0
    for s in range(step[0] + 1):
        peak = max(peak, sum(v.nbytes for v in live.values() if v.born <= s <= v.last))
    return int(peak)
