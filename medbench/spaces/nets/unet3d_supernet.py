"""A weight-sharing supernet holding every ``unet3d`` architecture.

Every level has its largest choices: the most channels, 5x5x5 kernels, two blocks, and the
1x1 projection a residual block needs. An architecture uses:

- the first ``c`` output channels of each convolution, and the input channels that carry its
  inputs (for a decoder's first block, the first ``c`` of the upsampled half and the first
  ``c`` of the skip half of the concatenation);
- the centre 3x3x3 of a 5x5x5 kernel when its level has kernel 3;
- the first block of a level, or both;
- the residual path (the 1x1 projection where shapes change, else the identity) when its
  level is residual; plain and residual blocks share their two convolutions;
- the first ``depth`` levels, and their decoders, and the first level's stride.

Normalisation is instance norm (without affine parameters in version 1, with them, sliced to
the used channels, in version 2), whose statistics are the input's own, so nothing needs
recalibrating for a subnet. Version 2 (``unet3d-v2``) also has one-convolution blocks: they use
a block's first convolution, its first norm and its slope, and, when residual, the 1x1
projection (stride 1) or a projection with the level's kernel (stride 2), as MONAI's
``ResidualUnit`` does. ``cmax`` caps the channels per level (a supernet over the part of the
space whose widths stay under it, e.g. the edge U-Nets). :meth:`SuperUNet.forward` runs an
architecture with sliced weights; :meth:`SuperUNet.extract` copies them into the standalone
:class:`SearchableUNet` of the same architecture, which computes the same function (tested).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from medbench.spaces import unet3d
from medbench.spaces.nets.unet3d import SearchableUNet

KMAX = max(unet3d.KERNELS)
CMAX = tuple(max(unet3d.level_channels(level)) for level in range(max(unet3d.DEPTHS)))


def _crop(w: torch.Tensor, k: int) -> torch.Tensor:
    if k == w.shape[-1]:
        return w
    lo = (w.shape[-1] - k) // 2
    return w[..., lo:lo + k, lo:lo + k, lo:lo + k]


def _init(*shape: int) -> nn.Parameter:
    w = torch.empty(*shape)
    nn.init.kaiming_uniform_(w, a=5 ** 0.5)  # torch's default for convolutions
    return nn.Parameter(w)


class _SuperBlock(nn.Module):
    """Two convolutions, the residual 1x1 projection and (version 2) the residual projection of
    a strided one-convolution block, at their largest sizes; affine norms in version 2."""

    def __init__(self, cin: int, cout: int, affine: bool = False):
        super().__init__()
        self.conv1 = _init(cout, cin, KMAX, KMAX, KMAX)
        self.conv2 = _init(cout, cout, KMAX, KMAX, KMAX)
        self.conv3 = _init(cout, cin, 1, 1, 1)
        self.prelu = nn.Parameter(torch.full((1,), 0.25))  # nn.PReLU's initial slope
        self.affine = affine
        if affine:
            self.convr = _init(cout, cin, KMAX, KMAX, KMAX)
            self.norm_w = nn.Parameter(torch.ones(3, cout))   # norm1, norm2, norm3
            self.norm_b = nn.Parameter(torch.zeros(3, cout))

    def _norm(self, h, i: int, cout: int):
        if not self.affine:
            return F.instance_norm(h)
        return F.instance_norm(h, weight=self.norm_w[i, :cout], bias=self.norm_b[i, :cout])

    def forward(self, x, idx, cout: int, k: int, stride: int, residual: int, convs: int = 2):
        w1 = _crop(self.conv1[:cout][:, idx], k)
        h = F.prelu(self._norm(F.conv3d(x, w1, stride=stride, padding=k // 2), 0, cout),
                    self.prelu)
        if convs == 1:
            if residual:
                if stride != 1:
                    x = F.conv3d(x, _crop(self.convr[:cout][:, idx], k), stride=stride,
                                 padding=k // 2)
                elif len(idx) != cout:
                    x = F.conv3d(x, self.conv3[:cout][:, idx])
                h = h + x
            return h
        h = self._norm(F.conv3d(h, _crop(self.conv2[:cout, :cout], k), padding=k // 2), 1, cout)
        if residual:
            if len(idx) != cout or stride != 1:
                x = self._norm(F.conv3d(x, self.conv3[:cout][:, idx], stride=stride), 2, cout)
            h = h + x
        return F.prelu(h, self.prelu)

    def copy_into(self, block: nn.Module, idx, cout: int, k: int, convs: int = 2) -> None:
        w1 = _crop(self.conv1[:cout][:, idx], k)
        if convs == 1:  # MONAI Convolution, or ResidualUnit(subunits=1)
            unit = block.conv.unit0 if hasattr(block, "residual") else block
            unit.conv.weight.copy_(w1)
            unit.adn.N.weight.copy_(self.norm_w[0, :cout])
            unit.adn.N.bias.copy_(self.norm_b[0, :cout])
            unit.adn.A.weight.copy_(self.prelu)
            if hasattr(block, "residual") and isinstance(block.residual, nn.Conv3d):
                r = block.residual.weight
                block.residual.weight.copy_(
                    _crop(self.convr[:cout][:, idx], k) if r.shape[-1] != 1 else
                    self.conv3[:cout][:, idx])
            return
        block.conv1.conv.weight.copy_(w1)
        block.conv2.conv.weight.copy_(_crop(self.conv2[:cout, :cout], k))
        block.lrelu.weight.copy_(self.prelu)
        if hasattr(block, "conv3"):
            block.conv3.conv.weight.copy_(self.conv3[:cout][:, idx])
        if self.affine:
            for i, name in enumerate(("norm1", "norm2", "norm3")):
                if hasattr(block, name):
                    getattr(block, name).weight.copy_(self.norm_w[i, :cout])
                    getattr(block, name).bias.copy_(self.norm_b[i, :cout])


class SuperUNet(nn.Module):
    """The supernet of ``unet3d`` (``version`` 1) or ``unet3d-v2`` (2) for ``in_channels``
    inputs and ``out_channels`` classes, holding every architecture whose channels per level
    stay within ``cmax`` (default: the space's largest) and whose depth is at most its
    length."""

    def __init__(self, in_channels: int, out_channels: int, version: int = 1,
                 cmax: tuple[int, ...] | None = None):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.version = version
        self.cmax = cm = tuple(cmax or CMAX)
        affine = unet3d.VERSIONS[version].affine_norm
        self.enc = nn.ModuleList()
        for level, c in enumerate(cm):
            cin = in_channels if level == 0 else cm[level - 1]
            self.enc.append(nn.ModuleList([_SuperBlock(cin, c, affine),
                                           _SuperBlock(c, c, affine)]))
        self.dec = nn.ModuleList(nn.ModuleList([_SuperBlock(2 * c, c, affine),
                                                _SuperBlock(c, c, affine)]) for c in cm[:-1])
        self.up = nn.ParameterList(_init(cm[level + 1], cm[level], 2, 2, 2)
                                   for level in range(len(cm) - 1))
        self.final_up = _init(cm[0], cm[0], 2, 2, 2)
        self.out_w = _init(out_channels, cm[0], 1, 1, 1)
        self.out_b = nn.Parameter(torch.zeros(out_channels))

    def _decoder_idx(self, level: int, c: int, device) -> torch.Tensor:
        """Input channels of a decoder's first block: c upsampled, then c of the skip."""
        r = torch.arange(c, device=device)
        return torch.cat([r, self.cmax[level] + r])

    def _check(self, arch: unet3d.Arch) -> None:
        if arch.version != self.version or arch.depth > len(self.cmax) or any(
                c > m for c, m in zip(arch.channels, self.cmax)):
            raise ValueError(f"{arch.arch_id} is not in this supernet (version "
                             f"{self.version}, channels up to {self.cmax})")

    def forward(self, x: torch.Tensor, arch: unet3d.Arch) -> torch.Tensor:
        self._check(arch)
        ch, kk, bb, rr, nn_ = arch.channels, arch.kernels, arch.blocks, arch.residual, arch.convs
        skips, cin = [], self.in_channels
        for level in range(arch.depth):
            stride = arch.stride if level == 0 else 2
            for b in range(bb[level]):
                idx = torch.arange(cin if b == 0 else ch[level], device=x.device)
                x = self.enc[level][b](x, idx, ch[level], kk[level], stride if b == 0 else 1,
                                       rr[level], nn_[level])
            cin = ch[level]
            skips.append(x)
        x = skips.pop()
        for level in range(arch.depth - 2, -1, -1):
            c = ch[level]
            up = F.conv_transpose3d(x, self.up[level][:ch[level + 1], :c], stride=2)
            x = torch.cat([up, skips.pop()], dim=1)
            for b in range(bb[level]):
                idx = self._decoder_idx(level, c, x.device) if b == 0 else \
                    torch.arange(c, device=x.device)
                x = self.dec[level][b](x, idx, c, kk[level], 1, rr[level], nn_[level])
        if arch.stride == 2:
            x = F.conv_transpose3d(x, self.final_up[:ch[0], :ch[0]], stride=2)
        return F.conv3d(x, self.out_w[:, :ch[0]], self.out_b)

    @torch.no_grad()
    def extract(self, arch: unet3d.Arch) -> SearchableUNet:
        """The standalone network of ``arch`` with the supernet's weights."""
        self._check(arch)
        net = SearchableUNet(arch, self.in_channels, self.out_channels,
                             affine=unet3d.VERSIONS[arch.version].affine_norm)
        ch, kk, bb, nn_ = arch.channels, arch.kernels, arch.blocks, arch.convs
        cin = self.in_channels
        for level in range(arch.depth):
            for b in range(bb[level]):
                idx = torch.arange(cin if b == 0 else ch[level])
                self.enc[level][b].copy_into(net.down[level][b], idx, ch[level], kk[level],
                                             nn_[level])
            cin = ch[level]
        for i, level in enumerate(range(arch.depth - 2, -1, -1)):
            c = ch[level]
            net.upsample[i].conv.weight.copy_(self.up[level][:ch[level + 1], :c])
            for b in range(bb[level]):
                idx = self._decoder_idx(level, c, "cpu") if b == 0 else torch.arange(c)
                self.dec[level][b].copy_into(net.up[i][b], idx, c, kk[level], nn_[level])
        if net.final_up is not None:
            net.final_up.conv.weight.copy_(self.final_up[:ch[0], :ch[0]])
        net.out.conv.conv.weight.copy_(self.out_w[:, :ch[0]])
        net.out.conv.conv.bias.copy_(self.out_b)
        return net
