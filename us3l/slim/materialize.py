"""``materialize(model, w)``: the one weight copy at width ``w`` as a static network of standard layers.

Exporters and profilers only ever see this network. It is a deep, independent copy: slimmable layers are
replaced by ``nn.Conv2d`` / ``nn.Linear`` / ``nn.BatchNorm2d`` holding sliced weights and that width's BN
statistics; the containers (blocks, stems) are kept, so the forward code is the same as the dynamic model's.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from us3l.errors import US3LError
from us3l.slim.context import canonical_width, channel_config, slim_modules, width_range_of
from us3l.slim.layers import (
    NHWCTrainingConv2d,
    SlimBatchNorm2d,
    SlimConv2d,
    SlimLinear,
    SlimModule,
    _strided_1x1_narrow,
)
from us3l.validate import require_types


class FirstFeatures(nn.Module):
    """Keeps the first ``k`` features of the last dimension (a single ONNX ``Slice``).

    Needed where the reference slices a layer's *input* (ViT block Linears read the first channels of a
    full-width residual stream).
    """

    def __init__(self, k: int) -> None:
        super().__init__()
        self.k = k

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[..., : self.k]

    def extra_repr(self) -> str:
        return f"k={self.k}"


def _holding(module: nn.Module, **params: torch.Tensor | None) -> nn.Module:
    """``module`` (built on the meta device: no memory, no initialisation) given its parameters: a contiguous copy
    of each tensor of ``params``, in the slimmable layer's device and dtype (a CUDA or float64 model stays so).

    Not ``torch.nn.utils.skip_init``: its ``to_empty`` goes through ``torch._refs.empty_like``, whose first call
    imports torch's symbolic-shapes machinery, ~0.7 s of every ``us3l export`` on a 2-core AVX2 CPU (cProfile).
    """
    for name, t in params.items():
        if t is not None:
            setattr(module, name, nn.Parameter(t.detach().clone(memory_format=torch.contiguous_format)))
    return module


def _static_conv(m: SlimConv2d, w: float) -> nn.Conv2d:
    cin, cout, groups = m.active_channels(w)
    weight, bias, groups = m.sliced(w)
    conv = nn.Conv2d(cin, cout, m.kernel_size, m.stride, m.padding, m.dilation, groups, bias=bias is not None,
                     device="meta")
    return _holding(conv, weight=weight, bias=bias)


def _static_linear(m: SlimLinear, w: float) -> nn.Module:
    cin, cout = m.active_features(w)
    lin = _holding(nn.Linear(cin, cout, bias=m.bias is not None, device="meta"), weight=m.weight[:cout, :cin],
                   bias=None if m.bias is None else m.bias[:cout])
    if m.slice_input and cin < m.in_features:
        return nn.Sequential(FirstFeatures(cin), lin)
    return lin


def _static_bn(m: SlimBatchNorm2d, w: float, key: float, require_stats: bool, name: str) -> nn.BatchNorm2d:
    c = m.active_channels(w)
    stats = m.eval_stats(w, key)
    if stats is None and require_stats:
        raise US3LError(
            f"width {w:g} has no calibrated BN statistics (layer {name}); calibrate it first "
            f"(us3l calibrate --ckpt RUN --widths {w:g}, with --data SPEC unless the run trained on built-in data)"
        )
    weight, bias = m.affine(w)  # the shared affine's first c channels, or the switch's private affine (S-Nets)
    # running statistics in the affine's dtype, as nn.BatchNorm2d keeps them (calibrated ones are float32)
    bn = nn.BatchNorm2d(c, eps=m.eps, momentum=m.momentum, track_running_stats=stats is not None, device=weight.device,
                        dtype=weight.dtype)
    with torch.no_grad():
        bn.weight.copy_(weight)
        bn.bias.copy_(bias)
        if stats is not None:
            bn.running_mean.copy_(stats[0])
            bn.running_var.copy_(stats[1])
    return bn


def _replace(root: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, attr = name.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, attr, new)


def materialize(model: nn.Module, w: float, require_bn_stats: bool = False) -> nn.Module:
    """Return a static, independent copy of ``model`` at width ``w`` (in eval mode).

    BN layers get the calibrated statistics of ``w`` (or sliced running statistics where the model tracks
    them). Without either, ``require_bn_stats=True`` raises ``US3LError``; otherwise the static BN
    normalises with batch statistics, exactly like the dynamic model in eval mode. An S-Nets model
    (switchable BN) materializes only at its switches, each with that switch's private affine and statistics;
    another width raises ``US3LError``.
    """
    require_types("require_bn_stats", require_bn_stats, bool)
    wr = width_range_of(model)
    w = wr.check(w)
    key = canonical_width(model, w)  # S-Nets: the switch itself; another width is refused here
    config = channel_config(model, w)
    originals = list(slim_modules(model))
    # Copy everything but the slimmable layers (placeholders stand in for them): their full weights and every
    # width's calibrated statistics would otherwise be deep-copied only to be thrown away, which made
    # materializing a 378-width ResNet-50 grid quadratic in the number of calibrated widths.
    memo: dict[int, object] = {id(m): nn.Identity() for _, m in originals}
    static = copy.deepcopy(model, memo)
    static.__dict__.pop("_us3l_grid_cache", None)
    for name, m in originals:  # static layers are built from the originals into fresh tensors
        new: nn.Module
        if isinstance(m, SlimConv2d):
            new = _static_conv(m, w)
        elif isinstance(m, SlimLinear):
            new = _static_linear(m, w)
        elif isinstance(m, SlimBatchNorm2d):
            new = _static_bn(m, w, key, require_bn_stats, name)
        else:  # pragma: no cover - every slimmable layer type is handled above
            raise TypeError(f"cannot materialize {type(m).__name__}")
        new.train(m.training)
        _replace(static, name, new)
    for m in static.modules():
        if "width_range" in m.__dict__:
            m.width_range = None
    static.materialized_width = w
    static.canonical_width = key
    static.channel_config = config
    assert not any(isinstance(m, SlimModule) for m in static.modules())
    return static.eval()


def nhwc_training_safe(net: nn.Module) -> nn.Module:
    """``net`` (a static network, e.g. ``materialize``'s) with, in place, each ``nn.Conv2d`` that oneDNN issue 6035
    can hit (``us3l.slim.layers._strided_1x1_nhwc_narrow``: 1x1, strided, fewer than 16 input channels) swapped for
    an ``NHWCTrainingConv2d`` on the same parameters, which trains on a channels_last input through the unit-stride
    kernel as ``SlimConv2d`` does (the strided kernel corrupts the heap: crashes at 3, 5 or 6 threads on 2 cores).
    Same outputs and gradients. For training only: export ``materialize``'s network, not this one."""
    for name, m in list(net.named_modules()):
        if type(m) is nn.Conv2d and _strided_1x1_narrow(m.weight, m.stride, m.padding, m.groups):  # type: ignore[arg-type]
            conv = NHWCTrainingConv2d(m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding, m.dilation,
                                      m.groups, bias=m.bias is not None, padding_mode=m.padding_mode, device="meta")
            conv.weight, conv.bias = m.weight, m.bias  # the same parameters, not copies
            conv.train(m.training)
            _replace(net, name, conv)
    return net
