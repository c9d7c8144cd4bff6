"""The weight block a slim convolution trains with (``_leading_block``): the slices' values and gradients, bit for
bit, in one autograd node and one dense tensor."""

from __future__ import annotations

import pytest
import torch

from us3l.slim.layers import SlimConv2d, _leading_block
from us3l.slim.rounding import WidthRange


@pytest.mark.parametrize("fmt", [torch.contiguous_format, torch.channels_last])
def test_leading_block_equals_slicing_in_value_and_gradient(fmt: torch.memory_format) -> None:
    torch.manual_seed(0)
    base = torch.randn(12, 10, 3, 3).contiguous(memory_format=fmt)
    a = base.clone().requires_grad_()
    b = base.clone().requires_grad_()
    g = torch.randn(5, 4, 3, 3)
    block = _leading_block(a, (5, 4))
    assert torch.equal(block, b[:5, :4])
    assert block.is_contiguous(memory_format=fmt)  # dense, in the parameter's memory format
    assert type(block.grad_fn).__name__ == "ConstantPadNdBackward0"
    assert block.grad_fn.next_functions[0][0].variable is a  # one node straight to the parameter
    (block * g).sum().backward()
    (b[:5, :4] * g).sum().backward()
    assert a.grad is not None and b.grad is not None
    assert torch.equal(a.grad, b.grad)
    assert a.grad.abs()[5:].sum() == 0 and a.grad.abs()[:, 4:].sum() == 0


def test_leading_block_of_the_full_shape_and_of_leading_dims_only() -> None:
    t = torch.arange(24.0).reshape(4, 3, 2)
    assert torch.equal(_leading_block(t, (4, 3, 2)), t)
    assert torch.equal(_leading_block(t, (2,)), t[:2])


@pytest.mark.parametrize("depthwise", [False, True])
def test_slim_conv_training_gradients_equal_the_slices(depthwise: bool) -> None:
    """A training forward at a sub-width gives the same output and parameter gradients as convolving the plain
    slices (the code before ``_leading_block``)."""
    torch.manual_seed(1)
    conv = SlimConv2d(16, 16, 3, padding=1, bias=True, depthwise=depthwise, width_range=WidthRange(0.25, 1.0, 8))
    x = torch.randn(2, 8, 5, 5)
    conv.width = 0.5  # what ``us3l.slim.width(model, 0.5)`` sets in every slim layer
    y = conv(x)
    y.square().sum().backward()
    assert conv.weight.grad is not None and conv.bias is not None and conv.bias.grad is not None
    w_ref = conv.weight.detach().clone().requires_grad_()
    b_ref = conv.bias.detach().clone().requires_grad_()
    ws = w_ref[:8] if depthwise else w_ref[:8, :8]
    y_ref = torch.conv2d(x, ws, b_ref[:8], 1, 1, 1, 8 if depthwise else 1)
    y_ref.square().sum().backward()
    assert torch.equal(y, y_ref)
    assert w_ref.grad is not None and b_ref.grad is not None
    assert torch.equal(conv.weight.grad, w_ref.grad)
    assert torch.equal(conv.bias.grad, b_ref.grad)


def test_a_strided_1x1_convolution_of_a_narrow_nhwc_input_trains_through_the_unit_stride_kernel() -> None:
    """oneDNN's strided 1x1 weight-gradient kernel corrupts the heap for channels_last inputs of fewer than 16
    channels (``_strided_1x1_nhwc_narrow``). A slim 1x1 stride-2 convolution in training subsamples instead:
    the same output and gradients as the NCHW convolution (which takes another kernel)."""
    from us3l.slim.layers import _strided_1x1_nhwc_narrow

    torch.manual_seed(2)
    conv = SlimConv2d(16, 32, 1, stride=2, width_range=WidthRange(0.25, 1.0, 8))
    conv.width = 0.5  # 8 input channels: the case
    x = torch.randn(4, 8, 9, 9)
    g = torch.randn(4, 16, 5, 5)
    x_cl = x.contiguous(memory_format=torch.channels_last).requires_grad_()
    y = conv(x_cl)
    y.backward(g.contiguous(memory_format=torch.channels_last))
    w_ref = conv.weight.detach().clone().requires_grad_()
    x_ref = x.clone().requires_grad_()
    y_ref = torch.conv2d(x_ref, w_ref[:16, :8], None, 2)
    y_ref.backward(g)
    torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-5)
    assert conv.weight.grad is not None and w_ref.grad is not None and x_cl.grad is not None
    torch.testing.assert_close(conv.weight.grad, w_ref.grad, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(x_cl.grad, x_ref.grad, rtol=1e-5, atol=1e-5)
    w8 = torch.empty(16, 8, 1, 1)
    cl = x.contiguous(memory_format=torch.channels_last)
    assert _strided_1x1_nhwc_narrow(w8, (2, 2), (0, 0), 1, cl)
    assert not _strided_1x1_nhwc_narrow(w8, (2, 2), (0, 0), 1, x)  # NCHW: another kernel
    assert not _strided_1x1_nhwc_narrow(w8, (1, 1), (0, 0), 1, cl)  # unit stride
    assert not _strided_1x1_nhwc_narrow(torch.empty(16, 16, 1, 1), (2, 2), (0, 0), 1,
                                        torch.randn(4, 16, 9, 9).contiguous(memory_format=torch.channels_last))
    assert not _strided_1x1_nhwc_narrow(torch.empty(16, 8, 3, 3), (2, 2), (1, 1), 1, cl)  # not 1x1


@pytest.mark.slow  # 4.1 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_training_a_narrow_strided_1x1_nhwc_convolution_with_3_threads_does_not_corrupt_the_heap() -> None:
    """Found 2026-12-07 (`us3l train --threads 3` on 2 cores exited 134 "free(): invalid next size" or 139): the
    layer trains 200 steps with 3 intra-op threads in a fresh process; before, it crashed within a few."""
    from tests.onednn_6035 import assert_trains_nhwc_with_3_threads

    assert_trains_nhwc_with_3_threads(
        "from us3l.slim.layers import SlimConv2d\n"
        "from us3l.slim.rounding import WidthRange\n"
        "net = SlimConv2d(16, 32, 1, stride=2, width_range=WidthRange(0.25, 1.0, 8))\n"
        "net = net.to(memory_format=torch.channels_last)\n"
        "net.width = 0.5\n",
        (8, 8, 16, 16), steps=200)
