"""Fréchet distances between data sets: the formula on known Gaussians, and the builder's rows
on synthetic arrays in the MedMNIST layout (code paths only, never benchmark content)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("medmnist")

from builders.task_distances import (FEATURES, distance_rows, embed, frechet,  # noqa: E402
                                     read_images)
from medbench.errors import MedbenchError  # noqa: E402
from test_medmnist_proxies import synthetic  # noqa: E402

# the slow tier: it trains an encoder
pytestmark = pytest.mark.slow


def test_frechet_of_shifted_samples_is_the_squared_shift():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(500, 6))
    assert frechet(a, a) == pytest.approx(0.0, abs=1e-8)
    shift = np.array([1.0, -2.0, 0.0, 0.5, 0.0, 3.0])
    assert frechet(a, a + shift) == pytest.approx(float(shift @ shift), rel=1e-6)
    # uncorrelated, zero-mean coordinates (a full grid): doubling one coordinate's spread
    # adds (2 s - s)^2 = its variance
    vals = np.linspace(-1, 1, 21)
    grid = np.array([[x, y] for x in vals for y in vals])
    wide = grid * [2.0, 1.0]
    assert frechet(grid, wide) == pytest.approx(np.var(grid[:, 0], ddof=1), rel=1e-6)


def test_rows_for_every_pair_and_the_pool():
    tasks = [synthetic("breastmnist", n=FEATURES + 20),
             synthetic("pneumoniamnist", n=FEATURES + 40)]
    rows = distance_rows(tasks, dims=2, steps=3, samples=1000, run_id="r")["task_distances"]
    pairs = {(r["task_a"], r["task_b"]): r for r in rows}
    assert set(pairs) == {("medmnist/breastmnist", "medmnist/pneumoniamnist"),
                          ("medmnist/pneumoniamnist", "medmnist/breastmnist"),
                          ("medmnist/breastmnist", "pooled-2d"),
                          ("medmnist/pneumoniamnist", "pooled-2d")}
    ab = pairs[("medmnist/breastmnist", "medmnist/pneumoniamnist")]
    ba = pairs[("medmnist/pneumoniamnist", "medmnist/breastmnist")]
    assert ab["distance"] == pytest.approx(ba["distance"]) and ab["distance"] >= 0
    assert ab["n_samples_a"] == FEATURES + 20 and ab["n_samples_b"] == FEATURES + 40
    assert pairs[("medmnist/breastmnist", "pooled-2d")]["n_samples_b"] == 2 * (FEATURES + 20)
    assert all(r["method"] == "fid/medbench-cnn2d-v1.0-s3" for r in rows)


def test_the_datasheet_lists_distances(release):
    import medbench
    from medbench.datasheet import generate
    from medbench.release import write_manifest, write_rows

    write_rows(release, "task_distances", [
        {"task_a": "msd/hippocampus", "task_b": "pooled-3d", "method": "fid/x", "distance": 1.5,
         "n_samples_a": 200, "n_samples_b": 400, "run_id": "run-test"}], "d")
    write_manifest(release)
    with medbench.open(release) as store:
        section = generate(store)
    assert "| fid/x | msd/hippocampus | pooled-3d | 1.500 | 200 | 400 |" in section


def test_rows_pass_validate(tmp_path):
    """The rows (tasks included: their label kinds once failed the schema) validate."""
    from medbench.release import write_manifest, write_rows
    from medbench.validate import validate

    tasks = [synthetic("breastmnist", n=FEATURES + 5), synthetic("retinamnist", n=FEATURES + 5,
                                                                 channels=3)]
    rows = distance_rows(tasks, dims=2, steps=2, samples=500, run_id="r")
    root = tmp_path / "t"
    write_rows(root, "runs", [{"run_id": "r", "builder": "tests", "builder_version": "0",
                               "status": "ok"}], "x")
    for table, table_rows in rows.items():
        write_rows(root, table, table_rows, "x")
    write_manifest(root)
    report = validate(root)
    assert report.ok, report.problems


def _release(root, rows):
    from medbench.release import write_manifest, write_rows

    write_rows(root, "runs", [{"run_id": "r", "builder": "tests", "builder_version": "0",
                               "status": "ok"}], "x")
    for table, table_rows in rows.items():
        write_rows(root, table, table_rows, "x")
    write_manifest(root)
    return root


def test_a_new_data_set_is_placed_by_the_shipped_encoder(tmp_path):
    """Embedding a held set's own training images from its .npz, through the encoder and
    feature Gaussians the tables hold, gives back the distances the builder released."""
    import medbench

    breast = synthetic("breastmnist", n=FEATURES + 20)
    tasks = [breast, synthetic("pneumoniamnist", n=FEATURES + 40),
             synthetic("retinamnist", n=FEATURES + 30, channels=3)]
    rows = distance_rows(tasks, dims=2, steps=3, samples=1000, run_id="r")
    feats = {r["task"]: r for r in rows["task_features"]}
    assert feats["medmnist/breastmnist"]["n_samples"] == FEATURES + 20
    assert len(feats["medmnist/retinamnist"]["feature_cov"]) == FEATURES ** 2
    assert {r["tensor"] for r in rows["encoders"]} >= {"0.weight", "1.running_mean"}
    root = _release(tmp_path / "t", rows)
    np.savez(tmp_path / "new.npz", train_images=breast.arrays["train_images"])
    with medbench.open(root) as store:
        got = embed(store, read_images(tmp_path / "new.npz"))
    assert got.dims == 2 and got.n_samples == FEATURES + 20
    assert got.method == rows["task_distances"][0]["method"]
    released = {r["task_b"]: r["distance"] for r in rows["task_distances"]
                if r["task_a"] == "medmnist/breastmnist"}
    assert got.distances["medmnist/breastmnist"] == pytest.approx(0.0, abs=1e-6)
    for other in ("medmnist/pneumoniamnist", "medmnist/retinamnist"):
        assert got.distances[other] == pytest.approx(released[other], rel=1e-5)
    with medbench.open(root) as store:  # 3D images: no 3D encoder in these tables
        with pytest.raises(MedbenchError, match="no encoder for 3D"):
            embed(store, np.zeros((FEATURES + 1, 8, 8, 8), np.uint8))
        with pytest.raises(MedbenchError, match="at least 129"):
            embed(store, np.zeros((10, 28, 28), np.uint8))


def test_images_are_read_from_a_folder_npz_or_npy(tmp_path):
    from PIL import Image

    folder = tmp_path / "pngs"
    (folder / "sub").mkdir(parents=True)
    for i in range(3):
        Image.fromarray(np.full((40, 50, 3), 60 * i, np.uint8)).save(folder / "sub" / f"{i}.png")
    x = read_images(folder)
    assert x.shape == (3, 28, 28) and x.dtype == np.uint8 and x[2].mean() == pytest.approx(120)
    assert len(read_images(folder, max_files=2)) == 2  # a large folder: a seeded draw
    np.save(tmp_path / "a.npy", np.zeros((4, 28, 28, 28), np.uint8))
    assert read_images(tmp_path / "a.npy").shape == (4, 28, 28, 28)
    only = tmp_path / "only"
    only.mkdir()
    np.savez(only / "x.npz", images=np.zeros((5, 28, 28), np.uint8))
    assert read_images(only).shape == (5, 28, 28)
    np.savez(tmp_path / "bad.npz", labels=np.zeros(3))
    for bad, message in ((tmp_path / "bad.npz", "no train_images or images"),
                         (tmp_path / "empty_dir", "no image files"),
                         (tmp_path / "a.txt", "give a folder")):
        if bad.name == "empty_dir":
            bad.mkdir()
        with pytest.raises(MedbenchError, match=message):
            read_images(bad)
    np.save(tmp_path / "f.npy", np.zeros((4, 28, 28), np.float32))
    with pytest.raises(MedbenchError, match="uint8"):
        read_images(tmp_path / "f.npy")


def test_recommend_for_a_folder(tmp_path, cli):
    """``medbench recommend --dataset PATH`` embeds the images and ranks the nearest set's
    zoo (made-up accuracies: the code path only)."""
    from conftest import one_line_error

    tasks = [synthetic("breastmnist", n=FEATURES + 20), synthetic("pneumoniamnist",
                                                                   n=FEATURES + 40)]
    rows = distance_rows(tasks, dims=2, steps=3, samples=1000, run_id="r")
    rows["architectures"] = [{"space": "mednns", "arch_id": a, "arch_index": i,
                              "config": "{}", "run_id": "r"} for i, a in enumerate("xy")]
    rows["evaluations"] = [{"space": "mednns", "arch_id": a, "task": t, "method": "supernet",
                            "seed": 0, "val_acc": acc, "test_acc": acc, "run_id": "r"}
                           for t in ("medmnist/breastmnist", "medmnist/pneumoniamnist")
                           for a, acc in (("x", 0.6), ("y", 0.7))]
    root = _release(tmp_path / "t", rows)
    np.savez(tmp_path / "new.npz", train_images=tasks[0].arrays["train_images"])
    r = cli(root, "recommend", "--dataset", str(tmp_path / "new.npz"), "--format", "csv")
    assert r.code == 0, r.err
    assert r.out.splitlines()[1].startswith("y,0.7")
    # its own images are nearest to breast, but a new set may be matched to any held one
    assert "images embedded (2D, fid/medbench-cnn2d-v1.0-s3)" in r.err
    assert "nearest data set to " + str(tmp_path / "new.npz") + ": medmnist/" in r.err
    bad = cli(root, "recommend", "--dataset", str(tmp_path / "missing") + "/x.npz")
    assert one_line_error(bad) and "not a known task and no such file or folder" in bad.err, bad.err
