"""The ``mednns`` space: Once-for-All-style bottleneck ResNets (MedNNS), sized for MedMNIST.

MedNNS searches OFA-ResNet50 (``d``: depth, ``e``: expand ratio per block, ``w``: width
multipliers) at 224 pixels with ImageNet weights. Neither is within reach here, so this space
keeps MedNNS's encoding and choices and scales the network to 28-pixel inputs (departures,
also in DATASHEET.md):

- the stages' channel counts of OFA-ResNet50 divided by 4 (:data:`DIVISOR`) and the stem's by
  2, rounded to multiples of 4 (OFA rounds to 8; at these sizes that would merge choices):
  stage outputs {40, 52, 64}, {84, 104, 128}, {168, 204, 256}, {332, 408, 512}, stem
  {20, 24, 32} (its middle width {12, 12, 16} repeats a value, as OFA's {24, 24, 32} does, and
  a few bottleneck widths round alike);
- the stem keeps its stride-1 form at 28 pixels (no stride-2 convolution, no max pool), so the
  four stages (strides 1, 2, 2, 2) see 28, 28, 14 and 7 pixels;
- 2D or 3D (for the 3D MedMNIST sets) by the task.

Choices (MedNNS's): ``d[0]`` keeps (2) or skips (0, 1) the stem's residual block; ``d[1..4]``
add 0-2 blocks to the base depths (2, 2, 4, 2); ``e`` one expand ratio in {0.2, 0.25, 0.35}
per active block (18 slots; inactive slots carry no choice); ``w`` six width-multiplier
indices into {0.65, 0.8, 1.0} (stem conv 1/2, stem conv 3, stages 1-4). 2.46e12 networks.

``arch_id`` spells the canonical choices, e.g. ``s1|w2-1-0-2-1-0|d0-1-2-0|e20.25.35;...``:
the stem flag, widths, per-stage extra depth, then each stage's expand ratios (x100) for its
active blocks. No torch here; :func:`medbench.spaces.nets.build` builds the networks.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass

from medbench.errors import BadValueError

__all__ = ["NAME", "BASE_DEPTH", "EXPANDS", "WIDTHS", "DIVISOR", "Arch", "n_archs", "encode",
           "decode", "from_id", "sample", "sample_choices", "stage_channels", "largest",
           "smallest"]

NAME = "mednns"
BASE_DEPTH = (2, 2, 4, 2)
EXTRA_DEPTH = (0, 1, 2)
EXPANDS = (0.2, 0.25, 0.35)
WIDTHS = (0.65, 0.8, 1.0)
STAGE_BASE = (256, 512, 1024, 2048)   # OFA-ResNet50 stage outputs at width 1.0
STEM_BASE = (64, 64)                  # stem mid and stem output at width 1.0 (OFA: 64)
DIVISOR = 4
STRIDES = (1, 2, 2, 2)


def _divisible(v: float, divisor: int = 4) -> int:
    """OFA's make_divisible: round to a multiple of ``divisor``, never below 90 % of ``v``."""
    new = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * v else new


def stage_channels(stage: int, w: int) -> int:
    """Output channels of stage ``stage`` (0-3) at width index ``w``."""
    return _divisible(STAGE_BASE[stage] * WIDTHS[w] / DIVISOR)


def stem_channels(w_mid: int, w_out: int) -> tuple[int, int]:
    """(middle, output) channels of the stem at width indices ``w[0]``, ``w[1]``."""
    return (_divisible(STEM_BASE[0] / 2 * WIDTHS[w_mid] / 2),
            _divisible(STEM_BASE[1] * WIDTHS[w_out] / 2))


def mid_channels(out: int, expand: float) -> int:
    """Bottleneck width of a block with ``out`` output channels at expand ratio ``expand``."""
    return _divisible(round(out * expand))


