"""A guard for the tests of code that trains static networks: which training convolutions would take oneDNN's strided
1x1 NHWC weight-gradient kernel (issue 6035, ``us3l.slim.layers._strided_1x1_nhwc_narrow``), which corrupts the heap
at some thread counts. Counting them does not depend on the machine: a run that never crashes here still would
elsewhere."""

from __future__ import annotations

import subprocess
import sys
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


def assert_trains_nhwc_with_3_threads(setup: str, input_shape: tuple[int, ...], steps: int) -> None:
    """Run ``setup`` (Python lines that define ``net``), then ``steps`` training steps of ``net`` on random
    channels_last inputs of ``input_shape``, with 3 intra-op threads (a count that corrupted the heap on a 2-core
    AVX-512 machine), in a fresh process: it must finish (a crash exits 134 or 139)."""
    code = (
        "import torch\n"
        "torch.set_num_threads(3)\n"
        f"{setup}"
        f"for _ in range({steps}):\n"
        f"    x = torch.randn{input_shape}.contiguous(memory_format=torch.channels_last)\n"
        "    net(x).square().mean().backward()\n"
        "print('ok')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout == "ok\n", (proc.returncode, proc.stderr[-500:])
