"""``shapes_only()``: build networks on PyTorch's meta device (shapes and sizes, no memory, no values).

``torch.device("meta")`` alone runs each layer's initialisation on meta tensors, and ``Tensor.normal_`` on a meta
tensor goes through ``torch._refs.normal_``, whose first call imports ``torch._dynamo``: 1.7 s on a 2-core AVX2
CPU, paid by every command that checks a network's shapes before it builds it (a checkpoint's load, an export's
manifest record, a manifest's check, ``us3l train``'s memory check) whenever the network initialises a weight
with ``normal_`` (ResNet-50's ``kaiming_normal_``). On a meta tensor the draw has no values to change, so here it
is skipped: the same shapes, without the import.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

#: In-place random draws that go through Python decompositions on the meta device (``uniform_`` and the
#: deterministic fills have meta kernels and cost nothing).
_DRAWS = frozenset({torch.Tensor.normal_})


class _NoDrawsOnMeta(TorchFunctionMode):
    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        if func in _DRAWS and args and isinstance(args[0], torch.Tensor) and args[0].is_meta:
            return args[0]
        return func(*args, **(kwargs or {}))


@contextmanager
def shapes_only() -> Iterator[None]:
    """Tensors and modules created in the block are on the meta device, their random initial draws skipped."""
    with torch.device("meta"), _NoDrawsOnMeta():
        yield
