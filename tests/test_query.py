"""medbench.query on the tiny release: aggregation, filters with units, devices, Pareto, sort."""

from __future__ import annotations

import math

import pytest
from conftest import TASK

import medbench
from medbench.errors import BadValueError, UnknownNameError


@pytest.fixture
def store(release):
    with medbench.open(release) as s:
        yield s


def rows_by_arch(res, method="standalone"):
    cols = res.columns
    return {r[cols.index("arch_id")]: dict(zip(cols, r)) for r in res.rows()
            if r[cols.index("method")] == method}


def test_seeds_are_aggregated_with_mean_std_and_count(store):
    res = store.query(task="hippocampus", limit=0)
    assert res.task == TASK and res.metric == "dice"
    rows = rows_by_arch(res)
    b = rows["b-mid"]
    assert b["n_seeds"] == 2
    assert b["val_dice"] == pytest.approx(0.81)
    assert b["val_dice_std"] == pytest.approx(math.sqrt(2) * 0.01)
    assert b["test_dice"] == pytest.approx(0.795)
    assert rows["e-oneseed"]["n_seeds"] == 1 and rows["e-oneseed"]["val_dice_std"] is None
    every = store.query(task="hippocampus", method="all", limit=0)
    assert rows_by_arch(every, "supernet")["b-mid"]["val_dice"] == pytest.approx(0.75)


def test_standalone_results_by_default_supernet_estimates_on_request(store):
    res = store.query(task="hippocampus", limit=0)
    assert {r[res.columns.index("method")] for r in res.rows()} == {"standalone"}
    assert any("1 weight-sharing estimate(s)" in n for n in res.notes)
    supernet = store.query(task="hippocampus", method="supernet", limit=0)
    assert set(rows_by_arch(supernet, "supernet")) == {"b-mid"} and not supernet.notes
    every = store.query(task="hippocampus", method="all", limit=0)
    assert len(every.rows()) == len(res.rows()) + 1
    with pytest.raises(UnknownNameError):
        store.query(task="hippocampus", method="oneshot")


def test_default_device_is_the_one_with_most_measurements(store):
    res = store.query(task="hippocampus", limit=0)
    assert res.device == "dev-a"
    assert "most measurements" in res.device_reason
    assert rows_by_arch(res)["c-large"]["latency_ms"] == pytest.approx(12.0)


def test_max_latency_in_several_units(store):
    for limit in ("4ms", "4 ms", "4000us", "4000µs", "0.004s", "4"):
        res = store.query(task="hippocampus", max_latency=limit, method="standalone", limit=0)
        assert set(rows_by_arch(res)) == {"a-small", "b-mid", "e-oneseed"}, limit


def test_device_switch_changes_latency(store):
    res = store.query(task="hippocampus", device="DEV-B", limit=0)
    assert res.device == "dev-b"
    rows = rows_by_arch(res)
    assert rows["a-small"]["latency_ms"] == pytest.approx(20.0)
    assert rows["c-large"]["latency_ms"] is None
    assert store.query(task="hippocampus", device="dev-b", max_latency="4ms").rows() == []


def test_energy_params_and_dice_limits(store):
    q = lambda **kw: set(rows_by_arch(store.query(task="hippocampus", limit=0,  # noqa: E731
                                                  method="standalone", **kw)))
    assert q(max_energy="10mJ") == {"a-small", "b-mid", "e-oneseed"}
    assert q(max_energy="0.0041J") == {"a-small", "e-oneseed"}
    assert q(max_params="100k") == {"a-small", "e-oneseed"}
    assert q(max_params="1M") == {"a-small", "b-mid", "d-bad", "e-oneseed"}
    assert q(min_dice=0.8) == {"b-mid", "c-large"}
    assert q(min_metric=0.8, max_latency="10ms") == {"b-mid"}


def test_pareto_front_on_metric_and_latency(store):
    res = store.query(task="hippocampus", pareto=True, sort="latency_ms", limit=0)
    got = [(r[1], r[3]) for r in res.rows()]
    assert got == [("e-oneseed", "standalone"), ("b-mid", "standalone"),
                   ("c-large", "standalone")]


