"""Zero-cost proxies on tiny networks where the answer can be worked out by hand."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("monai")

from torch import nn  # noqa: E402

from builders.proxies import PROXIES, score  # noqa: E402
from medbench.errors import UnknownNameError  # noqa: E402
from medbench.spaces.nets import build  # noqa: E402

# the slow tier: it scores networks with torch
pytestmark = pytest.mark.slow

mse = nn.MSELoss()


def two_layer(w1, w2):
    net = nn.Sequential(nn.Linear(2, 2, bias=False), nn.ReLU(), nn.Linear(2, 1, bias=False))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor(w1, dtype=torch.float32))
        net[2].weight.copy_(torch.tensor(w2, dtype=torch.float32))
    return net


def test_the_registry_has_the_13_suite_zero_proxies():
    assert sorted(PROXIES) == ["epe_nas", "fisher", "flops", "grad_norm", "grasp", "jacov",
                               "l2_norm", "nwot", "params", "plain", "snip", "synflow", "zen"]
    with pytest.raises(UnknownNameError, match="synflow"):
        score("synflo", two_layer([[1, 0], [0, 1]], [[1, 1]]), torch.ones(1, 2),
              torch.ones(1, 1), mse)


def test_params_and_l2_norm_exactly():
    net = two_layer([[3.0, 4.0], [0.0, 0.0]], [[1.0, 2.0]])
    x, y = torch.ones(4, 2), torch.zeros(4, 1)
    assert score("params", net, x, y, mse) == 6
    assert score("l2_norm", net, x, y, mse) == pytest.approx(5.0 + math.sqrt(5.0))


def test_synflow_on_a_two_layer_linear_net():
    # |W| everywhere; input ones: h = |W1| 1, out = |W2| h; R = out; dR/dW2 = h, dR/dW1 = |W2|^T 1^T
    w1, w2 = [[1.0, -2.0], [3.0, 0.5]], [[-1.0, 2.0]]
    net = two_layer(w1, w2)
    h = [3.0, 3.5]  # |W1| @ [1, 1]
    expected = sum(abs(w2[0][j]) * h[j] for j in range(2)) + sum(
        abs(w1[i][j]) * abs(w2[0][i]) for i in range(2) for j in range(2))
    assert score("synflow", net, torch.zeros(3, 2), torch.zeros(3, 1), mse) == \
        pytest.approx(expected)
    assert net[0].weight[0, 1] == -2.0  # ran on a copy


def test_snip_plain_grad_norm_from_hand_gradients():
    net = nn.Sequential(nn.Linear(1, 1, bias=False))
    with torch.no_grad():
        net[0].weight.fill_(2.0)
    x, y = torch.tensor([[1.0], [3.0]]), torch.tensor([[0.0], [0.0]])
    # L = mean((2x)^2) = (4 + 36) / 2 = 20; dL/dw = mean(2 * 2x * x) = (4 + 36) / 2 = 20
    assert score("grad_norm", net, x, y, mse) == pytest.approx(20.0)
    assert score("snip", net, x, y, mse) == pytest.approx(40.0)
    assert score("plain", net, x, y, mse) == pytest.approx(40.0)


def test_nwot_on_known_activation_patterns():
    net = nn.Sequential(nn.Identity(), nn.ReLU())
    x = torch.tensor([[1.0, 1.0], [1.0, -1.0], [-1.0, -1.0]])
    # codes c: [1,1], [1,0], [0,0]; K_ij = number of positions where codes agree
    k = torch.tensor([[2.0, 1.0, 0.0], [1.0, 2.0, 1.0], [0.0, 1.0, 2.0]], dtype=torch.float64)
    assert score("nwot", net, x, torch.zeros(3, 2), mse) == pytest.approx(
        float(torch.linalg.slogdet(k)[1]))


def test_jacov_on_a_linear_map():
    # a linear net has the same Jacobian for every sample: correlation all ones, eigenvalues
    # (n, 0, ..., 0), so the score is -(log(n + 1e-5) + 1/(n + 1e-5)
    #                                    + (n - 1) (log(1e-5) + 1e5))
    net = nn.Sequential(nn.Linear(4, 3))
    n = 5
    expected = -((math.log(n + 1e-5) + 1 / (n + 1e-5)) + (n - 1) * (math.log(1e-5) + 1e5))
    assert score("jacov", net, torch.randn(n, 4), torch.zeros(n, 3), mse) == pytest.approx(
        expected, rel=1e-4)


def test_every_proxy_runs_on_a_unet_and_is_seed_deterministic():
    from monai.losses import DiceCELoss

    from medbench.spaces import unet3d

    net = build("unet3d", unet3d.from_id("s2|c4-8-16|k3-3-3|b1-1-1|r1-0-0"), 1, 3)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(4, 1, 16, 16, 16, generator=gen)
    y = torch.randint(0, 3, (4, 1, 16, 16, 16), generator=gen).float()
    loss = DiceCELoss(to_onehot_y=True, softmax=True)
    for name in PROXIES:
        a, b = score(name, net, x, y, loss, seed=1), score(name, net, x, y, loss, seed=1)
        assert a == b or (math.isnan(a) and math.isnan(b)), name
        assert not math.isnan(a) or name in ("grasp",), name
    assert score("zen", net, x, y, loss, seed=1) != score("zen", net, x, y, loss, seed=2)


def test_score_all_shares_passes_and_gives_the_same_scores():
    import time

    from builders.proxies import SHARED_PASSES, score_all

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(6, 1, 8, 8, generator=gen), torch.tensor([0, 1, 2, 0, 1, 2])
    loss = nn.CrossEntropyLoss()
    calls = {"n": 0}

    def count(module, inputs):  # deep copies keep the hook: counts every forward pass
        calls["n"] += 1
        time.sleep(0.02)  # and makes each take 20 ms at least

    net[0].register_forward_pre_hook(count)
    alone = {name: score(name, net, x, y, loss, seed=3) for name in PROXIES}
    passes_alone, calls["n"] = calls["n"], 0
    both = score_all(net, x, y, loss, seed=3)
    assert set(both) == set(PROXIES)
    for name, value in alone.items():
        assert both[name][0] == value or (math.isnan(value) and math.isnan(both[name][0]))
        assert both[name][1] > 0
    saved = sum(len(group) - 1 for group in SHARED_PASSES)  # one pass per group, not each
    assert passes_alone - calls["n"] == saved == 5
    # a proxy that reuses a pass is charged its time: none is free, as if run on its own
    assert all(both[n][1] >= 0.02 for group in SHARED_PASSES for n in group)
    assert both["params"][1] < 0.02  # no forward pass


def test_proxy_builder_on_a_tiny_task(tmp_path, monkeypatch, capsys):
    from test_builders import make_task

    import medbench
    from builders.proxies import main
    from builders.release import release
    from medbench.validate import validate

    data = make_task(tmp_path / "msd")
    work = tmp_path / "work"
    arch = "unet3d:s1|c4-8-16|k3-3-3|b1-1-1|r0-0-0"
    args = ["--data-root", str(data), "--tables", str(tmp_path / "none"), "--plan", "0",
            "--seeds", "0", "1", "--batch-size", "3", "--spatial", "16", "16", "16",
            "--work", str(work), "--splits-dir", str(tmp_path / "s"), "--threads", "1"]
    assert main(args) == 2  # nothing to score
    from builders import plans

    asked = []
    monkeypatch.setattr(plans, "architectures_to_measure",
                        lambda *a: asked.append(a[3:]) or [tuple(arch.split(":", 1))])
    assert main(args) == 0
    assert main(args) == 0  # resume: nothing left
    # --space and --method choose which released architectures are scored
    assert main([*args, "--space", "unet3d", "--method", "standalone"]) == 0
    assert asked == [(None, None), (None, None), ("unet3d", "standalone")]
    folder = work / "msd_hippocampus" / "b3-16x16x16"
    assert len(list((folder / "jobs").iterdir())) == 2
    tables = tmp_path / "tables"
    release(folder, tables)
    assert validate(tables).ok, validate(tables).problems
    with medbench.open(tables) as store:
        got = store.sql("SELECT proxy, count(*), count(score), min(batch_size) FROM proxies "
                        "GROUP BY proxy ORDER BY proxy").fetchall()
    assert len(got) == 13 and all(n == 2 and b == 3 for _, n, _, b in got)
    assert dict((p, s) for p, _, s, _ in got)["params"] == 2
    # a later build whose work folder is gone skips what the tables hold
    import json

    fresh = [*args[:args.index("--tables") + 1], str(tables),
             *args[args.index("--tables") + 2:]]
    fresh[fresh.index("--work") + 1] = str(tmp_path / "fresh")
    assert main(fresh) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["released"] == 2
    assert not any((tmp_path / "fresh" / "msd_hippocampus" / "b3-16x16x16" / "jobs").iterdir())