@dataclass(frozen=True)
class Arch:
    """``stem``: keep the stem's residual block (1) or not (0); ``widths``: 6 indices into
    :data:`WIDTHS`; ``expands``: per stage, one ratio per active block (``BASE_DEPTH[i]`` to
    ``BASE_DEPTH[i] + 2`` of them)."""

    stem: int
    widths: tuple[int, ...]
    expands: tuple[tuple[float, ...], ...]

    def __post_init__(self) -> None:
        if self.stem not in (0, 1):
            raise BadValueError(f"mednns: stem must be 0 or 1, got {self.stem}")
        if len(self.widths) != 6 or any(w not in (0, 1, 2) for w in self.widths):
            raise BadValueError(f"mednns: widths are 6 indices in 0..2, got {self.widths}")
        if len(self.expands) != 4:
            raise BadValueError(f"mednns: 4 stages, got {len(self.expands)}")
        for i, stage in enumerate(self.expands):
            if not BASE_DEPTH[i] <= len(stage) <= BASE_DEPTH[i] + 2:
                raise BadValueError(f"mednns: stage {i + 1} has {BASE_DEPTH[i]} to "
                                    f"{BASE_DEPTH[i] + 2} blocks, got {len(stage)}")
            for e in stage:
                if e not in EXPANDS:
                    raise BadValueError(f"mednns: expand ratio {e} not in {EXPANDS}")

    @property
    def depths(self) -> tuple[int, ...]:
        return tuple(len(s) for s in self.expands)

    @property
    def arch_id(self) -> str:
        e = ";".join(".".join(str(round(x * 100)) for x in s) for s in self.expands)
        d = "-".join(str(len(s) - b) for s, b in zip(self.expands, BASE_DEPTH))
        return f"s{self.stem}|w{'-'.join(map(str, self.widths))}|d{d}|e{e}"

    @property
    def arch_index(self) -> int:
        return encode(self)

    def mednns_encoding(self) -> dict:
        """MedNNS's ``{"d": 5, "e": 18, "w": 6}`` form (inactive ``e`` slots: 0.35)."""
        e = []
        for s, b in zip(self.expands, BASE_DEPTH):
            e += list(s) + [EXPANDS[-1]] * (b + 2 - len(s))
        d = [2 if self.stem else 0] + [len(s) - b for s, b in zip(self.expands, BASE_DEPTH)]
        return {"d": d, "e": e, "w": list(self.widths)}

    def config(self) -> dict:
        return {"stem_block": self.stem, "widths": list(self.widths),
                "depths": list(self.depths), "expands": [list(s) for s in self.expands],
                "mednns": self.mednns_encoding(), "divisor": DIVISOR}

    def config_json(self) -> str:
        return json.dumps(self.config(), sort_keys=True, separators=(",", ":"))


def _stage_count(i: int) -> int:
    return sum(len(EXPANDS) ** (BASE_DEPTH[i] + d) for d in EXTRA_DEPTH)


def n_archs() -> int:
    """Number of architectures in the space."""
    return 2 * len(WIDTHS) ** 6 * math.prod(_stage_count(i) for i in range(4))


def _stage_index(i: int, expands: tuple[float, ...]) -> int:
    extra = len(expands) - BASE_DEPTH[i]
    offset = sum(len(EXPANDS) ** (BASE_DEPTH[i] + d) for d in range(extra))
    digits = 0
    for e in expands:
        digits = digits * len(EXPANDS) + EXPANDS.index(e)
    return offset + digits


def _stage_decode(i: int, index: int) -> tuple[float, ...]:
    for d in EXTRA_DEPTH:
        size = len(EXPANDS) ** (BASE_DEPTH[i] + d)
        if index < size:
            out = []
            for _ in range(BASE_DEPTH[i] + d):
                index, r = divmod(index, len(EXPANDS))
                out.append(EXPANDS[r])
            return tuple(reversed(out))
        index -= size
    raise BadValueError(f"mednns: stage index outside the stage's {_stage_count(i)} choices")


def encode(arch: Arch) -> int:
    """``arch_index``: mixed radix over stem, widths, then the four stages."""
    index = arch.stem
    for w in arch.widths:
        index = index * len(WIDTHS) + w
    for i, s in enumerate(arch.expands):
        index = index * _stage_count(i) + _stage_index(i, s)
    return index


