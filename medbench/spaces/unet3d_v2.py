"""The ``unet3d-v2`` space: the ``unet3d`` grammar with affine instance norm and a choice of
one or two convolutions per block.

Version 2 of :mod:`medbench.spaces.unet3d`, which holds the grammar (see its docstring): the
same levels, first-level stride, widths, kernels, blocks and residual choice per level, with
two changes.

* Instance norm has learnable scale and shift everywhere (MONAI ``UnetBasicBlock`` /
  ``UnetResBlock`` with ``norm_name=("instance", {"affine": True})``, as the DynUNet
  reference). In version 1, without them, about half of the released stride-2 networks with
  4 channels at level 0 collapsed to one foreground class on MSD hippocampus, whatever their
  size; with them the same networks train (see DATASHEET.md).
* Each level chooses 1 or 2 convolutions per block (``n`` in ``arch_id``, e.g.
  ``s2|c4-8-16|k3-3-3|b1-1-1|r0-0-0|n1-1-1``). A one-convolution block is MONAI's
  ``Convolution`` (conv, norm, PReLU) or, residual, a one-subunit ``ResidualUnit``; two is
  version 1's ``UnetBasicBlock`` / ``UnetResBlock``. One convolution per block is what MONAI's
  ``UNet`` does, and halves the full- and half-resolution work that dominates the smallest
  U-Nets' latency on a CPU (ONNX Runtime, one thread, 48x64x48): it brings them within a
  few milliseconds, the reach of edge devices. (A level-0 width of 2 was tried first: with
  two channels before the linear head, both seeds of the first network trained predicted
  at most one foreground class, so it is not in the space.)

Size: 64 choices per level, so 64**3 + 64**4 + 64**5 + 64**3 + 64**4 = 1,107,820,544
architectures. Nothing here needs torch: :func:`medbench.spaces.nets.build` builds the
networks.
"""

from __future__ import annotations

from medbench.spaces import unet3d as _grammar
from medbench.spaces.unet3d import (BLOCKS, DEPTHS, KERNELS, RESIDUAL, STRIDES, VARIANTS, Arch,
                                    blocks, encode, macs)

__all__ = ["NAME", "VERSION", "DEPTHS", "STRIDES", "VARIANTS", "WIDTHS", "KERNELS", "BLOCKS",
           "RESIDUAL", "CONVS", "Arch", "n_archs", "n_per_level", "encode", "decode", "from_id",
           "sample", "macs", "blocks", "all_blocks", "level_channels"]

VERSION = 2
NAME = _grammar.VERSIONS[VERSION].space
WIDTHS = _grammar.WIDTHS
CONVS = _grammar.VERSIONS[VERSION].convs


def level_channels(level: int) -> tuple[int, ...]:
    """The channel choices of a level."""
    return _grammar.level_channels(level)


def n_archs() -> int:
    """Number of architectures in the space."""
    return _grammar.n_archs(VERSION)


def decode(index: int) -> Arch:
    """The architecture at ``arch_index``; BadValueError outside ``[0, n_archs())``."""
    return _grammar.decode(index, VERSION)


def from_id(arch_id: str) -> Arch:
    """Parse an ``arch_id``; raises BadValueError for anything that is not in the space."""
    return _grammar.from_id(arch_id, VERSION)


def sample(n: int, rng) -> list[Arch]:
    """``n`` distinct architectures drawn uniformly from the space with a numpy Generator."""
    return _grammar.sample(n, rng, VERSION)


def all_blocks(in_channels: int) -> list[str]:
    """Every block key of the space (the lookup table's rows), in a fixed order."""
    return _grammar.all_blocks(in_channels, VERSION)


def n_per_level() -> int:
    """Choices per level (width x kernel x blocks x residual): the enumeration's radix."""
    return _grammar.VERSIONS[VERSION].per_level
