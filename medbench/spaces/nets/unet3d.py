"""Torch side of the ``unet3d`` space: the network, built from MONAI's U-Net blocks.

Imported only by :func:`medbench.spaces.unet3d.build` (needs the ``build`` extra).
"""

from __future__ import annotations

import torch
from monai.networks.blocks import Convolution, ResidualUnit
from monai.networks.blocks.dynunet_block import (
    UnetBasicBlock,
    UnetOutBlock,
    UnetResBlock,
    get_conv_layer,
)
from torch import nn

from medbench.spaces import unet3d

#: Instance norm without learnable scale and shift (version 1, MONAI's default) or with them
#: (version 2, as the DynUNet reference): see :mod:`medbench.spaces.unet3d`.
NORMS = {False: "instance", True: ("instance", {"affine": True})}
# PReLU, as MONAI's UNet: with LeakyReLU(0.01) after non-affine instance norm these U-Nets
# collapsed to one foreground class on MSD hippocampus (measured; see DATASHEET.md).
ACT = "prelu"


def _block(residual: int, cin: int, cout: int, kernel: int, stride: int,
           affine: bool = False, convs: int = 2) -> nn.Module:
    norm = NORMS[affine]
    if convs == 2:
        cls = UnetResBlock if residual else UnetBasicBlock
        return cls(3, cin, cout, kernel_size=kernel, stride=stride, norm_name=norm,
                   act_name=ACT)
    # one convolution, bias-free before its norm as in the two-convolution blocks
    if residual:
        return ResidualUnit(3, cin, cout, strides=stride, kernel_size=kernel, subunits=1,
                            act=ACT, norm=norm, bias=False)
    return Convolution(3, cin, cout, strides=stride, kernel_size=kernel, act=ACT, norm=norm,
                       bias=False)


def _stage(residual: int, n_blocks: int, cin: int, cout: int, kernel: int,
           stride: int, affine: bool = False, convs: int = 2) -> nn.Sequential:
    layers = [_block(residual, cin, cout, kernel, stride, affine, convs)]
    layers += [_block(residual, cout, cout, kernel, 1, affine, convs)
               for _ in range(n_blocks - 1)]
    return nn.Sequential(*layers)


class SearchableUNet(nn.Module):
    """A U-Net whose levels are chosen independently (see :mod:`medbench.spaces.unet3d`).

    Args:
        arch: the architecture.
        in_channels: input channels (1 for single-modality MRI).
        out_channels: output channels (classes, background included).
        affine: instance norm with learnable scale and shift (the space's version 2).

    Example:
        With arch ``s1|c8-16-32|k3-3-3|b1-1-1|r0-0-0``, an input of shape (2, 1, 48, 64, 48)
        gives logits of shape (2, 3, 48, 64, 48) for ``out_channels=3``.
    """

    def __init__(self, arch, in_channels: int, out_channels: int, affine: bool = False):
        super().__init__()
        self.arch = arch
        ch, kk, bb, rr, nn_ = arch.channels, arch.kernels, arch.blocks, arch.residual, arch.convs
        self.down = nn.ModuleList()
        prev = in_channels
        for level in range(arch.depth):
            self.down.append(_stage(rr[level], bb[level], prev, ch[level], kk[level],
                                    arch.stride if level == 0 else 2, affine, nn_[level]))
            prev = ch[level]
        self.upsample = nn.ModuleList()
        self.up = nn.ModuleList()
        for level in range(arch.depth - 2, -1, -1):
            self.upsample.append(get_conv_layer(3, ch[level + 1], ch[level], kernel_size=2,
                                                stride=2, conv_only=True, is_transposed=True))
            self.up.append(_stage(rr[level], bb[level], 2 * ch[level], ch[level], kk[level], 1,
                                  affine, nn_[level]))
        # A first level at half resolution is brought back to full resolution at the end.
        self.final_up = None if arch.stride == 1 else get_conv_layer(
            3, ch[0], ch[0], kernel_size=2, stride=2, conv_only=True, is_transposed=True)
        self.out = UnetOutBlock(3, ch[0], out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for stage in self.down:
            x = stage(x)
            skips.append(x)
        x = skips.pop()
        for upsample, stage in zip(self.upsample, self.up):
            x = stage(torch.cat([upsample(x), skips.pop()], dim=1))
        if self.final_up is not None:
            x = self.final_up(x)
        return self.out(x)


class _DecoderBlock(nn.Module):
    def __init__(self, below: int, c: int, kernel: int, n_blocks: int, residual: int,
                 affine: bool = False, convs: int = 2):
        super().__init__()
        self.upsample = get_conv_layer(3, below, c, kernel_size=2, stride=2, conv_only=True,
                                       is_transposed=True)
        self.stage = _stage(residual, n_blocks, 2 * c, c, kernel, 1, affine, convs)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.stage(torch.cat([self.upsample(x), skip], dim=1))


class _Head(nn.Module):
    def __init__(self, c: int, stride: int, out_channels: int):
        super().__init__()
        self.final_up = None if stride == 1 else get_conv_layer(
            3, c, c, kernel_size=2, stride=2, conv_only=True, is_transposed=True)
        self.out = UnetOutBlock(3, c, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(x if self.final_up is None else self.final_up(x))


def block_module(key: str, spatial: tuple[int, int, int], out_channels: int
                 ) -> tuple[nn.Module, list[tuple[int, ...]]]:
    """The module of one block key of :func:`medbench.spaces.unet3d.blocks` and the shapes
    of its inputs at batch 1, for an input volume of ``spatial``; a key with convolutions per
    block (``|n1``, ``|n2``) is a ``unet3d-v2`` block (affine norms), else ``unet3d``."""
    kind, *fields = key.split("|")
    f = {p[0]: int(p[1:]) for p in fields}
    s = f["s"]
    version = unet3d.VERSIONS[2 if "n" in f else 1]
    extra = (version.affine_norm, f.get("n", 2))

    def res(level: int) -> tuple[int, ...]:
        return tuple(x // 2 ** max(level + s - 1, 0) for x in spatial)

    if kind == "enc":
        level = f["l"]
        shape_in = spatial if level == 0 else res(level - 1)
        module = _stage(f["r"], f["b"], f["i"], f["c"], f["k"], s if level == 0 else 2, *extra)
        return module, [(1, f["i"], *shape_in)]
    if kind == "dec":
        level = f["l"]
        module = _DecoderBlock(f["i"], f["c"], f["k"], f["b"], f["r"], *extra)
        return module, [(1, f["i"], *res(level + 1)), (1, f["c"], *res(level))]
    if kind == "head":
        return _Head(f["c"], s, out_channels), [(1, f["c"], *res(0))]
    raise ValueError(f"unknown block key {key!r}")
