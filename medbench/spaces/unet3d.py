"""The ``unet3d`` space: U-Nets from MONAI blocks, searched level by level (MED-NAS-Bench).

An architecture chooses the stride of its first level: 1 keeps level 0 at full resolution
(nnU-Net style), 2 halves it at once (MONAI ``UNet`` style, much cheaper) and a final
transposed convolution restores full resolution. It has 3, 4 or 5 resolution levels (stride 2:
3 or 4, since five would need inputs divisible by 32). Each level chooses

* channels: ``m * 2**level`` for a width ``m`` in {4, 8, 16, 32}, capped at 320 (nnU-Net's cap);
* kernel size: 3 or 5 (cubic);
* blocks: 1 or 2 blocks of two convolutions each;
* block type: plain (``UnetBasicBlock``) or residual (``UnetResBlock``).

The decoder mirrors the encoder: at each level a transposed convolution (stride 2) brings the
level below up, its output is concatenated with the skip connection, and the level's own
blocks follow. Normalisation is instance norm and the activation PReLU, as in MONAI's
``UNet``. The first block of every level but the first downsamples
with stride 2, so inputs must be divisible by ``2 ** (levels - 2 + stride)``.

Size: 32 choices per level, so 32**3 + 32**4 + 32**5 (stride 1) + 32**3 + 32**4 (stride 2)
= 35,717,120 architectures, from U-Nets that run in a few milliseconds on a CPU to ones
larger than nnU-Net's for this task (``s1|c32-64-128-256-320|k3-3-3-3-3|b1-1-1-1-1|r0-0-0-0-0``
has the convolutions of MONAI's ``DynUNet`` configured nnU-Net-style).

``arch_id`` spells the choices, level by level, e.g. ``s2|c8-16-32|k3-5-3|b1-2-1|r0-1-0``;
``arch_index`` is the position in a mixed-radix enumeration (variants (stride, levels) in
the order of :data:`VARIANTS`, then level 0 most significant). Nothing here needs torch:
:func:`medbench.spaces.nets.build` builds the networks.

Versions: this module holds both versions of the grammar; an :class:`Arch` carries its
``version``. Version 1 (space ``unet3d``) normalises with instance norm *without* learnable
scale and shift (MONAI's default); with bias-free convolutions the output bias is then the
only learnable offset, and about half of the released stride-2 networks with 4 channels at
level 0 collapsed to one foreground class. Version 2 (space ``unet3d-v2``,
:mod:`medbench.spaces.unet3d_v2`) uses affine instance norm everywhere, as the DynUNet
reference does, and adds a choice per level of one or two convolutions per block (``n``
in its ``arch_id``), which holds U-Nets small enough for a few milliseconds on an edge CPU.
The defaults of every function here are version 1, so released ``unet3d`` rows keep their
meaning.
"""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import dataclass

from medbench.errors import BadValueError

__all__ = ["NAME", "DEPTHS", "STRIDES", "VARIANTS", "WIDTHS", "VERSIONS", "macs", "blocks",
           "all_blocks", "KERNELS", "BLOCKS", "RESIDUAL", "Arch", "n_archs", "encode", "decode",
           "from_id", "sample", "level_channels", "Subspace"]

NAME = "unet3d"
DEPTHS = (3, 4, 5)
STRIDES = (1, 2)
#: (first-level stride, levels) in enumeration order.
VARIANTS = ((1, 3), (1, 4), (1, 5), (2, 3), (2, 4))
WIDTHS = (4, 8, 16, 32)
KERNELS = (3, 5)
BLOCKS = (1, 2)
RESIDUAL = (0, 1)
MAX_CHANNELS = 320


@dataclass(frozen=True)
class Version:
    """What differs between versions of the grammar: the space name, whether instance norm
    has learnable scale and shift, and the choices of convolutions per block."""

    space: str
    affine_norm: bool
    convs: tuple[int, ...]

    @property
    def per_level(self) -> int:
        """Choices per level (width x kernel x blocks x residual x convolutions)."""
        return len(WIDTHS) * len(KERNELS) * len(BLOCKS) * len(RESIDUAL) * len(self.convs)


VERSIONS = {1: Version(NAME, affine_norm=False, convs=(2,)),
            2: Version("unet3d-v2", affine_norm=True, convs=(1, 2))}


def _version(version: int) -> Version:
    try:
        return VERSIONS[version]
    except KeyError:
        raise BadValueError(f"unet3d: no version {version}; versions: {sorted(VERSIONS)}"
                            ) from None


def level_channels(level: int) -> tuple[int, ...]:
    """The channel choices of a level (the same in every version)."""
    return tuple(min(w * 2 ** level, MAX_CHANNELS) for w in WIDTHS)


