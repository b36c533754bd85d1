"""The search spaces' torch networks (the ``build`` extra: torch and MONAI).

A room below the pure spaces: :mod:`medbench.spaces` and its space modules describe
architectures without torch and never import this package; the modules here build an
architecture's network from its fields (``unet3d`` standalone networks and their
weight-sharing supernet, ``mednns`` ResNets and their supernet, ``mstf`` cell networks, the
``dynunet`` reference).
"""

from __future__ import annotations

from medbench.errors import BadValueError
from medbench.spaces import get_space

__all__ = ["build", "build_supernet", "build_network"]

_UNETS = ("unet3d", "unet3d-v2", "dynunet")


def build(space: str, arch, in_channels: int, out_channels: int, **kwargs):
    """The network of ``arch`` (an ``Arch`` of ``space``; None for ``dynunet``) for
    ``in_channels`` inputs and ``out_channels`` outputs (classes); ``kwargs`` go to the
    space's network (``dims`` for ``mednns`` and ``mstf``, ``channels``/``layers`` for
    ``mstf``)."""
    if space in ("unet3d", "unet3d-v2"):
        from medbench.spaces.nets.unet3d import SearchableUNet
        from medbench.spaces.unet3d import VERSIONS

        if VERSIONS[arch.version].space != space:
            raise BadValueError(f"{space}: {arch.arch_id} is a version-{arch.version} "
                                "architecture")
        return SearchableUNet(arch, in_channels, out_channels,
                              affine=VERSIONS[arch.version].affine_norm, **kwargs)
    if space == "dynunet":
        from monai.networks.nets import DynUNet

        from medbench.spaces.dynunet import KWARGS

        kw = {**KWARGS, "act_name": tuple(KWARGS["act_name"]),
              "norm_name": tuple(KWARGS["norm_name"])}
        return DynUNet(3, in_channels, out_channels, **kw)
    if space == "mednns":
        from medbench.spaces.nets.mednns import MedNNSResNet

        return MedNNSResNet(arch, in_channels, out_channels, **kwargs)
    if space == "mstf":
        from medbench.spaces.nets.mstf import MSTFNetwork

        return MSTFNetwork(arch, in_channels, out_channels, **kwargs)
    get_space(space)  # an unknown name lists the known ones
    raise BadValueError(f"space {space} has no network")


def build_supernet(space: str, in_channels: int, out_channels: int, **kwargs):
    """The weight-sharing supernet of ``space``: ``unet3d`` or ``unet3d-v2`` (``cmax``: the
    channels per level it holds, default the space's), or ``mednns`` (``dims``)."""
    if space in ("unet3d", "unet3d-v2"):
        from medbench.spaces.nets.unet3d_supernet import SuperUNet

        return SuperUNet(in_channels, out_channels, version=1 if space == "unet3d" else 2,
                         **kwargs)
    if space == "mednns":
        from medbench.spaces.nets.mednns_supernet import build_supernet as mednns_supernet

        return mednns_supernet(in_channels, out_channels, **kwargs)
    get_space(space)
    raise BadValueError(f"space {space} has no supernet")


def build_network(space: str, arch_id: str, in_channels: int, out_channels: int, dims: int):
    """(network, arch_index, canonical config JSON) of one architecture of a space, for input
    of ``dims`` spatial dimensions (U-Net spaces are 3D only)."""
    module = get_space(space)
    unet = space in _UNETS
    if unet and dims != 3:
        raise BadValueError(f"{space} networks are 3D, not {dims}D")
    if space == "dynunet":  # one architecture, no id to parse
        return build(space, None, in_channels, out_channels), 0, module.config_json()
    arch = module.from_id(arch_id)
    net = build(space, arch, in_channels, out_channels, **({} if unet else {"dims": dims}))
    return net, arch.arch_index, arch.config_json()
