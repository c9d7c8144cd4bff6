"""Eager inference at a width through a cached ``materialize``d network (issue 14 item 3).

A slimmable network in its width context pays Python per layer on every call (the width lookup, the channel
arithmetic, the sliced-parameter cache check, the BN statistics lookup): at batch 1 that made it 1.06-1.17x
slower than ``materialize(model, w)`` with the same weights. Without autograd and in eval mode the two compute
the same function, so :func:`cached_static` hands ``SlimNet.forward``/``forward_features`` the materialized
network of the current width instead, built once and reused while nothing it was built from changed.

It is used only where it is exactly equivalent, and otherwise returns ``None`` (the eager path runs):
- no autograd (``torch.no_grad``/``inference_mode``) and every module in eval mode;
- every slimmable layer inside one ``us3l.slim.width`` context (same width, same BN statistics key);
- no forward hooks or pre-hooks on any module (nor global ones), no BN statistics being collected;
- not while tracing, scripting, compiling or exporting (those must see the model itself), nor inside
  :func:`eager_layers`.

Validity: the parameters' and buffers' version counters (in-place updates by an optimizer, the EMA,
``load_state_dict`` or writes under ``no_grad`` bump them) and a process-wide generation bumped whenever any
module registers a submodule, parameter or buffer (torch's global registration hooks), when calibrated BN
statistics are written (``us3l.slim.context``) and by ``SlimNet._apply`` (``.to()``, ``.float()``...). Like
autograd's own checks and ``us3l.slim.layers._no_grad_slices``, writes through ``.data`` are not seen. The cache
lives outside the module (a weak dictionary), so ``copy.deepcopy``, pickling and ``state_dict`` never see it; it
keeps the two most recent widths.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn.modules import module as _module

from us3l.slim.layers import SlimBatchNorm2d, SlimModule

#: Static networks kept per model (most recently used widths).
KEEP = 2

_generation = [0]
_forced_eager = [0]


@contextmanager
def eager_layers() -> Iterator[None]:
    """Inside the block, slimmable networks always run their slimmable layers (no cached static network): for
    tests that compare the two, and for measuring the layers themselves."""
    _forced_eager[0] += 1
    try:
        yield
    finally:
        _forced_eager[0] -= 1


def bump_generation() -> None:
    """Invalidate every cached static network (structure or BN statistics changed somewhere)."""
    _generation[0] += 1


def _on_registration(*_args: object) -> None:
    _generation[0] += 1


_module.register_module_module_registration_hook(_on_registration)
_module.register_module_parameter_registration_hook(_on_registration)
_module.register_module_buffer_registration_hook(_on_registration)


@dataclass
class _State:
    generation: int
    modules: list[nn.Module]
    slim: list[SlimModule]
    bns: list[SlimBatchNorm2d]
    tensors: list[torch.Tensor]
    statics: dict[tuple, tuple[tuple[int, ...], nn.Module | None]] = field(default_factory=dict)


_STATES: weakref.WeakKeyDictionary[nn.Module, _State] = weakref.WeakKeyDictionary()


def _index(model: nn.Module) -> _State:
    mods = list(model.modules())
    slim = [m for m in mods if isinstance(m, SlimModule)]
    bns = [m for m in slim if isinstance(m, SlimBatchNorm2d)]
    tensors = [*model.parameters(), *model.buffers()]
    return _State(_generation[0], mods, slim, bns, tensors)


def _global_hooks() -> bool:
    return bool(_module._global_forward_hooks or _module._global_forward_pre_hooks)


def _exporting() -> bool:
    return bool(
        torch.jit.is_tracing() or torch.jit.is_scripting() or torch.compiler.is_compiling()
        or torch.onnx.is_in_onnx_export()
    )


def cached_static(model: nn.Module) -> nn.Module | None:
    """The materialized network that computes exactly what ``model`` computes now, or ``None`` where the eager
    path must run (see the module docstring)."""
    if torch.is_grad_enabled() or model.training or _forced_eager[0]:
        return None
    if model.__dict__.get("materialized_width") is not None:
        return None
    if _global_hooks() or _exporting():
        return None
    state = _STATES.get(model)
    if state is None or state.generation != _generation[0]:
        state = _STATES[model] = _index(model)
    for m in state.modules:
        if m.training or m._forward_hooks or m._forward_pre_hooks:
            return None
    if not state.slim:
        return None
    w = state.slim[0].width
    if w is None or any(m.width != w for m in state.slim):
        return None
    keys = {bn.stats_key for bn in state.bns}
    if len(keys) > 1 or any(bn.collector is not None for bn in state.bns):
        return None
    key = (w, next(iter(keys), None))
    versions = tuple([t._version for t in state.tensors])
    hit = state.statics.get(key)
    if hit is not None and hit[0] == versions:
        state.statics[key] = state.statics.pop(key)  # most recently used last
        return hit[1]
    from us3l.slim.materialize import materialize

    static: nn.Module | None = materialize(model, w)
    if state.bns and getattr(static, "canonical_width", None) != key[1]:
        static = None  # the BN statistics the eager model uses are not the ones materialize picks: stay eager
    while len(state.statics) >= KEEP:
        state.statics.pop(next(iter(state.statics)))
    state.statics[key] = (versions, static)
    state.generation = _generation[0]  # building the static network registered modules; the model is unchanged
    return static


def drop_cached(model: nn.Module) -> None:
    """Forget ``model``'s cached static networks (its tensors were converted or replaced)."""
    _STATES.pop(model, None)
