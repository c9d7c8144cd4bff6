"""Slimmable MobileNetV2 (method.md §5): expansion channels stay t × the slimmed input channels."""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import partial

import torch
from torch import nn

from us3l.models.base import SlimNet
from us3l.models.registry import register_model
from us3l.slim.layers import SlimBatchNorm2d, SlimConv2d
from us3l.slim.rounding import WidthRange
from us3l.validate import number, require_types

# (expansion t, output channels c, repeats n, stride s)
_SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


class InvertedResidual(nn.Module):
    def __init__(self, inp: int, oup: int, stride: int, t: int, conv: partial, bn: partial) -> None:
        super().__init__()
        hidden = inp * t
        self.use_residual = stride == 1 and inp == oup
        layers: list[nn.Module] = []
        if t != 1:
            layers += [conv(inp, hidden, 1, 1, 0, ratio=(1, t)), bn(hidden, ratio=t), nn.ReLU6(inplace=True)]
        layers += [
            conv(hidden, hidden, 3, stride, 1, depthwise=True, ratio=(t, t)),
            bn(hidden, ratio=t),
            nn.ReLU6(inplace=True),
            conv(hidden, oup, 1, 1, 0, ratio=(t, 1)),
            bn(oup),
        ]
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x)
        return x + out if self.use_residual else out


class SlimMobileNetV2(SlimNet):
    """MobileNetV2 with slimmable stem and blocks; the last 1×1 conv to 1280 keeps its output (and its BN)
    full, as in the reference. The reference's plain ``BatchNorm2d(1280)`` is a non-slimmed
    ``SlimBatchNorm2d`` here so that it too gets statistics per width (deviation: documented in docs/).
    ``cifar=True`` uses stride 1 in the stem and in the 24-channel stage (32×32 inputs).
    ``bn_switches`` makes every BN switchable (S-Nets), the last one included (a private affine per switch).
    """

    def __init__(
        self,
        width_range: WidthRange,
        cifar: bool,
        num_classes: int = 0,
        bn_track_stats: bool = False,
        last_channels: int = 1280,
        bn_switches: Sequence[float] | None = None,
    ) -> None:
        super().__init__(width_range)
        require_types("bn_track_stats", bn_track_stats, bool)
        number(last_channels, "last_channels", positive=True, integer=True)
        self.input_size = 32 if cifar else 224
        conv = partial(SlimConv2d, width_range=width_range)
        bn = partial(
            SlimBatchNorm2d, track_running_stats=bn_track_stats, width_range=width_range, switches=bn_switches
        )
        inp = 32
        features: list[nn.Module] = [
            nn.Sequential(
                SlimConv2d(3, inp, 3, 1 if cifar else 2, 1, slim_in=False, width_range=width_range),
                bn(inp),
                nn.ReLU6(inplace=True),
            )
        ]
        for t, c, n, s in _SETTINGS:
            if cifar and c == 24:
                s = 1
            for i in range(n):
                features.append(InvertedResidual(inp, c, s if i == 0 else 1, t, conv, bn))
                inp = c
        features.append(
            nn.Sequential(
                SlimConv2d(inp, last_channels, 1, 1, 0, slim_out=False, width_range=width_range),
                bn(last_channels, slim=False),
                nn.ReLU6(inplace=True),
            )
        )
        self.features = nn.Sequential(*features)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.num_features = last_channels
        if num_classes > 0:
            self.head = nn.Linear(last_channels, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, SlimConv2d):
                n = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / n))
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, SlimBatchNorm2d):
                for p in m.affine_weights():
                    nn.init.ones_(p)
                for p in m.affine_biases():
                    nn.init.zeros_(p)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.01)
                nn.init.zeros_(m.bias)

    def feature_dim(self, w: float) -> int:
        self.width_range.check(w)
        return self.num_features

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.avgpool(self.features(x)), 1)


@register_model("mobilenetv2", "MobileNetV2, ImageNet layout", 224)
def mobilenetv2(width_range: WidthRange, **kw: object) -> SlimMobileNetV2:
    return SlimMobileNetV2(width_range, cifar=False, **kw)  # type: ignore[arg-type]


@register_model("cifar_mobilenetv2", "MobileNetV2, CIFAR strides (stem and 24-channel stage stride 1)", 32)
def cifar_mobilenetv2(width_range: WidthRange, **kw: object) -> SlimMobileNetV2:
    return SlimMobileNetV2(width_range, cifar=True, **kw)  # type: ignore[arg-type]