@dataclass(frozen=True)
class Arch:
    """One architecture of the space; tuples hold one entry per level (level 0 first).
    ``convs`` (convolutions per block) is a choice of version 2 only; version 1 blocks have
    two (left empty, it means that). ``version`` is the grammar's (see the module
    docstring); it is not spelled in ``arch_id``, which the space name qualifies."""

    stride: int
    channels: tuple[int, ...]
    kernels: tuple[int, ...]
    blocks: tuple[int, ...]
    residual: tuple[int, ...]
    convs: tuple[int, ...] = ()
    version: int = 1

    def __post_init__(self) -> None:
        spec = _version(self.version)
        depth = len(self.channels)
        if not self.convs and spec.convs == (2,):
            object.__setattr__(self, "convs", (2,) * depth)
        if len(self.convs) != depth:
            raise BadValueError(f"{spec.space}: convs has {len(self.convs)} entries for "
                                f"{depth} levels")
        for v in self.convs:
            if v not in spec.convs:
                raise BadValueError(f"{spec.space}: convolutions per block {v} not in "
                                    f"{spec.convs}")
        if (self.stride, depth) not in VARIANTS:
            raise BadValueError(f"unet3d: first-level stride {self.stride} with {depth} levels "
                                f"is not in the space; (stride, levels) pairs: {VARIANTS}")
        for name, values in (("kernels", self.kernels), ("blocks", self.blocks),
                             ("residual", self.residual)):
            if len(values) != depth:
                raise BadValueError(f"unet3d: {name} has {len(values)} entries for {depth} levels")
        for level, c in enumerate(self.channels):
            if c not in level_channels(level):
                raise BadValueError(f"{self.space}: level {level} cannot have {c} channels; "
                                    f"choices: {level_channels(level)}")
        for name, values, allowed in (("kernel", self.kernels, KERNELS),
                                      ("blocks", self.blocks, BLOCKS),
                                      ("residual", self.residual, RESIDUAL)):
            for v in values:
                if v not in allowed:
                    raise BadValueError(f"unet3d: {name} {v} not in {allowed}")

    @property
    def depth(self) -> int:
        return len(self.channels)

    @property
    def space(self) -> str:
        return VERSIONS[self.version].space

    @property
    def arch_id(self) -> str:
        j = lambda xs: "-".join(map(str, xs))  # noqa: E731
        n = "" if self.version == 1 else f"|n{j(self.convs)}"
        return (f"s{self.stride}|c{j(self.channels)}|k{j(self.kernels)}|b{j(self.blocks)}"
                f"|r{j(self.residual)}{n}")

    @property
    def arch_index(self) -> int:
        return encode(self)

    def config(self) -> dict:
        extra = {} if self.version == 1 else {"convs": list(self.convs)}
        return {"stride": self.stride, "levels": self.depth, "channels": list(self.channels),
                "kernels": list(self.kernels), "blocks": list(self.blocks),
                "residual": list(self.residual), **extra}

    def config_json(self) -> str:
        """The canonical JSON of the choices (the architectures table's ``config``)."""
        return json.dumps(self.config(), sort_keys=True, separators=(",", ":"))


def n_archs(version: int = 1) -> int:
    """Number of architectures in the space."""
    return sum(_version(version).per_level ** d for _, d in VARIANTS)


def _offset(variant: tuple[int, int], version: int = 1) -> int:
    per_level = _version(version).per_level
    return sum(per_level ** d for _, d in VARIANTS[:VARIANTS.index(variant)])


def encode(arch: Arch) -> int:
    """``arch_index`` of an architecture (in its version's enumeration)."""
    spec = VERSIONS[arch.version]
    index = 0
    for level in range(arch.depth):
        digit = (((level_channels(level).index(arch.channels[level])
                   * len(KERNELS) + KERNELS.index(arch.kernels[level])) * len(BLOCKS)
                  + BLOCKS.index(arch.blocks[level])) * len(RESIDUAL)
                 + RESIDUAL.index(arch.residual[level]))
        # version 1 has one value here, so its enumeration is unchanged
        digit = digit * len(spec.convs) + spec.convs.index(arch.convs[level])
        index = index * spec.per_level + digit
    return _offset((arch.stride, arch.depth), arch.version) + index


