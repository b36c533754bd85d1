"""The mstf space: encoding round trip, ids, and every operation built and run."""

from __future__ import annotations

import numpy as np
import pytest

from medbench.errors import BadValueError
from medbench.spaces import get_space, mstf
from medbench.spaces.nets import build


def test_size_and_round_trip():
    # node i: C(i+2, 2) input pairs x 8 x 8 ops; 15 reduction cells
    assert mstf.n_archs() == (1 * 3 * 6 * 10) * 64 ** 4 * 15 == 45_298_483_200
    rng = np.random.default_rng(0)
    archs = mstf.sample(300, rng)
    assert len({a.arch_id for a in archs}) == 300
    for a in archs:
        assert mstf.decode(a.arch_index) == a
        assert mstf.from_id(a.arch_id) == a
    assert mstf.decode(0).arch_index == 0
    last = mstf.decode(mstf.n_archs() - 1)
    assert last.arch_index == mstf.n_archs() - 1
    assert get_space("mstf") is mstf


def test_ids_name_the_choices():
    a = mstf.from_id("n:s3@0,sk@1;d3@0,s5@2;ap3@1,s3@3;sk@0,d5@4|r:ap2,ap3,mp3,mp4")
    assert a.normal[1] == (("d3", 0), ("s5", 2)) and a.reduce == ("ap2", "ap3", "mp3", "mp4")
    cfg = a.config()
    assert cfg["normal"][0] == [["sep_conv_3x3", 0], ["skip_connect", 1]]
    assert cfg["reduce"] == ["avg_pool_2x2", "avg_pool_3x3", "max_pool_3x3", "max_pool_4x4"]


@pytest.mark.parametrize("bad", [
    "n:s3@0,sk@1;d3@0,s5@2;ap3@1,s3@3|r:ap2,ap3,mp3,mp4",          # three nodes
    "n:s3@1,sk@0;d3@0,s5@2;ap3@1,s3@3;sk@0,d5@4|r:ap2,ap3,mp3,mp4",  # inputs not ascending
    "n:s3@0,sk@1;d3@0,s5@3;ap3@1,s3@3;sk@0,d5@4|r:ap2,ap3,mp3,mp4",  # node 1 cannot see 3
    "n:xx@0,sk@1;d3@0,s5@2;ap3@1,s3@3;sk@0,d5@4|r:ap2,ap3,mp3,mp4",  # unknown op
    "n:s3@0,sk@1;d3@0,s5@2;ap3@1,s3@3;sk@0,d5@4|r:ap3,ap2,mp3,mp4",  # pools out of order
    "n:s3@0,sk@1;d3@0,s5@2;ap3@1,s3@3;sk@0,d5@4|r:ap2,ap2,mp3,mp4",  # a pool twice
    "s2|c8-16-32|k3-5-3|b1-2-1|r0-1-0", "n:s3@x,sk@1|r:ap2",
])
def test_bad_ids_are_one_clear_error(bad):
    with pytest.raises(BadValueError, match="mstf"):
        mstf.from_id(bad)
    with pytest.raises(BadValueError):
        mstf.decode(mstf.n_archs())


torch = pytest.importorskip("torch")


@pytest.mark.parametrize("dims", [2, 3])
def test_every_op_and_pool_builds_and_runs(dims):
    codes = list(mstf.OPS.values())
    pools = list(mstf.POOLS)
    # two architectures cover all 8 ops (each node has 2 op slots: 8 slots each) and 6 pools
    a = mstf.Arch(tuple(((codes[2 * i], 0), (codes[2 * i + 1], 1)) for i in range(4)),
                  tuple(pools[:4]))
    b = mstf.Arch(tuple(((codes[7 - 2 * i], i), (codes[6 - 2 * i], i + 1)) for i in range(4)),
                  tuple(pools[2:]))
    size = 28 if dims == 2 else 12
    x = torch.randn(2, 3, *([size] * dims))
    for arch in (a, b):
        net = build("mstf", arch, 3, 5, dims=dims, channels=4)
        y = net(x)
        assert y.shape == (2, 5) and torch.isfinite(y).all()
        y.sum().backward()
        grads = [p.grad for p in net.parameters() if p.grad is not None]
        assert grads and all(torch.isfinite(g).all() for g in grads)


def test_macro_layout():
    from medbench.spaces.nets.mstf import MultiscaleReductionCell, NormalCell

    net = build("mstf", mstf.sample(1, np.random.default_rng(1))[0], 1, 2)
    kinds = [type(c).__name__ for c in net.cells]
    assert kinds == ["NormalCell"] * 2 + ["MultiscaleReductionCell"] + ["NormalCell"] * 2 + \
        ["MultiscaleReductionCell"] + ["NormalCell"] * 2
    assert isinstance(net.cells[2], MultiscaleReductionCell)
    assert isinstance(net.cells[3], NormalCell)
    feats = net.forward_features(torch.zeros(1, 1, 28, 28))
    # 8 cells, C=16: 4 x 64 channels at 7 x 7 after two reductions
    assert feats.shape == (1, 4 * 64, 7, 7)
    n_params = sum(p.numel() for p in net.parameters())
    assert 50_000 < n_params < 2_000_000, n_params  # DARTS search-network scale
