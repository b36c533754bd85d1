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
        assert spaces == {"unet3d": 5, "dynunet": 0, "mednns": 0, "mstf": 0}
        assert [d[0] for d in store.devices().select("device").fetchall()] == ["dev-a", "dev-b"]


def test_arch_by_id_and_index(release):
    with medbench.open(release) as store:
        facts = store.arch("unet3d", "c-large")
        assert set(facts) == {"architectures", "evaluations", "costs", "hardware"}
        assert len(facts["evaluations"].fetchall()) == 2
        assert store.arch("UNET3D", "2")["architectures"].fetchall()[0][1] == "c-large"
        with pytest.raises(UnknownNameError):
            store.arch("unet3d", "nope")


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
