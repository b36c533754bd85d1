"""The ``unet3d-v2`` space: the ``unet3d`` grammar with affine instance norm and width 2.

Version 2 of :mod:`medbench.spaces.unet3d`, which holds the grammar (see its docstring): the
same levels, first-level stride, kernels, blocks and residual choice per level, and the same
``arch_id`` spelling, with two changes.

* Instance norm has learnable scale and shift everywhere (MONAI ``UnetBasicBlock`` /
  ``UnetResBlock`` with ``norm_name=("instance", {"affine": True})``, as the DynUNet
  reference). In version 1, without them, about half of the released stride-2 networks with
  4 channels at level 0 collapsed to one foreground class on MSD hippocampus, whatever their
  size; with them the same networks train (see DATASHEET.md).
* Level-0 widths are {2, 4, 8, 16, 32} (channels ``m * 2**level``, capped at 320). Width 2
  brings the smallest U-Nets to a few milliseconds on a 2-core CPU (ONNX Runtime, one
  thread, 48x64x48), within reach of edge devices.

Size: 40 choices per level, so 40**3 + 40**4 + 40**5 + 40**3 + 40**4 = 107,648,000
architectures. Everything here but :func:`build` runs without torch. An ``arch_id`` names a
network of this space only together with the space name: the same string in ``unet3d``
is a version-1 network.
"""

from __future__ import annotations

from medbench.spaces import unet3d as _grammar
from medbench.spaces.unet3d import (BLOCKS, DEPTHS, KERNELS, RESIDUAL, STRIDES, VARIANTS, Arch,
                                    blocks, encode, macs)

__all__ = ["NAME", "VERSION", "DEPTHS", "STRIDES", "VARIANTS", "WIDTHS", "KERNELS", "BLOCKS",
           "RESIDUAL", "Arch", "n_archs", "n_per_level", "encode", "decode", "from_id", "sample", "macs",
           "blocks", "all_blocks", "build", "level_channels"]

VERSION = 2
NAME = _grammar.VERSIONS[VERSION].space
WIDTHS = _grammar.VERSIONS[VERSION].widths


def level_channels(level: int) -> tuple[int, ...]:
    """The channel choices of a level."""
    return _grammar.level_channels(level, VERSION)


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


def build(arch: Arch, in_channels: int, out_channels: int):
    """The network of ``arch`` as a torch module (imports torch and MONAI)."""
    if arch.version != VERSION:
        raise _grammar.BadValueError(f"{NAME}: {arch.arch_id} is a version-{arch.version} "
                                     "architecture")
    return _grammar.build(arch, in_channels, out_channels)


def n_per_level() -> int:
    """Choices per level (width x kernel x blocks x residual): the enumeration's radix."""
    return _grammar.VERSIONS[VERSION].per_level
