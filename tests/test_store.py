"""medbench.open and the Store API."""

from __future__ import annotations

import json

import pytest

import medbench
from medbench.errors import ReadOnlyError, TableError, UnknownNameError
from medbench.store import default_tables_path


def test_open_defaults_to_bundled_tables(monkeypatch):
    monkeypatch.delenv("MEDBENCH_TABLES", raising=False)
    with medbench.open() as store:
        assert store.root == default_tables_path()
        assert store.root.endswith("tables")


def test_opening_reads_no_parquet_file(release):
    with medbench.open(release) as store:
        assert store._views == set()  # views are created when a query needs them
        assert store.n_rows("evaluations") == 10  # from the manifest
        assert store._views == set()
        store.table("hardware")
        assert store._views == {"hardware"}


def test_relations_convert(release):
    with medbench.open(release) as store:
        rel = store.sql("SELECT arch_id, params FROM costs ORDER BY params")
        assert rel.fetchall()[0] == ("a-small", 10_000)
        from medbench.output import to_arrow

        assert to_arrow(rel).column("params").to_pylist()[-1] == 3_000_000


def test_tasks_spaces_devices_api(release):
    with medbench.open(release) as store:
        tasks = dict(store.tasks().select("task, n_evaluations").fetchall())
        assert tasks["msd/hippocampus"] == 10 and len(tasks) == 28
        spaces = dict(store.spaces().select("space, n_archs_with_results").fetchall())
        assert spaces == {"unet3d": 5, "unet3d-v2": 0, "dynunet": 0, "mednns": 0, "mstf": 0}
        assert [d[0] for d in store.devices().select("device").fetchall()] == ["dev-a", "dev-b"]


def test_arch_by_id_and_index(release):
    with medbench.open(release) as store:
        facts = store.arch("unet3d", "c-large")
        assert set(facts) == {"architectures", "evaluations", "costs", "hardware"}
        assert len(facts["evaluations"].fetchall()) == 2
        assert store.arch("UNET3D", "2")["architectures"].fetchall()[0][1] == "c-large"
        with pytest.raises(UnknownNameError):
            store.arch("unet3d", "nope")


def test_lookup_table_predicts_any_architecture_of_the_space(release):
    from medbench.release import write_manifest, write_rows
    from medbench.spaces import unet3d

    arch = unet3d.from_id("s2|c4-8-16|k3-3-3|b1-1-1|r0-0-0")  # not in the release
    keys = unet3d.blocks(arch, 1)  # the fixture's hippocampus has no input shape: 1 channel
    common = {"space": "unet3d", "task": "msd/hippocampus", "device": "dev-a",
              "runtime": "onnxruntime", "run_id": "run-test"}
    rows = [{**common, "threads": 1, "block": k, "latency_ms": 0.5 * (i + 1)}
            for i, k in enumerate(keys)]  # 0.5 + 1.0 + ... + 3.0 = 10.5
    rows.append({**common, "threads": 1, "block": "overhead", "latency_ms": 2.0})
    # all cores: one block missing, so nothing is predicted for that setting
    rows += [{**common, "threads": 0, "block": k, "latency_ms": 1.0} for k in keys[1:]]
    rows.append({**common, "threads": 0, "block": "overhead", "latency_ms": 2.0})
    write_rows(release, "latency_lut", rows, "lut")
    write_manifest(release)
    with medbench.open(release) as store:
        facts = store.arch("unet3d", arch.arch_id)
        assert set(facts) == {"latency_predicted"}
        got = facts["latency_predicted"].select(
            "device, runtime, threads, latency_ms, latency_method, n_blocks").fetchall()
        assert got == [("dev-a", "onnxruntime", 1, pytest.approx(12.5), "lut", len(keys))]
        # an architecture whose blocks the table does not hold, and a malformed id
        for arch_id in ("s2|c4-8-32|k3-3-3|b1-1-1|r0-0-0", "s2|c4"):
            with pytest.raises(UnknownNameError):
                store.arch("unet3d", arch_id)
        # an architecture in the tables whose id the space cannot parse keeps its facts
        assert "latency_predicted" not in store.arch("unet3d", "c-large")


def test_sql_is_read_only(release):
    with medbench.open(release) as store:
        with pytest.raises(ReadOnlyError):
            store.sql("DELETE FROM runs")
        with pytest.raises(ReadOnlyError):
            store.sql("SELECT * FROM read_json('/etc/os-release')")


def test_manifest_errors(tmp_path):
    (tmp_path / "MANIFEST.json").write_text("[1, 2]")
    with pytest.raises(TableError, match="files"):
        medbench.open(tmp_path)
    (tmp_path / "MANIFEST.json").write_text(json.dumps({"files": [
        {"path": "../../etc/passwd", "table": "runs", "sha256": "0", "bytes": 1, "rows": 1}]}))
    with pytest.raises(TableError, match="outside"):
        medbench.open(tmp_path)
    with pytest.raises(TableError, match="no tables folder"):
        medbench.open(tmp_path / "absent")
