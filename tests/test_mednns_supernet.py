"""The mednns weight-sharing supernet and the zoo builder (synthetic arrays in the MedMNIST
layout: code paths only, never benchmark content)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("medmnist")

from builders import mednns_supernet as zoo  # noqa: E402
from builders.jobs import WorkDir, run_jobs  # noqa: E402
from medbench.spaces.nets import mednns_supernet as sn  # noqa: E402
from medbench.spaces import mednns  # noqa: E402
from medbench.spaces.nets import build, build_supernet  # noqa: E402
from test_medmnist_proxies import synthetic  # noqa: E402

# the slow tier: they train supernets
pytestmark = pytest.mark.slow

ARCHS = [mednns.largest(), mednns.smallest(),
         *mednns.sample_choices(4, np.random.default_rng(0))]


@pytest.fixture(scope="module")
def supernet():
    torch.manual_seed(0)
    net = build_supernet("mednns", 3, 5)
    with torch.no_grad():  # statistics and scales that differ per channel, so slices matter
        for m in net.modules():  # (and residual branches opened: they start at zero)
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    return net.eval()


@pytest.mark.parametrize("arch", ARCHS, ids=lambda a: a.arch_id[:24])
def test_extracted_subnet_computes_the_sliced_forward(supernet, arch):
    x = torch.randn(3, 3, 12, 12)
    sub = sn.extract(supernet, arch)
    assert sub.classifier.in_features == mednns.stage_channels(3, arch.widths[5])
    assert len(sub.blocks) == sum(arch.depths)
    with torch.no_grad():
        assert torch.allclose(sn.forward(supernet, arch, x), sub(x), atol=1e-6)


def test_residual_branches_start_as_the_identity():
    net = build("mednns", mednns.smallest(), 1, 2)
    block = net.blocks[1]  # identity shortcut: the block passes its (non-negative) input
    x = torch.relu(torch.randn(2, block.body[0][0].in_channels, 6, 6))
    with torch.no_grad():
        assert torch.equal(block.eval()(x), x)


def test_the_largest_subnet_is_the_supernet(supernet):
    x = torch.randn(2, 3, 12, 12)
    with torch.no_grad():
        assert torch.equal(sn.extract(supernet, mednns.largest())(x), supernet(x))
    smallest = sn.extract(supernet, mednns.smallest())
    with torch.no_grad():
        assert not torch.allclose(smallest(x), supernet(x))
    assert sum(p.numel() for p in smallest.parameters()) < \
        sum(p.numel() for p in supernet.parameters()) / 5


def test_training_a_subnet_touches_only_its_slices():
    torch.manual_seed(1)
    net = build_supernet("mednns", 1, 2).train()
    with torch.no_grad():  # residual branches start at zero: open them so gradients flow
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
    arch = mednns.smallest()
    bn = net.blocks[0].body[0][1]
    before = bn.running_mean.clone()
    sn.forward(net, arch, torch.randn(6, 1, 12, 12)).sum().backward()
    c = mednns.mid_channels(mednns.stage_channels(0, 0), 0.2)
    w = net.blocks[0].body[0][0].weight.grad
    assert w[:c].abs().sum() > 0 and w[c:].abs().sum() == 0
    assert (bn.running_mean[:c] != before[:c]).all() and torch.equal(bn.running_mean[c:],
                                                                    before[c:])
    dropped = net.blocks[mednns.BASE_DEPTH[0]]  # a block the smallest network leaves out
    assert all(p.grad is None for p in dropped.parameters())
    assert all(p.grad is None for p in net.stem[1].parameters())  # the stem block too


def test_recalibration_estimates_the_batch_norm_inputs_statistics(supernet):
    sub = sn.extract(supernet, ARCHS[2])
    images = torch.randn(24, 3, 10, 10)
    sn.recalibrate(sub, images, batch_size=8)
    assert not sub.training
    conv, bn = sub.stem[0][0], sub.stem[0][1]
    with torch.no_grad():
        h = conv(images)
    assert torch.allclose(bn.running_mean, h.mean((0, 2, 3)), atol=1e-5)
    per_batch = torch.stack([h[i:i + 8].var((0, 2, 3), unbiased=True) for i in (0, 8, 16)])
    assert torch.allclose(bn.running_var, per_batch.mean(0), atol=1e-5)
    assert bn.momentum == 0.1  # restored


def _build(work, task, recipe, jobs):
    from functools import partial

    run = partial(zoo.train_chunk, task=task, recipe=recipe, device="cpu", work=work, cache={})
    return run_jobs(work, jobs, run, builder=zoo.BUILDER, version=zoo.VERSION, device="test")


def test_training_resumes_to_the_same_weights_and_evaluates_a_zoo(tmp_path):
    task = synthetic("retinamnist", n=24, size=12, channels=3)
    recipe = zoo.Recipe(steps=(2, 1, 1, 2), chunk_steps=1, batch_size=4, random_subnets=1)
    jobs = zoo.plan_training(recipe)
    assert [j.args["stage"] for j in jobs] == ["full", "full", "depth", "width", "sandwich",
                                               "sandwich"]
    straight, resumed = WorkDir(tmp_path / "a"), WorkDir(tmp_path / "b")
    _build(straight, task, recipe, jobs)
    _build(resumed, task, recipe, jobs[:3])  # a build stopped after three chunks ...
    with pytest.raises(Exception, match="train it first"):
        zoo.trained(resumed, recipe)
    counts = _build(resumed, task, recipe, jobs)  # ... and run again
    assert counts["skipped"] == 3 and counts["ok"] == 3
    a, b = (torch.load(zoo.trained(w, recipe), weights_only=False)["model"]
            for w in (straight, resumed))
    assert all(torch.equal(a[k], b[k]) for k in a)

    archs = [x.arch_id for x in mednns.sample_choices(3, np.random.default_rng(0))]
    rows = zoo.evaluate_chunk(zoo.Job("eval-00000", {"archs": archs}), "r1", task=task,
                              recipe=recipe, device="cpu", checkpoint=zoo.trained(straight,
                                                                                  recipe),
                              n_recalibrate=8, cache={})
    ev = rows["evaluations"]
    assert [r["arch_id"] for r in ev] == archs and {r["method"] for r in ev} == {"supernet"}
    assert all(0 <= r[f"{p}_{m}"] <= 1 for r in ev for p in ("val", "test")
               for m in ("acc", "auc"))
    assert all(r["val_loss"] > 0 for r in ev)
    assert [c["params"] for c in rows["costs"]] == [
        sum(p.numel() for p in build("mednns", mednns.from_id(a), 3, 5).parameters())
        for a in archs]


def test_a_3d_set_trains_a_3d_supernet_and_evaluates_its_zoo(tmp_path):
    task = synthetic("adrenalmnist3d", n=12, size=8, dims=3)
    assert task.dims == 3
    recipe = zoo.Recipe(steps=(1, 0, 0, 1), chunk_steps=1, batch_size=4, random_subnets=1)
    work = WorkDir(tmp_path / "w")
    assert _build(work, task, recipe, zoo.plan_training(recipe))["ok"] == 2
    state = torch.load(zoo.trained(work, recipe), weights_only=False)["model"]
    assert {v.dim() for v in state.values() if v.dim() > 2} == {5}  # 3D convolutions only
    archs = [x.arch_id for x in mednns.sample_choices(2, np.random.default_rng(1))]
    rows = zoo.evaluate_chunk(zoo.Job("eval-00000", {"archs": archs}), "r1", task=task,
                              recipe=recipe, device="cpu", checkpoint=zoo.trained(work, recipe),
                              n_recalibrate=4, cache={})
    assert [r["task"] for r in rows["evaluations"]] == ["medmnist/adrenalmnist3d"] * 2
    assert all(0 <= r[f"{p}_{m}"] <= 1 for r in rows["evaluations"] for p in ("val", "test")
               for m in ("acc", "auc"))
    assert [c["input_shape"] for c in rows["costs"]] == [[1, 8, 8, 8]] * 2
    assert [c["params"] for c in rows["costs"]] == [
        sum(p.numel() for p in build("mednns", mednns.from_id(a), 1, 2, dims=3).parameters())
        for a in archs]


def test_recalibration_images_are_fixed_by_the_seed():
    task = synthetic("breastmnist", n=30, size=8)
    a, b = zoo.recalibration_images(task, 10, 0), zoo.recalibration_images(task, 10, 0)
    assert a.shape == (10, 1, 8, 8) and torch.equal(a, b)
    assert not torch.equal(a, zoo.recalibration_images(task, 10, 1))


def test_bad_arguments_are_one_line(capsys):
    assert zoo.main(["train", "--task", "hippocampus"]) == 2
    assert zoo.main(["train", "--task", "breastmnist", "--steps", "0", "0", "0", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(e.startswith("builders.mednns_supernet: error:") for e in err)
