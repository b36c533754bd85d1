"""The mednns space: MedNNS's d/e/w choices, encoding round trip, and networks built and run."""

from __future__ import annotations

import numpy as np
import pytest

from medbench.errors import BadValueError
from medbench.spaces import get_space, mednns
from medbench.spaces.nets import build


def test_size_is_mednns_count():
    # stem 2 x widths 3^6 x per stage sum_d 3^(base + d): 117, 117, 1053, 117
    assert mednns.n_archs() == 2 * 3 ** 6 * 117 * 117 * 1053 * 117 == 2_458_914_796_962
    assert get_space("mednns") is mednns


@pytest.mark.parametrize("draw", ["sample", "sample_choices"])
def test_round_trip_and_ids(draw):
    archs = getattr(mednns, draw)(300, np.random.default_rng(0))
    assert len({a.arch_id for a in archs}) == len({a.arch_index for a in archs}) == 300
    for a in archs:
        assert mednns.decode(a.arch_index) == a and mednns.from_id(a.arch_id) == a
    assert mednns.decode(mednns.n_archs() - 1).arch_index == mednns.n_archs() - 1
    assert mednns.decode(0) == mednns.Arch(0, (0,) * 6, tuple((0.2,) * b
                                                             for b in mednns.BASE_DEPTH))


def test_per_choice_sampling_draws_every_depth():
    archs = mednns.sample_choices(600, np.random.default_rng(1))
    depths = np.array([a.depths for a in archs]) - np.array(mednns.BASE_DEPTH)
    for stage in range(4):  # each extra depth about a third of the time
        counts = np.bincount(depths[:, stage], minlength=3)
        assert counts.min() > 150, counts
    assert 150 < sum(a.stem for a in archs) < 250  # the stem block kept when d[0] == 2


def test_mednns_encoding():
    a = mednns.from_id("s1|w2-1-0-2-1-0|d0-1-2-0|e20.25;35.35.20;20.20.20.20.25.35;35.35")
    enc = a.mednns_encoding()
    assert enc["d"] == [2, 0, 1, 2, 0] and enc["w"] == [2, 1, 0, 2, 1, 0]
    assert len(enc["e"]) == 18 and enc["e"][:4] == [0.2, 0.25, 0.35, 0.35]
    assert a.depths == (2, 3, 6, 2)


@pytest.mark.parametrize("bad", [
    "s2|w2-1-0-2-1-0|d0-1-2-0|e20.25;35.35.20;20.20.20.20.25.35;35.35",   # stem flag
    "s1|w3-1-0-2-1-0|d0-1-2-0|e20.25;35.35.20;20.20.20.20.25.35;35.35",   # width index
    "s1|w2-1-0-2-1-0|d1-1-2-0|e20.25;35.35.20;20.20.20.20.25.35;35.35",   # d vs e count
    "s1|w2-1-0-2-1-0|d0-1-2-0|e20.30;35.35.20;20.20.20.20.25.35;35.35",   # ratio 0.30
    "s1|w2-1-0-2-1-0|d0-1-2-0|e20;35.35.20;20.20.20.20.25.35;35.35",      # too shallow
    "n:s3@0|r:ap2", "s1|w2-1-0-2-1-0|d0-1-2-0|ex.y;35",
])
def test_bad_ids_are_one_clear_error(bad):
    with pytest.raises(BadValueError, match="mednns"):
        mednns.from_id(bad)


torch = pytest.importorskip("torch")


@pytest.mark.parametrize("dims,size", [(2, 28), (3, 12)])
def test_smallest_and_largest_build_and_run(dims, size):
    small = mednns.Arch(0, (0,) * 6, tuple((0.2,) * b for b in mednns.BASE_DEPTH))
    large = mednns.Arch(1, (2,) * 6, tuple((0.35,) * (b + 2) for b in mednns.BASE_DEPTH))
    x = torch.randn(2, 3, *([size] * dims))
    sizes = []
    for arch in (small, large):
        net = build("mednns", arch, 3, 4, dims=dims)
        y = net(x)
        assert y.shape == (2, 4) and torch.isfinite(y).all()
        y.sum().backward()
        sizes.append(sum(p.numel() for p in net.parameters()))
        feats = net.forward_features(x)
        assert feats.shape[1] == mednns.stage_channels(3, arch.widths[5])
    assert sizes[0] < sizes[1]
    # blocks: base depths for the smallest, base + 2 for the largest
    n_blocks = [len(build("mednns", a, 3, 4, dims=dims).blocks) for a in (small, large)]
    assert n_blocks == [10, 18]
