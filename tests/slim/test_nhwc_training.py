"""``nhwc_training_safe``: a static network trains in NHWC around oneDNN issue 6035 (the strided 1x1 weight-gradient
kernel for fewer than 16 input channels corrupts the heap), with the plain network's outputs and gradients, while
``materialize`` (what exporters get) keeps the plain strided ``nn.Conv2d``."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tests.onednn_6035 import Strided1x1NHWCTraining, assert_trains_nhwc_with_3_threads
from us3l.models import create_model
from us3l.slim import materialize, nhwc_training_safe
from us3l.slim.layers import NHWCTrainingConv2d

NARROW = 0.5  # the built-in network with 16 base channels: layer2's downsample reads 8 channels here


def _static(w: float = NARROW) -> nn.Module:
    torch.manual_seed(0)
    return materialize(create_model("cifar_resnet18", num_classes=0, base_channels=16), w).train()


def test_only_the_narrow_strided_1x1_convolutions_are_swapped_onto_the_same_parameters() -> None:
    net = _static()
    params = dict(net.named_parameters())
    assert all(type(m) is nn.Conv2d for m in net.modules() if isinstance(m, nn.Conv2d))  # materialize: plain
    assert nhwc_training_safe(net) is net  # in place
    swapped = [n for n, m in net.named_modules() if isinstance(m, NHWCTrainingConv2d)]
    assert swapped == ["layer2.0.downsample.0"]  # 8 input channels; layer3's (16) and layer4's (32) are not narrow
    conv = net.get_submodule("layer2.0.downsample.0")
    assert (conv.in_channels, conv.out_channels, conv.stride, conv.padding) == (8, 16, (2, 2), (0, 0))
    assert conv.training
    new = dict(net.named_parameters())
    assert new.keys() == params.keys() and all(new[k] is params[k] for k in params)  # an optimizer's still apply


def test_nhwc_training_gives_the_plain_nchw_outputs_and_gradients_through_the_unit_stride_kernel() -> None:
    x = torch.randn(8, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    ref = _static()
    y_ref = ref(x)
    y_ref.square().mean().backward()
    plain = _static().to(memory_format=torch.channels_last)
    net = nhwc_training_safe(_static().to(memory_format=torch.channels_last))
    x_cl = x.contiguous(memory_format=torch.channels_last)
    with Strided1x1NHWCTraining() as guard:
        plain(x_cl)
    assert len(guard.hits) == 1  # the plain network takes the kernel (the guard sees it)
    with Strided1x1NHWCTraining() as guard:
        y = net(x_cl)
        y.square().mean().backward()
    assert guard.hits == []
    torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-5)
    grads = {n: p.grad for n, p in net.named_parameters()}
    for n, p in ref.named_parameters():
        assert p.grad is not None and grads[n] is not None, n
        torch.testing.assert_close(grads[n], p.grad, rtol=1e-4, atol=1e-5, msg=n)
    with torch.no_grad():  # without autograd the strided convolution runs as it is (the forward kernel is fine)
        torch.testing.assert_close(net.eval()(x_cl), ref.eval()(x), rtol=1e-5, atol=1e-5)


@pytest.mark.slow  # 4.5 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_a_static_network_trains_nhwc_with_3_threads_without_corrupting_the_heap() -> None:
    """The materialized narrow network in NHWC crashed within a few steps at 3 threads on this 2-core AVX-512 VM
    (139, or 134 "free(): invalid next size"), as the slim layer did before ``_unit_stride_input``."""
    assert_trains_nhwc_with_3_threads(
        "from us3l.models import create_model\n"
        "from us3l.slim import materialize, nhwc_training_safe\n"
        "model = create_model('cifar_resnet18', num_classes=0, base_channels=16)\n"
        f"net = nhwc_training_safe(materialize(model, {NARROW}).train().to(memory_format=torch.channels_last))\n",
        (16, 3, 16, 16), steps=20)