def decode(index: int, version: int = 1) -> Arch:
    """The architecture at ``arch_index``.

    Raises:
        BadValueError: if the index is outside ``[0, n_archs(version))``.
    """
    spec = _version(version)
    if not 0 <= index < n_archs(version):
        raise BadValueError(f"{spec.space}: arch_index {index} outside "
                            f"[0, {n_archs(version)})")
    for stride, depth in VARIANTS:
        if index < _offset((stride, depth), version) + spec.per_level ** depth:
            rest = index - _offset((stride, depth), version)
            break
    digits = []
    for _ in range(depth):
        rest, digit = divmod(rest, spec.per_level)
        digits.append(digit)
    digits.reverse()
    ch, kk, bb, rr, nn = [], [], [], [], []
    for level, digit in enumerate(digits):
        digit, n = divmod(digit, len(spec.convs))
        nn.append(spec.convs[n])
        digit, r = divmod(digit, len(RESIDUAL))
        digit, b = divmod(digit, len(BLOCKS))
        w, k = divmod(digit, len(KERNELS))
        ch.append(level_channels(level)[w])
        kk.append(KERNELS[k])
        bb.append(BLOCKS[b])
        rr.append(RESIDUAL[r])
    return Arch(stride, tuple(ch), tuple(kk), tuple(bb), tuple(rr), tuple(nn), version)


_ID = re.compile(r"^s(\d)\|c([\d-]+)\|k([\d-]+)\|b([\d-]+)\|r([\d-]+)(?:\|n([\d-]+))?$")
_EXAMPLE = {1: "s2|c8-16-32|k3-5-3|b1-2-1|r0-1-0", 2: "s2|c8-16-32|k3-5-3|b1-2-1|r0-1-0|n2-1-2"}


def from_id(arch_id: str, version: int = 1) -> Arch:
    """Parse an ``arch_id``; raises BadValueError for anything that is not in the space."""
    spec = _version(version)
    m = _ID.match(arch_id.strip())
    if not m or (m.group(6) is None) != (spec.convs == (2,)):
        raise BadValueError(f"{spec.space}: {arch_id!r} is not an arch_id such as "
                            f"{_EXAMPLE[version]!r}")
    parts = [tuple(int(x) for x in g.split("-")) for g in m.groups()[1:] if g is not None]
    return Arch(int(m.group(1)), *parts[:4], convs=parts[4] if len(parts) > 4 else (),
                version=version)


def sample(n: int, rng, version: int = 1) -> list[Arch]:
    """``n`` distinct architectures drawn uniformly from the space with a numpy Generator."""
    total = n_archs(version)
    if n > total:
        raise BadValueError(f"{_version(version).space}: cannot draw {n} of {total} "
                            "architectures")
    seen: dict[int, None] = {}
    while len(seen) < n:
        for i in rng.integers(0, total, size=n - len(seen)):
            seen.setdefault(int(i), None)
    return [decode(i, version) for i in seen]


@dataclass(frozen=True)
class Subspace:
    """The architectures of a version with one first-level stride, ``len(cmax)`` levels and at
    most ``cmax[level]`` channels per level, every other choice free (e.g. the edge U-Nets
    that a weight-sharing supernet holds: stride 2, levels up to 8-16-64)."""

    version: int
    stride: int
    cmax: tuple[int, ...]

    def _choices(self, level: int) -> list[tuple]:
        return [(c, k, b, r, n) for c in level_channels(level) if c <= self.cmax[level]
                for k in KERNELS for b in BLOCKS for r in RESIDUAL
                for n in _version(self.version).convs]

    def _arch(self, picks: list[tuple]) -> Arch:
        c, k, b, r, n = zip(*picks)
        return Arch(self.stride, c, k, b, r, n if self.version > 1 else (), self.version)

    def size(self) -> int:
        out = 1
        for level in range(len(self.cmax)):
            out *= len(self._choices(level))
        return out

    def largest(self) -> Arch:
        return self._arch([max(self._choices(level)) for level in range(len(self.cmax))])

    def smallest(self) -> Arch:
        return self._arch([min(self._choices(level)) for level in range(len(self.cmax))])

    def __contains__(self, arch: Arch) -> bool:
        return (arch.version == self.version and arch.stride == self.stride
                and arch.depth == len(self.cmax)
                and all(c <= m for c, m in zip(arch.channels, self.cmax)))

    def blocks(self, in_channels: int) -> list[str]:
        """Every block key (:func:`blocks`) that an architecture of the subspace is made of:
        the rows its latency lookup table needs. A level's encoder key depends on the width
        of the level above, its decoder key on the width of the level below; both are
        covered by the architectures that vary two neighbouring levels at once."""
        depth, keys = len(self.cmax), {}
        choices = [self._choices(level) for level in range(depth)]
        for level in range(depth - 1):
            for upper, lower in itertools.product(choices[level], choices[level + 1]):
                picks = [c[0] for c in choices]
                picks[level], picks[level + 1] = upper, lower
                keys.update(dict.fromkeys(blocks(self._arch(picks), in_channels)))
        return sorted(keys)

    def sample(self, n: int, rng) -> list[Arch]:
        """``n`` distinct architectures drawn uniformly with a numpy Generator."""
        if n > self.size():
            raise BadValueError(f"cannot draw {n} of the subspace's {self.size()} "
                                "architectures")
        choices = [self._choices(level) for level in range(len(self.cmax))]
        seen: dict[Arch, None] = {}
        while len(seen) < n:
            picks = [c[int(rng.integers(len(c)))] for c in choices]
            seen.setdefault(self._arch(picks), None)
        return list(seen)


