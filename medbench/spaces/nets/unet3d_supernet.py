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

Normalisation is instance norm without affine parameters (as in the space), so nothing needs
recalibrating for a subnet. :meth:`SuperUNet.forward` runs an architecture with sliced weights;
:meth:`SuperUNet.extract` copies them into the standalone :class:`SearchableUNet` of the same
architecture, which computes the same function (tested).
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
    """Two convolutions (plus the residual 1x1 projection) at their largest sizes."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv1 = _init(cout, cin, KMAX, KMAX, KMAX)
        self.conv2 = _init(cout, cout, KMAX, KMAX, KMAX)
        self.conv3 = _init(cout, cin, 1, 1, 1)
        self.prelu = nn.Parameter(torch.full((1,), 0.25))  # nn.PReLU's initial slope

    def forward(self, x, idx, cout: int, k: int, stride: int, residual: int):
        w1 = _crop(self.conv1[:cout][:, idx], k)
        h = F.prelu(F.instance_norm(F.conv3d(x, w1, stride=stride, padding=k // 2)),
                    self.prelu)
        h = F.instance_norm(F.conv3d(h, _crop(self.conv2[:cout, :cout], k), padding=k // 2))
        if residual:
            if len(idx) != cout or stride != 1:
                x = F.instance_norm(F.conv3d(x, self.conv3[:cout][:, idx], stride=stride))
            h = h + x
        return F.prelu(h, self.prelu)

    def copy_into(self, block: nn.Module, idx, cout: int, k: int) -> None:
        block.conv1.conv.weight.copy_(_crop(self.conv1[:cout][:, idx], k))
        block.conv2.conv.weight.copy_(_crop(self.conv2[:cout, :cout], k))
        block.lrelu.weight.copy_(self.prelu)
        if hasattr(block, "conv3"):
            block.conv3.conv.weight.copy_(self.conv3[:cout][:, idx])


class SuperUNet(nn.Module):
    """The supernet of ``unet3d`` for ``in_channels`` inputs and ``out_channels`` classes."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.enc = nn.ModuleList()
        for level, c in enumerate(CMAX):
            cin = in_channels if level == 0 else CMAX[level - 1]
            self.enc.append(nn.ModuleList([_SuperBlock(cin, c), _SuperBlock(c, c)]))
        self.dec = nn.ModuleList(nn.ModuleList([_SuperBlock(2 * c, c), _SuperBlock(c, c)])
                                 for c in CMAX[:-1])
        self.up = nn.ParameterList(_init(CMAX[level + 1], CMAX[level], 2, 2, 2)
                                   for level in range(len(CMAX) - 1))
        self.final_up = _init(CMAX[0], CMAX[0], 2, 2, 2)
        self.out_w = _init(out_channels, CMAX[0], 1, 1, 1)
        self.out_b = nn.Parameter(torch.zeros(out_channels))

    @staticmethod
    def _decoder_idx(level: int, c: int, device) -> torch.Tensor:
        """Input channels of a decoder's first block: c upsampled, then c of the skip."""
        r = torch.arange(c, device=device)
        return torch.cat([r, CMAX[level] + r])

    def forward(self, x: torch.Tensor, arch: unet3d.Arch) -> torch.Tensor:
        ch, kk, bb, rr = arch.channels, arch.kernels, arch.blocks, arch.residual
        skips, cin = [], self.in_channels
        for level in range(arch.depth):
            stride = arch.stride if level == 0 else 2
            for b in range(bb[level]):
                idx = torch.arange(cin if b == 0 else ch[level], device=x.device)
                x = self.enc[level][b](x, idx, ch[level], kk[level], stride if b == 0 else 1,
                                       rr[level])
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
                x = self.dec[level][b](x, idx, c, kk[level], 1, rr[level])
        if arch.stride == 2:
            x = F.conv_transpose3d(x, self.final_up[:ch[0], :ch[0]], stride=2)
        return F.conv3d(x, self.out_w[:, :ch[0]], self.out_b)

    @torch.no_grad()
    def extract(self, arch: unet3d.Arch) -> SearchableUNet:
        """The standalone network of ``arch`` with the supernet's weights."""
        net = SearchableUNet(arch, self.in_channels, self.out_channels)
        ch, kk, bb = arch.channels, arch.kernels, arch.blocks
        cin = self.in_channels
        for level in range(arch.depth):
            for b in range(bb[level]):
                idx = torch.arange(cin if b == 0 else ch[level])
                self.enc[level][b].copy_into(net.down[level][b], idx, ch[level], kk[level])
            cin = ch[level]
        for i, level in enumerate(range(arch.depth - 2, -1, -1)):
            c = ch[level]
            net.upsample[i].conv.weight.copy_(self.up[level][:ch[level + 1], :c])
            for b in range(bb[level]):
                idx = self._decoder_idx(level, c, "cpu") if b == 0 else torch.arange(c)
                self.dec[level][b].copy_into(net.up[i][b], idx, c, kk[level])
        if net.final_up is not None:
            net.final_up.conv.weight.copy_(self.final_up[:ch[0], :ch[0]])
        net.out.conv.conv.weight.copy_(self.out_w[:, :ch[0]])
        net.out.conv.conv.bias.copy_(self.out_b)
        return net