def test_sort_directions_and_limit(store):
    res = store.query(task="hippocampus", method="standalone", sort="latency_ms", limit=2)
    assert [r[1] for r in res.rows()] == ["e-oneseed", "a-small"]
    res = store.query(task="hippocampus", method="standalone", sort="test_dice", limit=1)
    assert res.rows()[0][1] == "c-large"
    res = store.query(task="hippocampus", method="standalone", sort="test_dice:asc", limit=1)
    assert res.rows()[0][1] == "d-bad"


def test_task_can_be_omitted_when_one_task_has_results(store):
    assert store.query().task == TASK


@pytest.mark.parametrize("kwargs, error", [
    ({"task": "nowhere"}, UnknownNameError),
    ({"task": "hippocampus", "space": "nope"}, UnknownNameError),
    ({"task": "hippocampus", "device": "toaster"}, UnknownNameError),
    ({"task": "hippocampus", "method": "magic"}, UnknownNameError),
    ({"task": "hippocampus", "sort": "colour"}, UnknownNameError),
    ({"task": "hippocampus", "sort": "params:sideways"}, BadValueError),
    ({"task": "hippocampus", "max_latency": "4 parsecs"}, BadValueError),
    ({"task": "hippocampus", "max_latency": "-4ms"}, BadValueError),
    ({"task": "hippocampus", "max_energy": "3 calories"}, BadValueError),
    ({"task": "hippocampus", "max_params": "-1M"}, BadValueError),
    ({"task": "hippocampus", "limit": -1}, BadValueError),
    ({"task": "hippocampus", "min_dice": 1.5}, BadValueError),
    ({"task": "pneumoniamnist", "min_dice": 0.5}, BadValueError),
])
def test_bad_arguments_raise_medbench_errors(store, kwargs, error):
    with pytest.raises(error):
        store.query(**kwargs)


def test_unknown_task_lists_known_ones(store):
    with pytest.raises(UnknownNameError) as e:
        store.query(task="hipocampus")
    assert "msd/hippocampus" in str(e.value) and "medmnist/pneumoniamnist" in str(e.value)


def test_task_aliases(store):
    for alias in ("hippocampus", "Task04_Hippocampus", "msd/hippocampus", "msd_hippocampus",
                  "HIPPOCAMPUS"):
        assert store.query(task=alias).task == TASK


def test_result_converts_to_arrow(store):
    table = store.query(task="hippocampus", method="all", limit=0).arrow()
    assert table.num_rows == 6 and "val_dice_std" in table.column_names


def test_a_superseded_space_leaves_the_default_query_once_its_successor_has_results(release):
    """unet3d rows stay queryable with --space; once unet3d-v2 has results for the task the
    default query lists v2 only, and its default device is the one that measured them."""
    from conftest import RUN

    from medbench.release import write_manifest, write_rows

    with medbench.open(release) as s:
        assert {r[0] for r in s.query(task=TASK, limit=0).rows()} == {"unet3d"}
    v2 = "s2|c4-8-16|k3-3-3|b1-1-1|r0-0-0|n1-1-1"
    write_rows(release, "architectures", [{"space": "unet3d-v2", "arch_id": v2,
                                           "arch_index": 1, "config": "{}", "run_id": RUN}], "v2")
    write_rows(release, "evaluations", [
        {"space": "unet3d-v2", "arch_id": v2, "task": TASK, "method": "standalone",
         "seed": seed, "epochs": 2, "val_dice": 0.8, "test_dice": 0.79, "run_id": RUN}
        for seed in (0, 1)], "v2")
    write_rows(release, "hardware", [
        {"space": "unet3d-v2", "arch_id": v2, "task": TASK, "device": "dev-b",
         "runtime": "onnxruntime", "threads": 1, "batch": 1, "latency_ms": 3.0,
         "latency_method": "measured", "run_id": RUN}], "v2")
    write_manifest(release)
    with medbench.open(release) as s:
        res = s.query(task=TASK, max_latency="4ms", limit=0)
        assert [(r[0], r[1]) for r in res.rows()] == [("unet3d-v2", v2)]
        assert res.device == "dev-b"  # dev-a measured more, but none of these
        assert any("superseded" in n and "unet3d" in n for n in res.notes)
        old = s.query(task=TASK, space="unet3d", method="all", limit=0)
        assert {r[0] for r in old.rows()} == {"unet3d"} and len(old.rows()) == 6
        assert old.device == "dev-a" and not any("superseded" in n for n in old.notes)
