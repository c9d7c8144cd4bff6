"""Slimmable ResNets (method.md §5): CIFAR variants (3×3 stem, no max-pool) and ImageNet (torchvision v1.5)."""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from functools import partial

import torch
from torch import nn

from us3l.models.base import SlimNet
from us3l.models.registry import register_model
from us3l.slim.layers import SlimBatchNorm2d, SlimConv2d, SlimLinear
from us3l.slim.rounding import WidthRange
from us3l.validate import require_types


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inp: int, planes: int, stride: int, conv: partial, bn: partial) -> None:
        super().__init__()
        self.conv1 = conv(inp, planes, 3, stride, 1)
        self.bn1 = bn(planes)
        self.conv2 = conv(planes, planes, 3, 1, 1)
        self.bn2 = bn(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module | None = None
        if stride != 1 or inp != planes:
            self.downsample = nn.Sequential(conv(inp, planes, 1, stride, 0), bn(planes))

    def last_bn(self) -> SlimBatchNorm2d:
        return self.bn2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inp: int, planes: int, stride: int, conv: partial, bn: partial) -> None:
        super().__init__()
        out = planes * self.expansion
        self.conv1 = conv(inp, planes, 1, 1, 0)
        self.bn1 = bn(planes)
        self.conv2 = conv(planes, planes, 3, stride, 1)  # v1.5: stride on the 3×3
        self.bn2 = bn(planes)
        self.conv3 = conv(planes, out, 1, 1, 0)
        self.bn3 = bn(out)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module | None = None
        if stride != 1 or inp != out:
            self.downsample = nn.Sequential(conv(inp, out, 1, stride, 0), bn(out))

    def last_bn(self) -> SlimBatchNorm2d:
        return self.bn3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class SlimResNet(SlimNet):
    """A universally slimmable ResNet; every conv and BN (downsample path included) is slimmable.

    ``cifar=True``: 3×3 stride-1 stem, no max-pool (32×32 inputs); the reference's ``avg_pool2d(out, 4)`` is
    an adaptive average pool here (identical at 32×32, and it also accepts other sizes).
    ``base_channels`` scales the four stages (64/128/256/512 by default) for small experiments.
    ``bn_switches`` (e.g. ``[1.0, 0.75, 0.5, 0.25]``) makes every BN switchable (S-Nets: a private BN per switch
    width, the model then runs only at those widths; see ``us3l.slim.SlimBatchNorm2d``).
    """

    def __init__(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        layers: tuple[int, int, int, int],
        width_range: WidthRange,
        cifar: bool,
        num_classes: int = 0,
        bn_track_stats: bool = False,
        zero_init_residual: bool = False,
        base_channels: int = 64,
        bn_switches: Sequence[float] | None = None,
    ) -> None:
        super().__init__(width_range)
        require_types("bn_track_stats", bn_track_stats, bool)
        require_types("zero_init_residual", zero_init_residual, bool)
        require_types("base_channels", base_channels, numbers.Integral)  # 16.0 reached torch.empty
        if base_channels < 8 or base_channels % 8:
            raise ValueError(f"base_channels must be a positive multiple of 8, got {base_channels}")
        self.input_size = 32 if cifar else 224
        conv = partial(SlimConv2d, width_range=width_range)
        bn = partial(
            SlimBatchNorm2d, track_running_stats=bn_track_stats, width_range=width_range, switches=bn_switches
        )
        c = base_channels
        if cifar:
            self.conv1 = SlimConv2d(3, c, 3, 1, 1, slim_in=False, width_range=width_range)
            self.maxpool: nn.Module = nn.Identity()
        else:
            self.conv1 = SlimConv2d(3, c, 7, 2, 3, slim_in=False, width_range=width_range)
            self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.bn1 = bn(c)
        self.relu = nn.ReLU(inplace=True)
        inp = c
        stages = []
        for i, n in enumerate(layers):
            planes = c * 2**i
            blocks = []
            for j in range(n):
                stride = 2 if (i > 0 and j == 0) else 1
                blocks.append(block(inp, planes, stride, conv, bn))
                inp = planes * block.expansion
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.num_features = inp
        if num_classes > 0:
            self.head = SlimLinear(inp, num_classes, slim_in=True, slim_out=False, width_range=width_range)
        if not cifar:  # torchvision init; the CIFAR reference keeps PyTorch's default init
            for m in self.modules():
                if isinstance(m, SlimConv2d):
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                elif isinstance(m, SlimBatchNorm2d):
                    for p in m.affine_weights():
                        nn.init.ones_(p)
                    for p in m.affine_biases():
                        nn.init.zeros_(p)
            if zero_init_residual:
                for m in self.modules():
                    if isinstance(m, BasicBlock | Bottleneck):
                        for p in m.last_bn().affine_weights():
                            nn.init.zeros_(p)

    def feature_dim(self, w: float) -> int:
        return self.width_range.channels(self.num_features, self.width_range.check(w))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.avgpool(x), 1)


@register_model("cifar_resnet18", "ResNet-18, CIFAR stem (3×3, stride 1, no max-pool)", 32)
def cifar_resnet18(width_range: WidthRange, **kw: object) -> SlimResNet:
    return SlimResNet(BasicBlock, (2, 2, 2, 2), width_range, cifar=True, **kw)  # type: ignore[arg-type]


@register_model("cifar_resnet50", "ResNet-50, CIFAR stem (3×3, stride 1, no max-pool)", 32)
def cifar_resnet50(width_range: WidthRange, **kw: object) -> SlimResNet:
    return SlimResNet(Bottleneck, (3, 4, 6, 3), width_range, cifar=True, **kw)  # type: ignore[arg-type]


@register_model("resnet18", "ResNet-18, ImageNet layout (torchvision)", 224)
def resnet18(width_range: WidthRange, **kw: object) -> SlimResNet:
    return SlimResNet(BasicBlock, (2, 2, 2, 2), width_range, cifar=False, **kw)  # type: ignore[arg-type]


@register_model("resnet50", "ResNet-50 v1.5, ImageNet layout (torchvision)", 224)
def resnet50(width_range: WidthRange, **kw: object) -> SlimResNet:
    return SlimResNet(Bottleneck, (3, 4, 6, 3), width_range, cifar=False, **kw)  # type: ignore[arg-type]