def decode(index: int) -> Arch:
    """The architecture at ``arch_index``; BadValueError outside ``[0, n_archs())``."""
    if not 0 <= index < n_archs():
        raise BadValueError(f"mednns: arch_index {index} outside [0, {n_archs()})")
    stages = []
    for i in reversed(range(4)):
        index, r = divmod(index, _stage_count(i))
        stages.append(_stage_decode(i, r))
    widths = []
    for _ in range(6):
        index, w = divmod(index, len(WIDTHS))
        widths.append(w)
    return Arch(index, tuple(reversed(widths)), tuple(reversed(stages)))


_ID = re.compile(r"^s([01])\|w([0-2](?:-[0-2]){5})\|d([0-2](?:-[0-2]){3})\|e([0-9.;]+)$")


def from_id(arch_id: str) -> Arch:
    """Parse an ``arch_id``; BadValueError for anything not in the space."""
    example = "'s1|w2-1-0-2-1-0|d0-1-2-0|e20.25;35.35.20;...'"
    m = _ID.match(arch_id.strip())
    if not m:
        raise BadValueError(f"mednns: {arch_id!r} is not an arch_id such as {example}")
    try:
        stages = tuple(tuple(int(x) / 100 for x in s.split(".")) for s in m.group(4).split(";"))
    except ValueError:
        raise BadValueError(f"mednns: {arch_id!r} is not an arch_id such as {example}") from None
    arch = Arch(int(m.group(1)), tuple(int(x) for x in m.group(2).split("-")), stages)
    d = tuple(int(x) for x in m.group(3).split("-"))
    if d != tuple(len(s) - b for s, b in zip(stages, BASE_DEPTH)):
        raise BadValueError(f"mednns: {arch_id!r}: the depths d{m.group(3)} do not match the "
                            "expand ratios listed")
    return arch


def sample(n: int, rng) -> list[Arch]:
    """``n`` distinct architectures, uniform over the space, with a numpy Generator."""
    total = n_archs()
    if n > total:
        raise BadValueError(f"mednns: cannot draw {n} of {total} architectures")
    seen: dict[int, None] = {}
    while len(seen) < n:
        for i in rng.integers(0, total, size=n - len(seen)):
            seen.setdefault(int(i), None)
    return [decode(i) for i in seen]


def sample_choices(n: int, rng) -> list[Arch]:
    """``n`` distinct architectures drawn as MedNNS draws its zoo: every choice uniform on
    its own (``d`` per stage in {0, 1, 2}, the stem kept when ``d[0] == 2``, ``e`` per block,
    ``w`` per slot). Unlike :func:`sample`, depths are then equally likely."""
    total = n_archs()
    if n > total:
        raise BadValueError(f"mednns: cannot draw {n} of {total} architectures")
    seen: dict[str, Arch] = {}
    while len(seen) < n:
        stem = int(rng.integers(3) == 2)
        widths = tuple(int(w) for w in rng.integers(3, size=6))
        stages = tuple(tuple(EXPANDS[int(k)] for k in rng.integers(
            3, size=b + int(rng.integers(3)))) for b in BASE_DEPTH)
        arch = Arch(stem, widths, stages)
        seen.setdefault(arch.arch_id, arch)
    return list(seen.values())


def largest() -> Arch:
    """The largest architecture: the stem block, the deepest stages, every width 1.0 and
    expand ratio 0.35. The supernet holds it (every other architecture is a part of it)."""
    return Arch(1, (2,) * 6, tuple((EXPANDS[-1],) * (b + max(EXTRA_DEPTH)) for b in BASE_DEPTH))


def smallest() -> Arch:
    """The smallest architecture: no stem block, base depths, widths 0.65, expand 0.2."""
    return Arch(0, (0,) * 6, tuple((EXPANDS[0],) * b for b in BASE_DEPTH))
