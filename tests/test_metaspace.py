"""builders.metaspace on a tiny synthetic zoo: three MedMNIST-named sets whose made-up
accuracies follow one rule of the subnets' topology (numbers to test the code path, never
benchmark content)."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("torch")

import medbench  # noqa: E402
from builders import metaspace  # noqa: E402
from medbench.recommend import leave_one_out as recommend_loo  # noqa: E402
from medbench.release import write_manifest, write_rows  # noqa: E402
from medbench.spaces import mednns  # noqa: E402

# the slow tier: it learns a meta-space
pytestmark = pytest.mark.slow

RUN = "run-meta"
TASKS = ["medmnist/breastmnist", "medmnist/pneumoniamnist", "medmnist/retinamnist"]
OFFSET = {TASKS[0]: 0.80, TASKS[1]: 0.85, TASKS[2]: 0.50}
FEATURES = {TASKS[0]: [1.0, 0.0, 0.2], TASKS[1]: [0.0, 1.0, 0.2], TASKS[2]: [0.3, 0.8, 0.1]}
DIST = {(0, 1): 40.0, (0, 2): 30.0, (1, 2): 10.0}


def _quality(arch) -> float:
    """The synthetic zoo's rule: more blocks and wider is better, on every set."""
    return 0.004 * sum(arch.depths) + 0.003 * sum(arch.widths)


@pytest.fixture(scope="module")
def zoo_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("meta") / "tables"
    archs = mednns.sample(60, np.random.default_rng(3))
    write_rows(root, "runs", [{"run_id": RUN, "builder": "tests", "builder_version": "0",
                               "status": "ok"}], "meta")
    write_rows(root, "tasks", [{"task": t, "collection": "medmnist", "name": t.split("/")[1],
                                "dims": 2, "label_kind": "classification", "n_classes": 2,
                                "metric": "acc", "run_id": RUN} for t in TASKS], "meta")
    write_rows(root, "architectures", [{"space": "mednns", "arch_id": a.arch_id,
                                        "arch_index": a.arch_index, "config": a.config_json(),
                                        "run_id": RUN} for a in archs], "meta")
    write_rows(root, "evaluations", [
        {"space": "mednns", "arch_id": a.arch_id, "task": t, "method": "supernet", "seed": 0,
         "val_acc": OFFSET[t] + _quality(a), "test_acc": OFFSET[t] + _quality(a) - 0.01,
         "run_id": RUN} for a in archs for t in TASKS], "meta")
    write_rows(root, "costs", [{"space": "mednns", "arch_id": a.arch_id, "task": t,
                                "params": 1000 + i, "run_id": RUN}
                               for i, a in enumerate(archs) for t in TASKS], "meta")
    write_rows(root, "task_features", [
        {"task": t, "method": "fid/test", "n_samples": 100, "feature_mean": FEATURES[t],
         "feature_cov": list(np.eye(3).ravel()), "run_id": RUN} for t in TASKS], "meta")
    write_rows(root, "task_distances", [
        {"task_a": TASKS[x], "task_b": TASKS[y], "method": "fid/test", "distance": d,
         "n_samples_a": 100, "n_samples_b": 100, "run_id": RUN}
        for (a, b), d in DIST.items() for x, y in ((a, b), (b, a))], "meta")
    write_manifest(root)
    return root


def test_topology_is_the_one_hot_of_the_mednns_encoding():
    arch = mednns.largest()
    enc = arch.mednns_encoding()
    vec = metaspace.topology("mednns", arch.arch_id).reshape(-1, 3)
    assert vec.shape == (5 + 18 + 6, 3) and (vec.sum(1) == 1).all()
    assert vec[0].argmax() == enc["d"][0] == 2  # the stem block kept
    assert list(vec[5:23].argmax(1)) == [mednns.EXPANDS.index(e) for e in enc["e"]]
    assert list(vec[23:].argmax(1)) == enc["w"] == [2] * 6
    small = metaspace.topology("mednns", mednns.smallest().arch_id)
    assert not np.array_equal(small, vec.ravel())
    with pytest.raises(medbench.MedbenchError, match="mednns subnets only"):
        metaspace.topology("unet3d", "s2|c8-8-64|k3-3-3|b2-1-1|r0-0-0")


def test_load_zoo_lines_up_sets_and_subnets(zoo_root):
    with medbench.open(zoo_root) as store:
        zoo = metaspace.load_zoo(store)
    assert zoo.tasks == TASKS and zoo.metric == "acc" and zoo.distance_method == "fid/test"
    assert zoo.arch_ids == sorted(zoo.arch_ids) and zoo.val.shape == (3, len(zoo.arch_ids))
    a = mednns.from_id(zoo.arch_ids[0])
    assert zoo.val[1, 0] == pytest.approx(OFFSET[TASKS[1]] + _quality(a))
    assert zoo.fid[0, 2] == 30.0 and zoo.fid[2, 0] == 30.0 and np.isnan(zoo.fid[1, 1])
    assert zoo.features[1].tolist() == FEATURES[TASKS[1]]


def test_metaspace_learns_a_ranking_shared_by_the_sets(zoo_root):
    """Trained on two sets, the meta-space ranks the third by the rule they share; the
    nearest-set rule agrees with medbench recommend's leave-one-out."""
    with medbench.open(zoo_root) as store:
        zoo = metaspace.load_zoo(store)
        expected = {r["task"]: r for r in recommend_loo(store, "mednns", "supernet")}
    rows = metaspace.leave_one_out(zoo, [0, 1], metaspace.Setting(steps=200))
    assert [r["task"] for r in rows] == TASKS
    for r in rows:
        assert r["nearest_task"] == expected[r["task"]]["source"]
        assert r["nearest"]["top1"] == pytest.approx(expected[r["task"]]["recommended"])
        assert r["metaspace"]["tau"] > 0.6, r
        assert r["metaspace"]["top1"] > r["random"]
        assert len(r["metaspace"]["tau_runs"]) == 2
    # a seeded training gives the same scores again
    one = metaspace.scores(metaspace.train(zoo, [0, 1], 5, metaspace.Setting(steps=20)), zoo, 2)
    two = metaspace.scores(metaspace.train(zoo, [0, 1], 5, metaspace.Setting(steps=20)), zoo, 2)
    assert np.array_equal(one, two)


def test_main_writes_the_report_and_rejects_bad_input(zoo_root, tmp_path, capsys):
    out = tmp_path / "report"
    assert metaspace.main(["--tables", str(zoo_root), "--seeds", "0", "--steps", "20",
                           "--out", str(out)]) == 0
    result = json.loads((out / "metaspace.json").read_text())
    assert result["builder_version"] == metaspace.VERSION and result["seeds"] == [0]
    assert [r["task"] for r in result["rows"]] == TASKS
    assert "| medmnist/retinamnist | medmnist/pneumoniamnist |" in \
        (out / "metaspace.md").read_text()
    capsys.readouterr()
    assert metaspace.main(["--tables", str(zoo_root), "--method", "standalone",
                           "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("builders.metaspace: error: the meta-space "
                                               "needs two or more sets")
