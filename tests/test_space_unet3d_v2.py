"""The ``unet3d-v2`` space: its grammar beside version 1, affine normalisation, its plan, and
the regression that made it (stride-2 U-Nets with 4 channels collapsing to one class)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from medbench.errors import BadValueError
from medbench.spaces import get_space, unet3d, unet3d_v2
from medbench.spaces.nets import build


def test_size_and_enumeration_round_trip():
    assert unet3d_v2.n_archs() == 64**3 + 64**4 + 64**5 + 64**3 + 64**4 == 1_107_820_544
    assert unet3d_v2.level_channels(0) == unet3d.level_channels(0) == (4, 8, 16, 32)
    assert unet3d_v2.CONVS == (1, 2)
    rng = np.random.default_rng(5)
    for index in [0, 1, 63, 64**3, unet3d_v2.n_archs() - 1,
                  *rng.integers(0, unet3d_v2.n_archs(), 300)]:
        arch = unet3d_v2.decode(int(index))
        assert arch.version == 2 and arch.space == "unet3d-v2"
        assert unet3d_v2.encode(arch) == index
        assert unet3d_v2.from_id(arch.arch_id) == arch
    assert get_space("unet3d-v2") is unet3d_v2


def test_each_version_reads_only_its_own_ids():
    aid = "s2|c4-8-16|k3-3-3|b1-1-1|r0-0-0"
    v1, v2 = unet3d.from_id(aid), unet3d_v2.from_id(aid + "|n2-2-2")
    assert v1.arch_id == aid and v2.arch_id == aid + "|n2-2-2" and v1.convs == v2.convs
    assert v1.config_json() == ('{"blocks":[1,1,1],"channels":[4,8,16],"kernels":[3,3,3],'
                                '"levels":3,"residual":[0,0,0],"stride":2}')  # as released
    assert unet3d.decode(v1.arch_index) == v1 and unet3d.n_archs() == 35_717_120
    assert v1.arch_index == 34_635_776  # version 1's enumeration is unchanged
    for bad, space in ((aid, unet3d_v2), (aid + "|n2-2-2", unet3d),
                       (aid + "|n3-1-1", unet3d_v2), (aid + "|n1-1", unet3d_v2)):
        with pytest.raises(BadValueError):
            space.from_id(bad)
    with pytest.raises(BadValueError, match="outside"):
        unet3d_v2.decode(unet3d_v2.n_archs())
    with pytest.raises(BadValueError, match="no version 3"):
        unet3d.decode(0, version=3)


def test_one_convolution_per_block_cuts_the_cheapest_network_by_two_fifths():
    spatial = (48, 64, 48)
    cheapest_v1 = unet3d.macs(unet3d.from_id("s2|c4-8-16|k3-3-3|b1-1-1|r0-0-0"), 1, 3, spatial)
    cheapest_v2 = unet3d_v2.macs(unet3d_v2.from_id("s2|c4-8-16|k3-3-3|b1-1-1|r0-0-0|n1-1-1"),
                                 1, 3, spatial)
    assert cheapest_v2 < 0.6 * cheapest_v1
    keys = unet3d_v2.blocks(unet3d_v2.from_id("s2|c4-8-16|k3-3-3|b1-1-1|r0-0-0|n1-2-1"), 1)
    assert keys[0] == "enc|l0|s2|i1|c4|k3|b1|r0|n1" and keys[1].endswith("|n2")
    assert set(keys) <= set(unet3d_v2.all_blocks(1))


def test_plan_v2_is_stratified_deterministic_and_cheapest_first():
    from builders.data.msd import SPATIAL
    from builders.plans import DYNUNET_MEMBER_V2, V2_BANDS, plan_v2

    jobs = plan_v2(60, [0, 1, 2], reference=True)
    assert [j.key for j in jobs] == [j.key for j in plan_v2(60, [0, 1, 2], reference=True)]
    archs = [unet3d_v2.from_id(j.args["arch_id"]) for j in jobs if j.args["space"] != "dynunet"]
    assert {j.args["space"] for j in jobs} == {"unet3d-v2", "dynunet"}
    assert len(archs) == 180 and len(set(archs)) == 60
    assert [j.args["seed"] for j in jobs[:6]] == [0, 1, 2, 0, 1, 2]  # seeds together
    gmacs = [unet3d_v2.macs(a, 1, 3, SPATIAL) / 1e9 for a in archs[::3]]
    assert gmacs == sorted(gmacs)
    cap = unet3d_v2.macs(unet3d_v2.from_id(DYNUNET_MEMBER_V2), 1, 3, SPATIAL) / 1e9
    assert gmacs[-1] <= cap
    lower = 0.0
    for upper, share in V2_BANDS:
        n = sum(lower < g <= upper for g in gmacs)
        assert abs(n - 60 * share) <= 1.5, (upper, n)
        lower = upper
    assert sum(g < 1 for g in gmacs) >= 45  # most of the budget under 1 GMAC
    assert {a.stride for a in archs} == {1, 2} and {a.depth for a in archs} == {3, 4, 5}


torch = pytest.importorskip("torch")
pytest.importorskip("monai")


def _norms(net):
    return [m for m in net.modules() if isinstance(m, torch.nn.InstanceNorm3d)]


@pytest.mark.parametrize("arch_id", ["s2|c4-8-16|k3-3-3|b1-1-1|r0-0-0",
                                     "s1|c8-16-32-64|k5-3-3-3|b2-1-2-1|r1-0-1-0"])
@pytest.mark.parametrize("convs", [1, 2])
def test_v2_normalises_with_scale_and_shift_everywhere(arch_id, convs):
    depth = arch_id.count("-", 0, arch_id.index("|k")) + 1
    arch = unet3d_v2.from_id(arch_id + "|n" + "-".join([str(convs)] * depth))
    v2 = build("unet3d-v2", arch, 1, 3)
    v1 = build("unet3d", unet3d.from_id(arch_id), 1, 3)
    assert len(_norms(v2)) >= 2 * depth - 1 and all(n.affine for n in _norms(v2))
    assert _norms(v1) and not any(n.affine for n in _norms(v1))
    convs_run = [m for m in v2.modules() if isinstance(m, torch.nn.Conv3d)]
    assert all(m.bias is None for m in convs_run[:-1])  # the output layer alone has a bias
    with torch.no_grad():
        assert v2(torch.zeros(1, 1, 16, 16, 16)).shape == (1, 3, 16, 16, 16)
    with pytest.raises(BadValueError, match="version-1"):
        build("unet3d-v2", unet3d.from_id("s2|c4-8-16|k3-3-3|b1-1-1|r0-0-0"), 1, 3)


def test_the_dynunet_member_of_v2_has_its_normalisation_too():
    from builders.plans import DYNUNET_MEMBER_V2

    def norm_params(net):
        return sum(p.numel() for n in _norms(net) for p in n.parameters())

    member = build("unet3d-v2", unet3d_v2.from_id(DYNUNET_MEMBER_V2), 1, 3)
    assert norm_params(member) == norm_params(build("dynunet", None, 1, 3)) > 0


@pytest.mark.slow
def test_a_stride2_four_channel_network_predicts_both_classes(tmp_path):
    """The regression behind v2: on MSD hippocampus, 17 of 18 stride-2 runs with 4 channels
    and one block at level 0 labelled the whole hippocampus as one class with instance norm
    without scale and shift. Trained here on tiny synthetic volumes (two 3-voxel-thin
    structures, where the version-1 network of the same seeds predicted at most one class),
    the v2 network must find both foreground classes."""
    from builders.data.msd import load_task
    from builders.unet3d import Recipe, train_and_evaluate
    from test_builders import make_task

    task = load_task("msd/hippocampus", make_task(tmp_path / "msd", n_cases=20),
                     splits_dir=tmp_path / "s")
    torch.set_num_threads(1)
    recipe = Recipe(epochs=100, lr=5e-3, spatial_size=(16, 16, 16))
    for seed in (0, 2):
        ev = train_and_evaluate(task, "unet3d-v2", "s2|c4-8-16|k3-3-3|b1-1-1|r0-0-0|n2-2-2", seed,
                                recipe, "cpu", "r", {})["evaluations"][0]
        per_class = ev["val_dice_per_class"]
        assert len(per_class) == 2 and min(per_class) > 0.1, (seed, per_class)
        assert not math.isnan(ev["val_hd95_mm"])
