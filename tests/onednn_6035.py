"""A guard for the tests of code that trains static networks: which training convolutions would take oneDNN's strided
1x1 NHWC weight-gradient kernel (issue 6035, ``us3l.slim.layers._strided_1x1_nhwc_narrow``), which corrupts the heap
at some thread counts. Counting them does not depend on the machine: a run that never crashes here still would
elsewhere."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch.nn.modules.utils import _pair
from torch.overrides import TorchFunctionMode

from us3l.slim.layers import _strided_1x1_nhwc_narrow

_CONV2D = {torch.conv2d, F.conv2d}


def _conv_args(
    input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, stride: object = 1,
    padding: object = 0, dilation: object = 1, groups: int = 1,
) -> tuple[torch.Tensor, torch.Tensor, object, object, int]:
    return input, weight, stride, padding, groups


class Strided1x1NHWCTraining(TorchFunctionMode):
    """Within it, ``hits`` lists (input shape, weight shape, stride) of each ``conv2d`` call with autograd on for
    its weight that ``_strided_1x1_nhwc_narrow`` matches."""

    def __init__(self) -> None:
        super().__init__()
        self.hits: list[tuple[tuple[int, ...], tuple[int, ...], tuple[int, int]]] = []

    def __torch_function__(self, func: Callable, types: tuple, args: tuple = (), kwargs: dict | None = None) -> object:
        kwargs = kwargs or {}
        if func in _CONV2D and torch.is_grad_enabled():
            x, weight, stride, padding, groups = _conv_args(*args, **kwargs)
            if weight.requires_grad and _strided_1x1_nhwc_narrow(weight, _pair(stride), _pair(padding), groups, x):
                self.hits.append((tuple(x.shape), tuple(weight.shape), _pair(stride)))
        return func(*args, **kwargs)
