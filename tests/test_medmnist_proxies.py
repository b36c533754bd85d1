"""MedMNIST data checks and zero-cost proxies of sampled mstf architectures (synthetic
arrays in the MedMNIST layout: code paths only, never benchmark content)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")
medmnist = pytest.importorskip("medmnist")

from builders.data import medmnist as medmnist_data  # noqa: E402
from builders.proxies import PROXIES, classification_rows  # noqa: E402
from medbench.errors import MedbenchError  # noqa: E402
from medbench.spaces import mstf  # noqa: E402

# the slow tier: it scores and trains networks
pytestmark = pytest.mark.slow


def synthetic(name="breastmnist", n=40, size=8, channels=None, dims=2):
    info = medmnist.INFO[name]
    rng = np.random.default_rng(0)
    shape = (n, *(size,) * dims, *(() if channels is None else (channels,)))
    arrays = {}
    for part in ("train", "val", "test"):
        arrays[f"{part}_images"] = rng.integers(0, 256, shape, dtype=np.uint8)
        arrays[f"{part}_labels"] = rng.integers(0, len(info["label"]), (n, 1))
    return medmnist_data.MedMNISTTask(f"medmnist/{name}", info, arrays, "0" * 64)


def test_batches_are_seeded_stratified_and_scaled():
    task = synthetic("retinamnist", channels=3)
    x, y = task.batch(10, seed=3)
    assert x.shape == (10, 3, 8, 8) and float(x.min()) >= -1 and float(x.max()) <= 1
    assert sorted(set(y.tolist())) == [0, 1, 2, 3, 4]  # every class in the batch
    x2, y2 = task.batch(10, seed=3)
    assert (x == x2).all() and (y == y2).all()
    assert not (task.batch(10, seed=4)[0] == x).all()
    row = task.tasks_row("r")
    assert row["metric"] == "acc" and row["n_classes"] == 5 and row["dims"] == 2
    assert row["input_shape"] == [3, 8, 8] and row["licence"] == "CC BY 4.0"
    from medbench.schema import get_table

    assert row["label_kind"] == "ordinal-regression"
    for name in ("breastmnist", "chestmnist", "bloodmnist"):  # every kind the schema allows
        kind = synthetic(name).tasks_row("r")["label_kind"]
        assert kind in get_table("tasks").column("label_kind").allowed


def test_load_checks_the_official_md5(tmp_path):
    np.savez(tmp_path / "breastmnist.npz", train_images=np.zeros((2, 28, 28), np.uint8))
    with pytest.raises(MedbenchError, match="MD5"):
        medmnist_data.load("medmnist/breastmnist", tmp_path)
    with pytest.raises(MedbenchError, match="no pneumoniamnist.npz"):
        medmnist_data.load("medmnist/pneumoniamnist", tmp_path)
    with pytest.raises(MedbenchError, match="not a MedMNIST set"):
        medmnist_data.load("medmnist/nosuchmnist", tmp_path)


def test_every_proxy_scores_sampled_mstf_archs_and_repeats_by_seed():
    task = synthetic()
    archs = [a.arch_id for a in mstf.sample(2, np.random.default_rng(0))]
    out = classification_rows(task, "mstf", archs, seed=0, batch_size=16, run_id="r")
    rows = out["proxies"]
    assert len(rows) == 2 * len(PROXIES)
    assert {r["proxy"] for r in rows} == set(PROXIES)
    assert all(r["score"] is not None for r in rows), [r for r in rows if r["score"] is None]
    assert [a["arch_id"] for a in out["architectures"]] == archs
    assert out["tasks"][0]["task"] == "medmnist/breastmnist"
    again = classification_rows(task, "mstf", archs[:1], seed=0, batch_size=16, run_id="r")
    first = {r["proxy"]: r["score"] for r in rows if r["arch_id"] == archs[0]}
    assert {r["proxy"]: r["score"] for r in again["proxies"]} == pytest.approx(first)


def test_every_proxy_scores_a_mednns_network():
    from medbench.spaces import mednns

    task = synthetic(n=24)
    arch = mednns.sample_choices(1, np.random.default_rng(0))[0]
    rows = classification_rows(task, "mednns", [arch.arch_id], seed=0, batch_size=16,
                               run_id="r")["proxies"]
    missing = [r["proxy"] for r in rows if r["score"] is None]
    assert not missing, missing  # flops once failed: batch norm in train mode on a 1x1 map


def test_standalone_training_rows():
    from builders.medmnist_train import Recipe, train_and_evaluate

    task = synthetic(n=24)
    arch = mstf.sample(1, np.random.default_rng(2))[0]
    rows = train_and_evaluate(task, "mstf", arch.arch_id, 0, Recipe(epochs=2, batch_size=8),
                              "cpu", "run-x")
    (ev,) = rows["evaluations"]
    assert ev["epochs"] == 2 and ev["train_seconds"] > 0 and ev["method"] == "standalone"
    for k in ("val_acc", "test_acc", "val_auc", "test_auc"):
        assert 0.0 <= ev[k] <= 1.0
    assert [c["epoch"] for c in rows["curves"]] == [1, 2]
    assert rows["curves"][1]["elapsed_seconds"] > rows["curves"][0]["elapsed_seconds"]
    assert rows["costs"][0]["params"] > 0 and rows["costs"][0]["input_shape"] == [1, 8, 8]
    assert rows["architectures"][0]["arch_index"] == arch.arch_index
    from medbench.release import to_arrow

    for table, table_rows in rows.items():  # every row fits the table contract
        assert len(to_arrow(table, table_rows)) == len(table_rows)
    again = train_and_evaluate(task, "mstf", arch.arch_id, 0, Recipe(epochs=2, batch_size=8),
                               "cpu", "run-y")
    assert again["curves"][1]["train_loss"] == pytest.approx(rows["curves"][1]["train_loss"])


def test_a_larger_sample_extends_the_proxy_build(tmp_path, monkeypatch, capsys):
    """Jobs are named by their slice of the prefix-stable sample: growing --sample reruns
    only the short last chunk and the new ones, and the release keeps one row per key. A
    build whose work folder is gone skips what the tables already hold."""
    import json

    from builders import proxies
    from builders.release import release

    task = synthetic(n=24)
    monkeypatch.setattr(medmnist_data, "load", lambda task_id, root: task)
    cheap = {k: PROXIES[k] for k in ("params", "l2_norm")}  # the job layout is under test
    monkeypatch.setattr(proxies, "PROXIES", cheap)

    def build(n, work="w"):
        argv = ["--task", "breastmnist", "--space", "mstf", "--sample", str(n), "--chunk",
                "2", "--seeds", "0", "--threads", "1", "--work", str(tmp_path / work),
                "--device", "cpu", "--tables", str(tmp_path / "tables")]
        assert proxies.main(argv) == 0
        return json.loads(capsys.readouterr().out.strip().splitlines()[-1])

    first = build(3)
    assert (first["ok"], first["skipped"]) == (2, 0)  # chunks [0, 1] and [2]
    second = build(4)
    assert (second["ok"], second["skipped"]) == (1, 1)  # [0, 1] kept, [2, 3] scored
    added = release(first["work"], tmp_path / "tables")
    assert added["proxies"] == 4 * len(cheap)  # arch 2 scored twice, released once
    third = build(6, work="fresh")  # a later session: the released chunks are not rerun
    assert (third["ran"], third["released"]) == (1, 2)  # only [4, 5]
