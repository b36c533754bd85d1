"""Exports to other NAS tools: NASLib-style dicts, and Syne Tune blackboxes (where installed)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import one_line_error
from test_simulate import toy, with_curves

from medbench.simulate.export import to_naslib, write_naslib


def test_naslib_dict_holds_means_over_seeds_and_proxies(tmp_path):
    t = toy(n=6, seeds=3, epochs=4)
    t.val[2, 1, :] = np.nan  # a missing seed is left out of the mean, not counted as 0
    t.latency_ms[:] = np.arange(6) + 1.0
    d = to_naslib(t, {"a2": {"synflow": (12.5, 0.3)}})
    assert list(d) == ["toy/task"] and len(d["toy/task"]) == 6
    e = d["toy/task"]["a2"]
    assert e["id"] == 2 and e["metric"] == "dice"
    assert e["val_accuracy"] == pytest.approx(np.mean(t.val[2, [0, 2], -1]))
    assert e["val_curve"][0] == pytest.approx(np.mean(t.val[2, [0, 2], 0]))
    assert e["test_accuracy"] == pytest.approx(np.mean(t.test[2]))  # test kept its seed 1
    assert e["train_time"] == pytest.approx(40.0) and e["latency_ms"] == 3.0
    assert e["synflow"] == {"score": 12.5, "time": 0.3}
    assert e["params"] is None  # not measured: None, never a made-up number
    path = write_naslib(t, tmp_path / "x" / "naslib.json", {"a2": {"synflow": (12.5, 0.3)}})
    assert json.loads(path.read_text()) == json.loads(json.dumps(d))


def test_export_command(cli, release, tmp_path):
    with_curves(release)
    out = tmp_path / "nl.json"
    r = cli(release, "export", "--task", "hippocampus", "--to", "naslib", "--out", str(out))
    assert r.code == 0, r.err
    data = json.loads(out.read_text())["msd/hippocampus"]
    assert set(data) >= {"a-small", "c-large"} and len(data["c-large"]["val_curve"]) > 0
    bad = cli(release, "export", "--task", "hippocampus", "--to", "nope", "--out", str(out))
    assert one_line_error(bad) and "syne-tune, naslib" in bad.err


def test_syne_tune_blackbox_round_trip(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    pytest.importorskip("syne_tune")
    pytest.importorskip("fastparquet")
    pytest.importorskip("huggingface_hub")
    from syne_tune.blackbox_repository.blackbox_tabular import deserialize

    from medbench.simulate.export import to_syne_tune, write_syne_tune

    t = toy(n=5, seeds=2, epochs=3)
    bb = to_syne_tune(t)
    got = bb(configuration={"arch_id": "a3", "space": "toy"}, fidelity={"epochs": 2}, seed=1)
    assert got["val_dice"] == pytest.approx(t.val[3, 1, 1], rel=1e-6)
    assert got["elapsed_time"] == pytest.approx(t.elapsed[3, 1, 1])
    assert got["test_dice"] == pytest.approx(t.test[3, 1], rel=1e-6)
    back = deserialize(str(write_syne_tune(t, tmp_path / "bb")))["toy/task"]
    again = back(configuration={"arch_id": "a3", "space": "toy"}, fidelity={"epochs": 2},
                 seed=1)
    assert again == got
