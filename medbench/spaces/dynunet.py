"""The ``dynunet`` space: one architecture, MONAI's ``DynUNet`` configured nnU-Net-style.

The reference that ``unet3d`` architectures are compared with on MSD tasks: five levels,
3x3x3 kernels, strides (1, 2, 2, 2, 2), filters 32-64-128-256-320 (nnU-Net's doubling with
its 320 cap), affine instance norm and LeakyReLU(0.01) as nnU-Net, two convolutions per
level, no residual blocks, no deep supervision (so that it trains with exactly the recipe of
every other architecture).
"""

from __future__ import annotations

import json

__all__ = ["NAME", "ARCH_ID", "KWARGS", "n_archs", "config_json"]

NAME = "dynunet"
ARCH_ID = "nnunet-3d-fullres-5level"
KWARGS = {
    "kernel_size": [3, 3, 3, 3, 3],
    "strides": [1, 2, 2, 2, 2],
    "upsample_kernel_size": [2, 2, 2, 2],
    "filters": [32, 64, 128, 256, 320],
    "norm_name": ["instance", {"affine": True}],
    "act_name": ["leakyrelu", {"inplace": True, "negative_slope": 0.01}],
    "res_block": False,
    "deep_supervision": False,
}


def n_archs() -> int:
    return 1


def config_json() -> str:
    return json.dumps({"monai.networks.nets.DynUNet": KWARGS}, sort_keys=True,
                      separators=(",", ":"))
