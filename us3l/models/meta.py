"""``shapes_only()``: build networks on PyTorch's meta device (shapes and sizes, no memory, no values).

``torch.device("meta")`` alone runs each layer's initialisation on meta tensors, and ``Tensor.normal_`` on a meta
tensor goes through ``torch._refs.normal_``, whose first call imports ``torch._dynamo``: 1.7-2 s on a 2-core AVX2
CPU, paid by every command that checks a network's shapes before it builds it (a checkpoint's load, an export's
manifest record, a manifest's check, ``us3l train``'s memory check) whenever the network draws a weight from a
normal distribution (ResNet-50's ``kaiming_normal_``, MobileNetV2's ``normal_``). On a meta tensor a draw has no
values to change, so here it is skipped: the same shapes, without the import. (Other arithmetic on meta tensors has
the same cost, through sympy: ViT's position table is only a shape on the meta device, and
``us3l.slim.layers._leading_block`` makes a narrow block with ``new_empty`` there.)
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

#: Random initialisations that go through Python decompositions on the meta device, as methods and as
#: ``torch.nn.init`` functions (which dispatch to the mode themselves; inside a mode's handler the mode is off, so
#: the draw they make would not be seen). ``uniform_`` and the deterministic fills have meta kernels.
_DRAWS = frozenset({
    torch.Tensor.normal_, torch.nn.init.normal_, torch.nn.init.trunc_normal_, torch.nn.init.kaiming_normal_,
    torch.nn.init.xavier_normal_, torch.nn.init.orthogonal_, torch.nn.init.sparse_,
})


class _NoDrawsOnMeta(TorchFunctionMode):
    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        if func in _DRAWS:
            tensor = args[0] if args else kwargs.get("tensor")  # torch.nn.init passes it by name
            if isinstance(tensor, torch.Tensor) and tensor.is_meta:
                return tensor
        return func(*args, **kwargs)


@contextmanager
def shapes_only() -> Iterator[None]:
    """Tensors and modules created in the block are on the meta device, their random initial draws skipped."""
    with torch.device("meta"), _NoDrawsOnMeta():
        yield
