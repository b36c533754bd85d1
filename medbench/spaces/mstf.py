"""The ``mstf`` space: DARTS-like normal cells with MSTF-NAS's multiscale reduction cells.

MSTF-NAS (Wang et al., IEEE TEVC 2024) searches a DARTS cell space whose reduction cells
combine pooling operations of several sizes. Its code is not public; this space follows the
paper and DARTS (Liu et al., ICLR 2019), with the macro layout sized for 28-pixel MedMNIST:

- **Normal cell** (one genotype shared by every normal cell, as in DARTS): two inputs (the
  outputs of the two previous cells) and 4 intermediate nodes; node ``i`` takes two distinct
  earlier nodes (``0..i+1``) through one operation each from :data:`OPS` (none, max/avg
  pool 3x3, skip, separable conv 3x3/5x5, dilated conv 3x3/5x5); the cell's output is the
  concatenation of the 4 intermediate nodes.
- **Multiscale reduction cell**: 4 distinct pooling operations from {avg, max} x {2, 3, 4}
  (15 combinations), each with stride 2 on the previous cell's output; their outputs are
  concatenated and a 1x1 convolution + batch norm maps them to the reduction's channels.
- **Macro** (:data:`LAYERS` cells, :data:`CHANNELS` initial channels, the DARTS search-network
  size): a 3x3 stem to 3C channels, 8 cells with reductions at 1/3 and 2/3 of the depth
  (cells 2 and 5; channels doubled each time), global average pooling and a linear
  classifier. 2D or 3D by the task (MedMNIST 28 x 28 or 28 x 28 x 28); spatial sizes must be
  divisible by 4.

``arch_id`` spells the choices, e.g.
``n:s3@0,sk@1;d3@0,s5@2;ap3@1,s3@3;sk@0,d5@4|r:ap2,ap3,mp3,mp4`` (node by node: op@input).
This module needs no torch; :func:`medbench.spaces.nets.build` builds the networks.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from itertools import combinations

from medbench.errors import BadValueError

__all__ = ["NAME", "OPS", "POOLS", "NODES", "LAYERS", "CHANNELS", "Arch", "n_archs", "encode",
           "decode", "from_id", "sample"]

NAME = "mstf"
#: Normal-cell operations (DARTS PRIMITIVES) with their short codes in ``arch_id``.
OPS = {"none": "no", "max_pool_3x3": "mp3", "avg_pool_3x3": "ap3", "skip_connect": "sk",
       "sep_conv_3x3": "s3", "sep_conv_5x5": "s5", "dil_conv_3x3": "d3", "dil_conv_5x5": "d5"}
#: Reduction-cell pooling operations: (kind, size) by short code.
POOLS = {"ap2": ("avg", 2), "ap3": ("avg", 3), "ap4": ("avg", 4),
         "mp2": ("max", 2), "mp3": ("max", 3), "mp4": ("max", 4)}
NODES = 4
LAYERS = 8
CHANNELS = 16

_CODES = list(OPS.values())
_NAMES = {v: k for k, v in OPS.items()}
_POOL_CODES = list(POOLS)
_REDUCTIONS = list(combinations(_POOL_CODES, 4))  # 15, in a fixed order
_PAIRS = [list(combinations(range(i + 2), 2)) for i in range(NODES)]  # inputs of node i
_RADIX = [len(p) * len(_CODES) ** 2 for p in _PAIRS]


@dataclass(frozen=True)
class Arch:
    """``normal``: per intermediate node, two (op code, input) pairs with inputs ascending;
    ``reduce``: four pooling codes in :data:`POOLS` order."""

    normal: tuple[tuple[tuple[str, int], tuple[str, int]], ...]
    reduce: tuple[str, str, str, str]

    def __post_init__(self) -> None:
        if len(self.normal) != NODES:
            raise BadValueError(f"mstf: a normal cell has {NODES} nodes, got {len(self.normal)}")
        for i, node in enumerate(self.normal):
            if len(node) != 2:
                raise BadValueError(f"mstf: node {i} needs two (op, input) pairs")
            (o1, j1), (o2, j2) = node
            if (j1, j2) not in _PAIRS[i]:
                raise BadValueError(f"mstf: node {i} inputs must be two of 0..{i + 1}, "
                                    f"ascending; got {j1}, {j2}")
            for op in (o1, o2):
                if op not in _NAMES:
                    raise BadValueError(f"mstf: unknown op {op!r}; ops: {', '.join(_CODES)}")
        if tuple(self.reduce) not in _REDUCTIONS:
            raise BadValueError(f"mstf: the reduction cell takes 4 distinct pools of "
                                f"{', '.join(_POOL_CODES)} in that order; got {self.reduce}")

    @property
    def arch_id(self) -> str:
        nodes = ";".join(",".join(f"{op}@{j}" for op, j in node) for node in self.normal)
        return f"n:{nodes}|r:{','.join(self.reduce)}"

    @property
    def arch_index(self) -> int:
        return encode(self)

    def config(self) -> dict:
        return {"normal": [[[_NAMES[op], j] for op, j in node] for node in self.normal],
                "reduce": [f"{POOLS[p][0]}_pool_{POOLS[p][1]}x{POOLS[p][1]}"
                           for p in self.reduce],
                "layers": LAYERS, "channels": CHANNELS}

    def config_json(self) -> str:
        return json.dumps(self.config(), sort_keys=True, separators=(",", ":"))


def n_archs() -> int:
    """Number of architectures in the space."""
    return math.prod(_RADIX) * len(_REDUCTIONS)


def encode(arch: Arch) -> int:
    """``arch_index``: mixed radix over nodes (input pair, two ops), then the reduction."""
    index = 0
    for i, ((o1, j1), (o2, j2)) in enumerate(arch.normal):
        digit = (_PAIRS[i].index((j1, j2)) * len(_CODES) + _CODES.index(o1)) * len(_CODES) \
            + _CODES.index(o2)
        index = index * _RADIX[i] + digit
    return index * len(_REDUCTIONS) + _REDUCTIONS.index(tuple(arch.reduce))


def decode(index: int) -> Arch:
    """The architecture at ``arch_index``; BadValueError outside ``[0, n_archs())``."""
    if not 0 <= index < n_archs():
        raise BadValueError(f"mstf: arch_index {index} outside [0, {n_archs()})")
    index, r = divmod(index, len(_REDUCTIONS))
    nodes = []
    for i in reversed(range(NODES)):
        index, digit = divmod(index, _RADIX[i])
        digit, o2 = divmod(digit, len(_CODES))
        p, o1 = divmod(digit, len(_CODES))
        (j1, j2) = _PAIRS[i][p]
        nodes.append(((_CODES[o1], j1), (_CODES[o2], j2)))
    return Arch(tuple(reversed(nodes)), _REDUCTIONS[r])


_ID = re.compile(r"^n:([^|]+)\|r:([a-z0-9,]+)$")


def from_id(arch_id: str) -> Arch:
    """Parse an ``arch_id``; BadValueError for anything not in the space."""
    m = _ID.match(arch_id.strip())
    example = "'n:s3@0,sk@1;d3@0,s5@2;ap3@1,s3@3;sk@0,d5@4|r:ap2,ap3,mp3,mp4'"
    if not m:
        raise BadValueError(f"mstf: {arch_id!r} is not an arch_id such as {example}")
    try:
        nodes = []
        for node in m.group(1).split(";"):
            pairs = [p.split("@") for p in node.split(",")]
            nodes.append(tuple((op, int(j)) for op, j in pairs))
    except ValueError:
        raise BadValueError(f"mstf: {arch_id!r} is not an arch_id such as {example}") from None
    return Arch(tuple(nodes), tuple(m.group(2).split(",")))


def sample(n: int, rng) -> list[Arch]:
    """``n`` distinct architectures drawn uniformly with a numpy Generator."""
    total = n_archs()
    if n > total:
        raise BadValueError(f"mstf: cannot draw {n} of {total} architectures")
    seen: dict[int, None] = {}
    while len(seen) < n:
        for i in rng.integers(0, total, size=n - len(seen)):
            seen.setdefault(int(i), None)
    return [decode(i) for i in seen]
