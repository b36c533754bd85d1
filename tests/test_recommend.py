"""medbench recommend on a tiny synthetic zoo: three MedMNIST-named tasks, four architectures
(made-up numbers to test the code path, never benchmark content)."""

from __future__ import annotations

import pytest
from conftest import one_line_error

import medbench
from medbench.recommend import leave_one_out, recommend
from medbench.release import write_manifest, write_rows

RUN = "run-zoo"
TASKS = ["medmnist/breastmnist", "medmnist/pneumoniamnist", "medmnist/retinamnist"]
# arch -> params, and val/test accuracy per task (breast, pneumonia, retina)
ZOO = {
    "a": (100_000, (0.70, 0.90, 0.40)),
    "b": (2_000_000, (0.80, 0.85, 0.55)),
    "c": (500_000, (0.75, 0.95, 0.45)),
    "d": (900_000, (0.60, 0.80, 0.50)),
}
DIST = {("breastmnist", "pneumoniamnist"): 2.0, ("breastmnist", "retinamnist"): 5.0,
        ("pneumoniamnist", "retinamnist"): 3.0}


@pytest.fixture
def zoo(tmp_path):
    root = tmp_path / "zoo"
    write_rows(root, "runs", [{"run_id": RUN, "builder": "tests", "builder_version": "0",
                               "status": "ok"}], "zoo")
    write_rows(root, "tasks", [{"task": t, "collection": "medmnist", "name": t.split("/")[1],
                                "dims": 2, "label_kind": "classification", "n_classes": 2,
                                "metric": "acc", "run_id": RUN} for t in TASKS], "zoo")
    write_rows(root, "architectures", [{"space": "mednns", "arch_id": a, "arch_index": i,
                                        "config": "{}", "run_id": RUN}
                                       for i, a in enumerate(ZOO)], "zoo")
    evals, costs = [], []
    for a, (params, accs) in ZOO.items():
        for t, acc in zip(TASKS, accs):
            evals.append({"space": "mednns", "arch_id": a, "task": t, "method": "supernet",
                          "seed": 0, "val_acc": acc, "test_acc": acc - 0.01, "run_id": RUN})
            costs.append({"space": "mednns", "arch_id": a, "task": t, "params": params,
                          "run_id": RUN})
    write_rows(root, "evaluations", evals, "zoo")
    write_rows(root, "costs", costs, "zoo")
    write_rows(root, "devices", [{"device": "cpu-x", "kind": "cpu", "run_id": RUN}], "zoo")
    # latency of every architecture on pneumonia; only a and b measured on breast
    write_rows(root, "hardware", [
        {"space": "mednns", "arch_id": a, "task": t, "device": "cpu-x", "runtime": "onnxruntime",
         "threads": 1, "batch": 1, "latency_ms": ms, "latency_method": "measured",
         "run_id": RUN}
        for t, lat in (("medmnist/pneumoniamnist", {"a": 1.0, "b": 4.0, "c": 2.5, "d": 3.0}),
                       ("medmnist/breastmnist", {"a": 1.5, "b": 1.9}))
        for a, ms in lat.items()], "zoo")
    dist = []
    for (x, y), d in DIST.items():
        for a, b in ((x, y), (y, x)):
            dist.append({"task_a": f"medmnist/{a}", "task_b": f"medmnist/{b}",
                         "method": "fid/test", "distance": d, "n_samples_a": 200,
                         "n_samples_b": 200, "run_id": RUN})
    write_rows(root, "task_distances", dist, "zoo")
    write_manifest(root)
    return root


def test_nearest_dataset_ranking_and_limits(zoo):
    with medbench.open(zoo) as store:
        rec = recommend(store, "breastmnist", "mednns", limit=2)
        assert rec.source == "medmnist/pneumoniamnist" and rec.distance == 2.0
        assert [r["arch_id"] for r in rec.rows] == ["c", "a"]  # pneumonia's best first
        assert rec.rows[0]["expected"] == pytest.approx(0.95)
        assert rec.rows[0]["own_test"] == pytest.approx(0.74)  # c on breast itself
        small = recommend(store, "breastmnist", "mednns", limit=5, max_params=200_000)
        assert [r["arch_id"] for r in small.rows] == ["a"]
        assert recommend(store, "retinamnist", "mednns").source == "medmnist/pneumoniamnist"


def test_leave_one_out(zoo):
    with medbench.open(zoo) as store:
        rows = {r["task"]: r for r in leave_one_out(store, "mednns")}
    breast = rows["medmnist/breastmnist"]
    assert breast["recommended"] == pytest.approx(0.74)       # c, from pneumonia
    assert breast["largest"] == pytest.approx(0.79)           # b has the most parameters
    assert breast["best"] == pytest.approx(0.79)
    assert breast["random"] == pytest.approx((0.70 + 0.80 + 0.75 + 0.60) / 4 - 0.01)
    pneumonia = rows["medmnist/pneumoniamnist"]
    assert pneumonia["source"] == "medmnist/breastmnist"      # distance 2 < 3
    assert pneumonia["recommended"] == pytest.approx(0.84)    # b, breast's best


