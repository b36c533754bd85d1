"""The unet3d supernet: a subnet's sliced forward equals its extracted standalone network,
and training a subnet touches only the weights it uses."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("monai")

from medbench.spaces import unet3d  # noqa: E402
from medbench.spaces.nets.unet3d_supernet import CMAX, SuperUNet  # noqa: E402
from medbench.spaces.nets import build  # noqa: E402

# the slow tier: they train and slice supernets
pytestmark = pytest.mark.slow

ARCHS = [
    "s2|c4-8-16|k3-3-3|b1-1-1|r0-0-0",                         # smallest kind
    "s1|c8-16-64-32-320|k3-5-3-3-5|b1-2-1-2-1|r1-0-1-0-0",     # mixed, full resolution
    "s2|c32-64-128-256|k5-3-5-3|b2-2-1-2|r1-1-0-1",            # half resolution, 4 levels
    "s1|c32-64-128-256-320|k5-5-5-5-5|b2-2-2-2-2|r1-1-1-1-1",  # the largest: the whole net
]


@pytest.fixture(scope="module")
def supernet():
    torch.manual_seed(0)
    return SuperUNet(1, 3)


def _extracted_equals_sliced(supernet, space: str, arch):
    """The sliced forward of ``arch`` equals its extracted network, which is the space's own
    network of that architecture; returns (extracted, a fresh one of the space)."""
    x = torch.randn(2, 1, 32, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        sliced = supernet(x, arch)
        net = supernet.extract(arch)
        standalone = net(x)
    assert sliced.shape == (2, 3, 32, 32, 32)
    torch.testing.assert_close(sliced, standalone, rtol=1e-5, atol=1e-5)
    own = build(space, arch, 1, 3)
    assert [n for n, _ in own.named_parameters()] == [n for n, _ in net.named_parameters()]
    return net, own


@pytest.mark.parametrize("arch_id", ARCHS)
def test_sliced_forward_equals_the_extracted_network(supernet, arch_id):
    _extracted_equals_sliced(supernet, "unet3d", unet3d.from_id(arch_id))


def test_only_the_used_slices_get_gradients(supernet):
    arch = unet3d.from_id("s2|c8-16-32|k3-3-3|b1-1-1|r0-0-0")
    supernet.zero_grad(set_to_none=True)
    supernet(torch.randn(1, 1, 32, 32, 32), arch).sum().backward()
    g = supernet.enc[0][0].conv1.grad
    assert g[:8, :, 1:4, 1:4, 1:4].abs().sum() > 0       # used: 8 channels, centre 3x3x3
    assert g[8:].abs().sum() == 0 and g[:, :, 0].abs().sum() == 0  # unused channels, rim
    assert supernet.enc[0][1].conv1.grad is None          # one block only
    assert supernet.enc[3][0].conv1.grad is None          # three levels only
    assert supernet.enc[0][0].conv3.grad is None          # plain blocks: no projection
    up = supernet.up[0].grad                              # level 1 -> level 0 upsampling
    assert up[:16, :8].abs().sum() > 0 and up[16:].abs().sum() == 0
    dec = supernet.dec[0][0].conv1.grad                   # decoder input: 8 up + 8 skip
    used = torch.zeros(2 * CMAX[0], dtype=torch.bool)
    used[:8] = used[CMAX[0]:CMAX[0] + 8] = True
    assert dec[:8][:, used].abs().sum() > 0 and dec[:, ~used].abs().sum() == 0


def test_every_sampled_architecture_runs(supernet):
    x = torch.randn(1, 1, 32, 32, 32)
    with torch.no_grad():
        for arch in unet3d.sample(5, np.random.default_rng(3)):
            assert supernet(x, arch).shape == (1, 3, 32, 32, 32)


@pytest.mark.slow
def test_training_resumes_per_epoch_and_subnets_are_evaluated(tmp_path):
    import json

    from builders.release import release
    from builders.supernet import LARGEST, main
    from medbench.validate import validate
    from test_builders import make_task

    data = make_task(tmp_path / "msd", n_cases=8)
    base = ["--data-root", str(data), "--epochs", "3", "--sampling", "uniform",
            "--random-subnets", "1", "--spatial", "32", "32", "32", "--work",
            str(tmp_path / "w"), "--splits-dir", str(tmp_path / "splits"), "--threads", "1"]
    assert main(["train", *base, "--limit-jobs", "1"]) == 0   # then "killed"
    root = next((tmp_path / "w" / "msd_hippocampus").iterdir())
    assert sorted(p.name for p in (root / "checkpoints").iterdir()) == ["epoch0001.pt"]
    assert main(["evaluate", *base, "--archs", "2"]) == 2     # not trained to the end yet
    assert main(["train", *base]) == 0                        # resumes at epoch 2
    # only the checkpoint the next epoch would start from is kept (and the last one)
    assert sorted(p.name for p in (root / "checkpoints").iterdir()) == ["epoch0002.pt",
                                                                        "epoch0003.pt"]
    keys = sorted(json.loads((d / "job.json").read_text())["key"]
                  for d in (root / "jobs").iterdir())
    assert keys == ["epoch0001", "epoch0002", "epoch0003"]
    assert main(["evaluate", *base, "--archs", "2", "--chunk", "1",
                 "--tables", str(tmp_path / "none")]) == 0
    tables = tmp_path / "tables"
    release(root, tables)
    release(root / "evaluate", tables)
    assert validate(tables).ok
    import medbench

    with medbench.open(tables) as store:
        curve = store.sql("SELECT epoch, elapsed_seconds FROM curves WHERE arch_id = "
                          f"'{LARGEST}' AND method = 'supernet' ORDER BY epoch").fetchall()
        assert [c[0] for c in curve] == [1, 2, 3]
        assert curve[0][1] < curve[1][1] < curve[2][1]  # the clock continued across resume
        rows = store.sql("SELECT method, epochs, val_dice, test_dice FROM evaluations"
                         ).fetchall()
    assert len(rows) == 2 and all(r[0] == "supernet" and r[1] == 3 for r in rows)
    assert all(0 <= r[2] <= 1 and 0 <= r[3] <= 1 for r in rows)


#: unet3d-v2 architectures inside the edge cap 8-16-64 (stride 2, three levels): one- and
#: two-convolution blocks, plain and residual, strided residual projections, two blocks.
V2_ARCHS = [
    "s2|c4-8-16|k3-3-3|b1-1-1|r0-0-0|n1-1-1",
    "s2|c4-8-16|k3-3-5|b2-1-1|r1-0-1|n1-2-1",
    "s2|c8-16-64|k5-5-5|b2-2-2|r1-1-1|n2-2-2",
    "s2|c8-8-32|k3-5-3|b1-2-2|r1-1-0|n1-1-2",
]


@pytest.fixture(scope="module")
def edge_supernet():
    torch.manual_seed(0)
    from medbench.spaces.nets import build_supernet

    net = build_supernet("unet3d-v2", 1, 3, cmax=(8, 16, 64))
    with torch.no_grad():  # norms, slopes and biases away from their start, checked too
        for block in net.modules():
            if hasattr(block, "norm_w"):
                block.norm_w.uniform_(0.5, 1.5)
                block.norm_b.uniform_(-0.5, 0.5)
                block.prelu.uniform_(0.1, 0.4)
        net.out_b.uniform_(-0.5, 0.5)
    return net


@pytest.mark.parametrize("arch_id", V2_ARCHS)
def test_v2_sliced_forward_equals_the_extracted_network(edge_supernet, arch_id):
    from medbench.spaces import unet3d_v2

    net, own = _extracted_equals_sliced(edge_supernet, "unet3d-v2", unet3d_v2.from_id(arch_id))
    # every parameter of the extracted network came from the supernet (none left at init)
    fresh = dict(own.named_parameters())
    copied = [n for n, p in net.named_parameters() if not torch.equal(p, fresh[n])]
    assert len(copied) == len(fresh)


def test_v2_supernet_refuses_what_it_does_not_hold(edge_supernet):
    from medbench.spaces import unet3d_v2

    x = torch.randn(1, 1, 32, 32, 32)
    for arch_id in ("s2|c16-16-64|k3-3-3|b1-1-1|r0-0-0|n1-1-1",      # wider than the cap
                    "s2|c4-8-16-32|k3-3-3-3|b1-1-1-1|r0-0-0-0|n1-1-1-1"):  # deeper
        with pytest.raises(ValueError, match="not in this supernet"):
            edge_supernet(x, unet3d_v2.from_id(arch_id))
    with pytest.raises(ValueError, match="not in this supernet"):  # a version-1 architecture
        edge_supernet(x, unet3d.from_id("s2|c4-8-16|k3-3-3|b1-1-1|r0-0-0"))


def test_the_v2_edge_supernet_trains_and_evaluates_its_subspace(tmp_path, capsys):
    import json

    import pyarrow.parquet as pq

    import medbench
    from builders.release import release
    from builders.supernet import main
    from medbench.release import write_manifest, write_rows
    from medbench.spaces.unet3d import Subspace
    from medbench.validate import validate
    from test_builders import make_task

    data = make_task(tmp_path / "msd", n_cases=8)
    base = ["--data-root", str(data), "--epochs", "1", "--space", "unet3d-v2", "--cmax", "4",
            "8", "16", "--random-subnets", "1", "--spatial", "32", "32", "32", "--work",
            str(tmp_path / "w"), "--splits-dir", str(tmp_path / "splits"), "--threads", "1"]
    assert main(["train", *base]) == 0
    # standalone results: one drawn architecture, one not drawn, one outside the subspace; a
    # supernet row is not standalone, and its architecture is evaluated already
    sub = Subspace(2, 2, (4, 8, 16))
    drawn = [a.arch_id for a in sub.sample(3, np.random.default_rng(0))]
    extra = next(a.arch_id for a in sub.sample(10, np.random.default_rng(1))
                 if a.arch_id not in drawn)
    bigger = "s2|c8-8-16|k3-3-3|b1-1-1|r0-0-0|n1-1-1"
    known = tmp_path / "known"
    write_rows(known, "evaluations", [
        {"space": "unet3d-v2", "arch_id": a, "task": "msd/hippocampus", "method": m,
         "seed": 0, "val_dice": 0.5, "run_id": "r"}
        for a, m in ((drawn[2], "standalone"), (extra, "standalone"),
                     (bigger, "standalone"), (drawn[0], "supernet"))], "test")
    write_manifest(known)
    ev = ["evaluate", *base, "--archs", "3", "--chunk", "1", "--tables", str(known)]
    evaluated = lambda: sorted(  # noqa: E731
        a for f in (root / "evaluate" / "jobs").glob("*/evaluations/**/*.parquet")
        for a in pq.read_table(f).column("arch_id").to_pylist())
    root = next((tmp_path / "w" / "msd_hippocampus").iterdir())
    assert main([*ev, "--limit-jobs", "2"]) == 0  # the standalone ones first
    assert evaluated() == sorted([extra, drawn[2]])
    assert main([*ev, "--workers", "2"]) == 0
    assert evaluated() == sorted([drawn[1], drawn[2], extra])  # drawn[0] is in the tables
    assert main(["train", *base[:-2], "--cmax", "4", "8", "17"]) == 2  # not a width
    assert "-v2-c4-8-16-" in root.name
    tables = tmp_path / "tables"
    release(root, tables)
    release(root / "evaluate", tables)
    assert validate(tables).ok
    with medbench.open(tables) as store:
        evals = store.sql("SELECT space, arch_id, method FROM evaluations").fetchall()
        (curve,) = store.sql("SELECT space, arch_id FROM curves").fetchall()
        args = json.loads(store.sql("SELECT args FROM runs WHERE args LIKE '%recipe%' "
                                    "LIMIT 1").fetchall()[0][0])
    from medbench.spaces import unet3d_v2

    assert len(evals) == 3 and all(s == "unet3d-v2" and m == "supernet" for s, _, m in evals)
    assert all(unet3d_v2.from_id(a) in sub for _, a, _ in evals)
    assert curve == ("unet3d-v2", sub.largest().arch_id)
    assert args["recipe"]["cmax"] == [4, 8, 16]
    # a fresh checkout (no evaluate folder) skips what is released: only drawn[0] is left
    import shutil

    shutil.rmtree(root / "evaluate")
    assert main(["evaluate", *base, "--archs", "3", "--chunk", "1", "--tables",
                 str(tables)]) == 0
    assert evaluated() == [drawn[0]]
    # a retrained supernet whose curve differs from the released one is refused
    with medbench.open(tables) as store:
        (row,) = store.sql("SELECT * FROM curves").arrow().read_all().to_pylist()
    write_rows(root / "jobs" / "retrained", "curves", [{**row, "val_dice": row["val_dice"] / 2}],
               "retrained")
    capsys.readouterr()
    assert main(["evaluate", *base, "--archs", "3", "--tables", str(tables)]) == 2
    assert "is not the released one: epoch 1" in capsys.readouterr().err