def macs(arch: Arch, in_channels: int, out_channels: int,
         spatial: tuple[int, int, int]) -> int:
    """Multiply-accumulates of one forward pass at batch 1, counted from the architecture.

    Counts convolutions and transposed convolutions (the layers that dominate); no torch
    needed. Within a few percent of torch's FLOP counter on the built network.
    """
    voxels = spatial[0] * spatial[1] * spatial[2]

    def block(cin: int, cout: int, k: int, v: int, residual: int, convs: int,
              strided: bool) -> int:
        n = (cin * cout + (convs - 1) * cout * cout) * k ** 3 * v
        if residual and convs == 1 and strided:  # ResidualUnit: a strided k^3 skip conv
            return n + cin * cout * k ** 3 * v
        return n + (cin * cout * v if residual and cin != cout else 0)

    def stage(level: int, cin: int, cout: int, v: int, strided: bool) -> int:
        k, b, r = arch.kernels[level], arch.blocks[level], arch.residual[level]
        n = arch.convs[level]
        return (block(cin, cout, k, v, r, n, strided)
                + (b - 1) * block(cout, cout, k, v, r, n, False))

    ch, total, prev = arch.channels, 0, in_channels
    res = [voxels // 8 ** (level + arch.stride - 1) for level in range(arch.depth)]
    for level in range(arch.depth):
        total += stage(level, prev, ch[level], res[level], level > 0 or arch.stride > 1)
        prev = ch[level]
    for level in range(arch.depth - 2, -1, -1):
        # a transposed convolution with kernel 2 and stride 2: cin * cout per output voxel
        total += ch[level + 1] * ch[level] * res[level]
        total += stage(level, 2 * ch[level], ch[level], res[level], False)
    if arch.stride == 2:
        total += ch[0] * ch[0] * voxels
    return total + ch[0] * out_channels * voxels


def blocks(arch: Arch, in_channels: int) -> list[str]:
    """The keys of the blocks an architecture is made of, for the latency lookup table.

    ``enc|l<level>|s<stride>|i<in>|c<out>|k<kernel>|b<blocks>|r<residual>`` is a level's
    encoder stage, ``dec|l<level>|s<stride>|i<channels below>|c<out>|k..|b..|r..`` a decoder
    stage with its transposed convolution, ``head|s<stride>|c<channels>`` the output layers.
    The first-level stride fixes every level's resolution for a given input size.
    """
    s, ch = arch.stride, arch.channels
    n = ["" if arch.version == 1 else f"|n{c}" for c in arch.convs]
    prev, keys = in_channels, []
    for level in range(arch.depth):
        keys.append(f"enc|l{level}|s{s}|i{prev}|c{ch[level]}|k{arch.kernels[level]}"
                    f"|b{arch.blocks[level]}|r{arch.residual[level]}{n[level]}")
        prev = ch[level]
    for level in range(arch.depth - 2, -1, -1):
        keys.append(f"dec|l{level}|s{s}|i{ch[level + 1]}|c{ch[level]}|k{arch.kernels[level]}"
                    f"|b{arch.blocks[level]}|r{arch.residual[level]}{n[level]}")
    keys.append(f"head|s{s}|c{ch[0]}")
    return keys


def all_blocks(in_channels: int, version: int = 1) -> list[str]:
    """Every block key of the space (the lookup table's rows), in a fixed order."""
    spec = _version(version)
    ns = [""] if version == 1 else [f"|n{n}" for n in spec.convs]
    keys: dict[str, None] = {}
    for stride, depth in VARIANTS:
        for level in range(depth):
            ins = (in_channels,) if level == 0 else level_channels(level - 1)
            for i, c, k, b, r, n in itertools.product(ins, level_channels(level), KERNELS,
                                                      BLOCKS, RESIDUAL, ns):
                keys[f"enc|l{level}|s{stride}|i{i}|c{c}|k{k}|b{b}|r{r}{n}"] = None
                if level < depth - 1:
                    for cb in level_channels(level + 1):
                        keys[f"dec|l{level}|s{stride}|i{cb}|c{c}|k{k}|b{b}|r{r}{n}"] = None
        for c in level_channels(0):
            keys[f"head|s{stride}|c{c}"] = None
    return list(keys)
