"""Torch modules of the ``mstf`` space (see :mod:`medbench.spaces.mstf` for the layout).

Operations follow DARTS (ReLU-conv-BN ordering, separable convolutions applied twice,
dilated convolutions with dilation 2, a factorized reduce where a cell's earlier input has
twice the resolution); 2D or 3D by ``dims``.
"""

from __future__ import annotations

import torch
from torch import nn

from medbench.spaces.mstf import OPS, POOLS, Arch

_NAMES = {v: k for k, v in OPS.items()}


def _conv(dims):
    return nn.Conv2d if dims == 2 else nn.Conv3d


def _bn(dims):
    return nn.BatchNorm2d if dims == 2 else nn.BatchNorm3d


def _pool(kind: str, dims: int):
    if kind == "max":
        return nn.MaxPool2d if dims == 2 else nn.MaxPool3d
    return nn.AvgPool2d if dims == 2 else nn.AvgPool3d


class ReLUConvBN(nn.Sequential):
    def __init__(self, c_in, c_out, dims):
        super().__init__(nn.ReLU(inplace=False), _conv(dims)(c_in, c_out, 1, bias=False),
                         _bn(dims)(c_out))


class DilConv(nn.Sequential):
    def __init__(self, c_in, c_out, kernel, dilation, dims):
        pad = dilation * (kernel - 1) // 2
        super().__init__(nn.ReLU(inplace=False),
                         _conv(dims)(c_in, c_in, kernel, padding=pad, dilation=dilation,
                                     groups=c_in, bias=False),
                         _conv(dims)(c_in, c_out, 1, bias=False), _bn(dims)(c_out))


class SepConv(nn.Sequential):
    def __init__(self, c_in, c_out, kernel, dims):
        super().__init__(DilConv(c_in, c_in, kernel, 1, dims),
                         DilConv(c_in, c_out, kernel, 1, dims))


class Zero(nn.Module):
    def forward(self, x):
        return x.mul(0.0)


class FactorizedReduce(nn.Module):
    """Halve the resolution with two offset stride-2 1x1 convolutions (DARTS)."""

    def __init__(self, c_in, c_out, dims):
        super().__init__()
        self.relu = nn.ReLU(inplace=False)
        self.a = _conv(dims)(c_in, c_out // 2, 1, stride=2, bias=False)
        self.b = _conv(dims)(c_in, c_out - c_out // 2, 1, stride=2, bias=False)
        self.bn = _bn(dims)(c_out)
        self.dims = dims

    def forward(self, x):
        x = self.relu(x)
        shifted = x[(...,) + (slice(1, None),) * self.dims]
        a, b = self.a(x), self.b(shifted)
        if b.shape[2:] != a.shape[2:]:  # odd sizes: pad the shifted branch back
            pad = [0, 0] * self.dims
            for d in range(self.dims):
                pad[2 * d + 1] = a.shape[-1 - d] - b.shape[-1 - d]
            b = nn.functional.pad(b, pad)
        return self.bn(torch.cat([a, b], dim=1))


def make_op(code: str, c: int, dims: int) -> nn.Module:
    """A normal-cell operation (stride 1, ``c`` channels in and out)."""
    name = _NAMES[code]
    if name == "none":
        return Zero()
    if name == "skip_connect":
        return nn.Identity()
    if name in ("max_pool_3x3", "avg_pool_3x3"):
        kind = "max" if name.startswith("max") else "avg"
        kwargs = {} if kind == "max" else {"count_include_pad": False}
        return _pool(kind, dims)(3, stride=1, padding=1, **kwargs)
    kernel = int(name[-1])
    if name.startswith("sep_conv"):
        return SepConv(c, c, kernel, dims)
    return DilConv(c, c, kernel, 2, dims)


class NormalCell(nn.Module):
    def __init__(self, arch: Arch, c_pp, c_p, c, reduced_prev: bool, dims: int):
        super().__init__()
        self.pre0 = FactorizedReduce(c_pp, c, dims) if reduced_prev else ReLUConvBN(c_pp, c, dims)
        self.pre1 = ReLUConvBN(c_p, c, dims)
        self.inputs = [(j1, j2) for (_, j1), (_, j2) in arch.normal]
        self.ops = nn.ModuleList(make_op(op, c, dims) for node in arch.normal for op, _ in node)

    def forward(self, s0, s1):
        states = [self.pre0(s0), self.pre1(s1)]
        for i, (j1, j2) in enumerate(self.inputs):
            states.append(self.ops[2 * i](states[j1]) + self.ops[2 * i + 1](states[j2]))
        return torch.cat(states[2:], dim=1)


class MultiscaleReductionCell(nn.Module):
    """Four pooling operations of different kinds and sizes at stride 2, concatenated, then a
    1x1 convolution and batch norm to ``c_out`` channels."""

    def __init__(self, arch: Arch, c_p, c_out, dims):
        super().__init__()
        pools = []
        for code in arch.reduce:
            kind, k = POOLS[code]
            kwargs = {} if kind == "max" else {"count_include_pad": False}
            pools.append(_pool(kind, dims)(k, stride=2, padding=(k - 1) // 2, **kwargs))
        self.pools = nn.ModuleList(pools)
        self.mix = nn.Sequential(nn.ReLU(inplace=False),
                                 _conv(dims)(4 * c_p, c_out, 1, bias=False), _bn(dims)(c_out))

    def forward(self, s0, s1):
        return self.mix(torch.cat([p(s1) for p in self.pools], dim=1))


class MSTFNetwork(nn.Module):
    def __init__(self, arch: Arch, in_channels: int, n_classes: int, dims: int = 2,
                 channels: int = 16, layers: int = 8):
        super().__init__()
        if dims not in (2, 3):
            raise ValueError(f"mstf: dims must be 2 or 3, got {dims}")
        c_curr = 3 * channels
        self.stem = nn.Sequential(_conv(dims)(in_channels, c_curr, 3, padding=1, bias=False),
                                  _bn(dims)(c_curr))
        c_pp, c_p, c = c_curr, c_curr, channels
        self.cells = nn.ModuleList()
        reduced_prev = False
        for i in range(layers):
            if i in (layers // 3, 2 * layers // 3):
                c *= 2
                cell = MultiscaleReductionCell(arch, c_p, len(arch.normal) * c, dims)
                reduced = True
            else:
                cell = NormalCell(arch, c_pp, c_p, c, reduced_prev, dims)
                reduced = False
            self.cells.append(cell)
            reduced_prev = reduced
            c_pp, c_p = c_p, len(arch.normal) * c
        self.pool = nn.AdaptiveAvgPool2d(1) if dims == 2 else nn.AdaptiveAvgPool3d(1)
        self.classifier = nn.Linear(c_p, n_classes)

    def forward_features(self, x):
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1)
        return s1

    def forward(self, x):
        return self.classifier(self.pool(self.forward_features(x)).flatten(1))
