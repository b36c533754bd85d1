"""Fréchet distances between data sets: the formula on known Gaussians, and the builder's rows
on synthetic arrays in the MedMNIST layout (code paths only, never benchmark content)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("medmnist")

from builders.task_distances import FEATURES, distance_rows, frechet  # noqa: E402
from test_medmnist_proxies import synthetic  # noqa: E402


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