def test_command(cli, zoo):
    r = cli(zoo, "recommend", "--dataset", "breastmnist", "--limit", "2", "--format", "csv")
    assert r.code == 0, r.err
    assert r.out.splitlines()[0].startswith("arch_id,expected,params")
    assert r.out.splitlines()[1].startswith("c,0.95")
    assert "nearest data set to medmnist/breastmnist: medmnist/pneumoniamnist" in r.err
    for args, message in ((("--dataset", "./my_images"), "not a known task and no such file"),
                          (("--dataset", "breastmnist", "--limit", "0"), "--limit"),
                          (("--dataset", "bloodmnist"), "no distance")):
        bad = cli(zoo, "recommend", *args)
        assert one_line_error(bad) and message in bad.err, bad.err


def test_the_datasheet_has_the_leave_one_out_table(zoo):
    from medbench.datasheet import generate

    with medbench.open(zoo) as store:
        section = generate(store)
    assert "### Recommendation, leave one data set out" in section
    assert "| mednns (supernet) | medmnist/breastmnist | medmnist/pneumoniamnist | acc | 0.740 |" \
        in section


def test_leave_one_out_keeps_to_one_training_method(zoo):
    # standalone results of one architecture on breast, far from its supernet numbers
    write_rows(zoo, "evaluations", [{"space": "mednns", "arch_id": "a",
                                     "task": "medmnist/breastmnist", "method": "standalone",
                                     "seed": 0, "val_acc": 0.2, "test_acc": 0.1,
                                     "run_id": RUN}], "standalone")
    write_manifest(zoo)
    with medbench.open(zoo) as store:
        rows = {r["task"]: r for r in leave_one_out(store, "mednns", "supernet")}
        mixed = {r["task"]: r for r in leave_one_out(store, "mednns")}
    breast = rows["medmnist/breastmnist"]
    assert breast["random"] == pytest.approx((0.69 + 0.79 + 0.74 + 0.59) / 4)
    assert mixed["medmnist/breastmnist"]["random"] < breast["random"]  # what mixing would do


def test_distances_only_to_sets_without_results_say_so(cli, zoo):
    """A 3D set measured against another 3D set, neither with a zoo: the error names them
    rather than asking for distances that exist."""
    write_rows(zoo, "task_distances", [
        {"task_a": a, "task_b": b, "method": "fid/test", "distance": 1.0, "n_samples_a": 200,
         "n_samples_b": 200, "run_id": RUN}
        for a, b in (("medmnist/adrenalmnist3d", "medmnist/vesselmnist3d"),
                     ("medmnist/vesselmnist3d", "medmnist/adrenalmnist3d"),
                     ("medmnist/adrenalmnist3d", "pooled-3d"))], "3d")
    write_manifest(zoo)
    bad = cli(zoo, "recommend", "--dataset", "adrenalmnist3d")
    assert one_line_error(bad) and "no task with results is near medmnist/adrenalmnist3d: " \
        "it has distances only to medmnist/vesselmnist3d, which have none" in bad.err, bad.err


def test_latency_limit_uses_the_data_sets_own_measurement_first(zoo):
    with medbench.open(zoo) as store:
        rec = recommend(store, "breastmnist", "mednns", max_latency_ms=2.0)
        # c and d (2.5, 3 ms on pneumonia's input) are out; b is 4 ms there, 1.9 on breast
        assert [(r["arch_id"], r["latency_ms"]) for r in rec.rows] == [("a", 1.5), ("b", 1.9)]
        assert rec.device == "cpu-x"
        with pytest.raises(medbench.MedbenchError, match="no mednns latency measured"):
            recommend(store, "breastmnist", "mednns", max_latency_ms=2.0, threads=4)
        shown = recommend(store, "breastmnist", "mednns", limit=1)  # shown without a limit
        assert shown.rows[0]["arch_id"] == "c" and shown.rows[0]["latency_ms"] == 2.5
        assert shown.device == "cpu-x"
        assert recommend(store, "breastmnist", "mednns", threads=4).rows[0]["latency_ms"] \
            is None  # nothing measured so: no column to fill, no error without a limit


def test_an_embedded_data_set_takes_its_nearest_held_set(zoo):
    from types import SimpleNamespace

    new = SimpleNamespace(method="fid/test", distances={"medmnist/retinamnist": 1.0,
                                                        "medmnist/breastmnist": 4.0})
    with medbench.open(zoo) as store:
        rec = recommend(store, "my_images/", "mednns", embedding=new, limit=1)
        assert (rec.task, rec.source, rec.distance) == ("my_images/", "medmnist/retinamnist", 1.0)
        assert rec.rows[0]["arch_id"] == "b" and rec.rows[0]["own_val"] is None
        far = SimpleNamespace(method="fid/test", distances={"medmnist/bloodmnist": 1.0})
        with pytest.raises(medbench.MedbenchError, match="none with mednns results"):
            recommend(store, "my_images/", "mednns", embedding=far)
