"""Search spaces: encoding round trips and ids without torch; every choice builds with torch."""

from __future__ import annotations

import numpy as np
import pytest

from medbench.errors import BadValueError, UnknownNameError
from medbench.spaces import get_space, unet3d
from medbench.spaces.nets import build


def test_size_and_variants():
    assert unet3d.n_archs() == 32**3 + 32**4 + 32**5 + 32**3 + 32**4 == 35_717_120


@pytest.mark.parametrize("index", [0, 1, 31, 32, 32767, 32768, 1_081_343, 1_081_344,
                                   34_635_775, 34_635_776, 35_717_119])
def test_encode_decode_round_trip_at_boundaries(index):
    arch = unet3d.decode(index)
    assert unet3d.encode(arch) == index
    assert unet3d.from_id(arch.arch_id) == arch


def test_random_round_trips_and_unique_ids():
    rng = np.random.default_rng(0)
    archs = unet3d.sample(2000, rng)
    ids = {a.arch_id for a in archs}
    assert len(ids) == 2000
    assert len({a.arch_index for a in archs}) == 2000
    for a in archs:
        assert unet3d.decode(a.arch_index) == a and unet3d.from_id(a.arch_id) == a


def test_enumeration_is_a_bijection_on_a_whole_variant():
    """Every index of the (stride 1, 3 levels) variant gives a distinct valid arch_id."""
    ids = {unet3d.decode(i).arch_id for i in range(32**3)}
    assert len(ids) == 32**3


def test_sampling_is_seeded():
    a = [x.arch_id for x in unet3d.sample(50, np.random.default_rng(7))]
    b = [x.arch_id for x in unet3d.sample(50, np.random.default_rng(7))]
    assert a == b


@pytest.mark.parametrize("bad", [
    "c8-16-32|k3-5-3|b1-2-1|r0-1-0",          # no stride
    "s3|c8-16-32|k3-5-3|b1-2-1|r0-1-0",       # stride 3
    "s2|c8-16-32-64-128|k3-3-3-3-3|b1-1-1-1-1|r0-0-0-0-0",  # stride 2 with 5 levels
    "s1|c8-16|k3-3|b1-1|r0-0",                # 2 levels
    "s1|c8-17-32|k3-5-3|b1-2-1|r0-1-0",       # 17 channels
    "s1|c8-16-32|k7-5-3|b1-2-1|r0-1-0",       # kernel 7
    "s1|c8-16-32|k3-5|b1-2-1|r0-1-0",         # lengths differ
    "s1|c8-16-32|k3-5-3|b3-2-1|r0-1-0",       # 3 blocks
])
def test_bad_ids_are_refused(bad):
    with pytest.raises(BadValueError):
        unet3d.from_id(bad)


def test_decode_out_of_range():
    with pytest.raises(BadValueError):
        unet3d.decode(unet3d.n_archs())


def test_registry():
    assert get_space("unet3d") is unet3d
    with pytest.raises(UnknownNameError, match="dynunet"):
        get_space("resnet")


def test_level_channels_cap():
    assert unet3d.level_channels(0) == (4, 8, 16, 32)
    assert unet3d.level_channels(4) == (64, 128, 256, 320)


# -- torch side: needs the build extra ---------------------------------------------------------

torch = pytest.importorskip("torch")
pytest.importorskip("monai")


def _params(net):
    return sum(p.numel() for p in net.parameters())


@pytest.mark.parametrize("stride, depth", unet3d.VARIANTS)
@pytest.mark.parametrize("kernel", unet3d.KERNELS)
@pytest.mark.parametrize("blocks", unet3d.BLOCKS)
@pytest.mark.parametrize("residual", unet3d.RESIDUAL)
def test_every_choice_builds_and_keeps_the_shape(stride, depth, kernel, blocks, residual):
    widths = [unet3d.level_channels(level)[level % 4] for level in range(depth)]
    arch = unet3d.Arch(stride, tuple(widths), (kernel,) * depth, (blocks,) * depth,
                       (residual,) * depth)
    net = build("unet3d", arch, in_channels=1, out_channels=3)
    side = 2 ** (depth - 2 + stride)  # smallest input the variant accepts
    x = torch.zeros(2, 1, side, 2 * side, side)
    with torch.no_grad():
        assert net(x).shape == (2, 3, side, 2 * side, side)


def test_every_width_builds():
    for w in range(len(unet3d.WIDTHS)):
        arch = unet3d.Arch(1, tuple(unet3d.level_channels(lv)[w] for lv in range(3)),
                           (3, 3, 3), (1, 1, 1), (0, 0, 0))
        net = build("unet3d", arch, 1, 3)
        assert net(torch.zeros(1, 1, 8, 8, 8)).shape == (1, 3, 8, 8, 8)


def test_choices_change_the_network():
    base = unet3d.from_id("s1|c8-16-32|k3-3-3|b1-1-1|r0-0-0")
    n = _params(build("unet3d", base, 1, 3))
    for other in ("s1|c8-16-32|k5-3-3|b1-1-1|r0-0-0", "s1|c8-16-32|k3-3-3|b2-1-1|r0-0-0",
                  "s1|c8-16-32|k3-3-3|b1-1-1|r1-0-0", "s1|c16-16-32|k3-3-3|b1-1-1|r0-0-0"):
        assert _params(build("unet3d", unet3d.from_id(other), 1, 3)) > n, other


def test_dynunet_reference_has_the_convolutions_of_its_space_member():
    def conv_params(net):
        return sum(p.numel() for m in net.modules() if isinstance(
            m, (torch.nn.Conv3d, torch.nn.ConvTranspose3d)) for p in m.parameters())

    ref = build("dynunet", None, 1, 3)
    member = build("unet3d", unet3d.from_id(
        "s1|c32-64-128-256-320|k3-3-3-3-3|b1-1-1-1-1|r0-0-0-0-0"), 1, 3)
    assert conv_params(ref) == conv_params(member) == 16_538_563


def test_analytic_macs_match_torch_flop_counter():
    from torch.utils.flop_counter import FlopCounterMode

    for arch in unet3d.sample(12, np.random.default_rng(3)):
        net = build("unet3d", arch, 1, 3).to("meta")
        with FlopCounterMode(display=False) as counter:
            net(torch.zeros(1, 1, 48, 64, 48, device="meta"))
        counted = counter.get_total_flops() // 2
        assert unet3d.macs(arch, 1, 3, (48, 64, 48)) == pytest.approx(counted, rel=0.002)


def test_standalone_plan_is_stratified_and_capped():
    from builders.data.msd import SPATIAL
    from builders.plans import DYNUNET_MEMBER, plan

    jobs = plan(60, [0, 1], reference=True)
    archs = [j.args["arch_id"] for j in jobs if j.args["space"] == "unet3d"]
    assert len(archs) == 120 and len(set(archs)) == 60
    assert [j.key for j in jobs] == [j.key for j in plan(60, [0, 1], reference=True)]
    cap = unet3d.macs(unet3d.from_id(DYNUNET_MEMBER), 1, 3, SPATIAL)
    gmacs = [unet3d.macs(unet3d.from_id(a), 1, 3, SPATIAL) for a in archs[::2]]
    assert max(gmacs) <= cap and min(gmacs) < cap / 100
    assert gmacs == sorted(gmacs)  # cheapest first
    variants = {(unet3d.from_id(a).stride, unet3d.from_id(a).depth) for a in archs}
    assert variants == set(unet3d.VARIANTS)
    assert [j.args["space"] for j in jobs[-2:]] == ["dynunet", "dynunet"]
