"""Search spaces: one module per space, each with ``NAME``, ``n_archs()`` and ``build``.

Modules are imported when asked for, so listing spaces imports nothing heavy; ``build``
functions import torch and MONAI themselves.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from medbench.errors import BadValueError, UnknownNameError

__all__ = ["MODULES", "get_space", "build_network"]

MODULES = {
    "unet3d": "medbench.spaces.unet3d",
    "unet3d-v2": "medbench.spaces.unet3d_v2",
    "dynunet": "medbench.spaces.dynunet",
    "mstf": "medbench.spaces.mstf",
    "mednns": "medbench.spaces.mednns",
}


def get_space(name: str) -> ModuleType:
    """The module of space ``name``; an unknown name lists the known ones."""
    try:
        return importlib.import_module(MODULES[name])
    except KeyError:
        raise UnknownNameError("space", name, sorted(MODULES)) from None


def build_network(space: str, arch_id: str, in_channels: int, out_channels: int, dims: int):
    """(network, arch_index, canonical config JSON) of one architecture of a space, for input
    of ``dims`` spatial dimensions (imports torch; U-Net spaces are 3D only)."""
    module = get_space(space)
    unet = space in ("unet3d", "unet3d-v2", "dynunet")
    if unet and dims != 3:
        raise BadValueError(f"{space} networks are 3D, not {dims}D")
    if space == "dynunet":  # one architecture, no id to parse
        return module.build(in_channels, out_channels), 0, module.config_json()
    arch = module.from_id(arch_id)
    net = module.build(arch, in_channels, out_channels, **({} if unet else {"dims": dims}))
    return net, arch.arch_index, arch.config_json()
