"""Search spaces: one module per space, each with ``NAME`` and ``n_archs()``, without torch.

Modules are imported when asked for, so listing spaces imports nothing heavy. Their networks
are built by :mod:`medbench.spaces.nets` (torch and MONAI), which no space module imports.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from medbench.errors import UnknownNameError

__all__ = ["MODULES", "get_space"]

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
