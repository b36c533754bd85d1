"""Torch modules of the ``mednns`` space (see :mod:`medbench.spaces.mednns`): OFA-style
bottleneck ResNets, 2D or 3D, as standalone networks (one architecture each)."""

from __future__ import annotations

from torch import nn

from medbench.spaces.mednns import (
    STRIDES,
    Arch,
    mid_channels,
    stage_channels,
    stem_channels,
)


def _layers(dims: int):
    if dims == 2:
        return nn.Conv2d, nn.BatchNorm2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d
    return nn.Conv3d, nn.BatchNorm3d, nn.AvgPool3d, nn.AdaptiveAvgPool3d


def conv_bn(cin, cout, kernel, stride, dims, act=True):
    conv, bn, _, _ = _layers(dims)
    layers = [conv(cin, cout, kernel, stride=stride, padding=kernel // 2, bias=False),
              bn(cout)]
    return nn.Sequential(*layers, nn.ReLU(inplace=True)) if act else nn.Sequential(*layers)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (stride), 1x1 expand; shortcut identity or OFA's "avgpool_conv"
    (average pooling for the stride, then a 1x1 convolution and batch norm)."""

    def __init__(self, cin, cout, mid, stride, dims):
        super().__init__()
        self.body = nn.Sequential(conv_bn(cin, mid, 1, 1, dims), conv_bn(mid, mid, 3, stride, dims),
                                  conv_bn(mid, cout, 1, 1, dims, act=False))
        if cin == cout and stride == 1:
            self.shortcut = nn.Identity()
        else:
            _, _, pool, _ = _layers(dims)
            self.shortcut = nn.Sequential(
                pool(stride, stride, ceil_mode=True) if stride > 1 else nn.Identity(),
                conv_bn(cin, cout, 1, 1, dims, act=False))
        self.act = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.act(self.body(x) + self.shortcut(x))


class StemResidual(nn.Module):
    def __init__(self, c, dims):
        super().__init__()
        self.conv = conv_bn(c, c, 3, 1, dims)

    def forward(self, x):
        return x + self.conv(x)


class MedNNSResNet(nn.Module):
    def __init__(self, arch: Arch, in_channels: int, n_classes: int, dims: int = 2):
        super().__init__()
        if dims not in (2, 3):
            raise ValueError(f"mednns: dims must be 2 or 3, got {dims}")
        mid, out = stem_channels(arch.widths[0], arch.widths[1])
        stem = [conv_bn(in_channels, mid, 3, 1, dims)]
        if arch.stem:
            stem.append(StemResidual(mid, dims))
        stem.append(conv_bn(mid, out, 3, 1, dims))
        self.stem = nn.Sequential(*stem)
        blocks, cin = [], out
        for i, expands in enumerate(arch.expands):
            cout = stage_channels(i, arch.widths[2 + i])
            for j, e in enumerate(expands):
                blocks.append(Bottleneck(cin, cout, mid_channels(cout, e),
                                         STRIDES[i] if j == 0 else 1, dims))
                cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.pool = _layers(dims)[3](1)
        self.classifier = nn.Linear(cin, n_classes)
        # Every residual branch starts as the identity (its last batch norm's scale at 0), as
        # torchvision's zero_init_residual: deep networks trained from scratch stay stable.
        for m in self.modules():
            if isinstance(m, Bottleneck):
                nn.init.zeros_(m.body[2][1].weight)
            elif isinstance(m, StemResidual):
                nn.init.zeros_(m.conv[1].weight)

    def forward_features(self, x):
        return self.blocks(self.stem(x))

    def forward(self, x):
        return self.classifier(self.pool(self.forward_features(x)).flatten(1))
