"""The table contract: well-formed, and a full round trip schema -> Parquet -> DuckDB view."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

import medbench
from medbench.errors import BadValueError, UnknownNameError
from medbench.release import write_manifest, write_rows
from medbench.schema import SCHEMA_VERSION, TABLES, arrow_schema, get_table, partition_dir

SAMPLE = {"VARCHAR": "x", "BIGINT": 2**40, "INTEGER": 3, "DOUBLE": 0.5, "BOOLEAN": True,
          "TIMESTAMP": "2026-11-25 10:00:00", "VARCHAR[]": ["a", "b"], "INTEGER[]": [1, 48],
          "DOUBLE[]": [0.25, 0.75]}


def sample_row(table):
    """A row with a value for every column, within allowed sets and ranges."""
    row = {}
    for c in TABLES[table].columns:
        row[c.name] = c.allowed[0] if c.allowed else SAMPLE[c.type]
    if "TIMESTAMP" in {c.type for c in TABLES[table].columns}:
        import datetime as dt

        for c in TABLES[table].columns:
            if c.type == "TIMESTAMP":
                row[c.name] = dt.datetime(2026, 11, 25, 10, 0, 0)
    return row


def test_every_table_is_well_formed():
    assert set(TABLES) == {"tasks", "spaces", "architectures", "evaluations", "curves", "costs",
                           "hardware", "latency_lut", "devices", "proxies", "task_distances",
                           "task_features", "encoders", "runs"}
    for t in TABLES.values():
        names = t.column_names
        assert len(names) == len(set(names)), t.name
        assert names[:len(t.key)] == t.key or t.name == "runs", t.name  # keys first
        for k in t.key:
            assert not t.column(k).nullable
        for p in t.partition_by:
            assert p in names
        for ref in t.references:
            target = TABLES[ref.table]
            assert set(ref.target_columns) <= set(target.column_names)
        if t.name != "runs":
            assert "run_id" in names, f"{t.name} rows must be traceable to a run"
        for c in t.columns:
            arrow_schema(t)  # every type maps
            if c.unit:
                assert c.type.startswith("DOUBLE") or c.type == "BIGINT"


def test_units_are_in_column_names():
    for t in TABLES.values():
        for c in t.columns:
            if c.unit == "ms":
                assert c.name.endswith("_ms")
            if c.unit == "mJ":
                assert c.name.endswith("_mj")
            if c.unit == "s":
                assert c.name.endswith("seconds")


@pytest.mark.parametrize("table", sorted(TABLES))
def test_round_trip_schema_parquet_duckdb(tmp_path, table):
    row = sample_row(table)
    written = write_rows(tmp_path, table, [row], "rt")
    assert len(written) == 1
    t = get_table(table)
    if t.partition_by:
        assert written[0].parent.relative_to(tmp_path / table).as_posix() == \
            partition_dir(t, row)
    pf = pq.ParquetFile(written[0])
    assert pf.schema_arrow.equals(arrow_schema(table))
    assert pf.metadata.metadata[b"medbench.schema_version"].decode() == SCHEMA_VERSION
    write_manifest(tmp_path)
    with medbench.open(tmp_path) as store:
        described = store.sql(f"DESCRIBE {table}").fetchall()
        assert [(d[0], d[1]) for d in described] == [(c.name, c.type) for c in t.columns]
        back = store.table(table).fetchall()
        assert len(back) == 1
        got = dict(zip(t.column_names, back[0]))
    for c in t.columns:
        if c.type == "DOUBLE[]":
            assert got[c.name] == pytest.approx(row[c.name])
        else:
            assert got[c.name] == row[c.name], c.name


def test_empty_tables_have_typed_views(tmp_path):
    with medbench.open(tmp_path) as store:
        described = store.sql("DESCRIBE hardware").fetchall()
        assert [d[1] for d in described] == [c.type for c in TABLES["hardware"].columns]
        assert store.table("evaluations").fetchall() == []


def test_write_rows_rejects_rows_that_break_the_contract(tmp_path):
    with pytest.raises(BadValueError, match="unknown column"):
        write_rows(tmp_path, "runs", [{"run_id": "r", "builder": "b", "builder_version": "0",
                                       "status": "ok", "colour": "red"}], "x")
    with pytest.raises(BadValueError, match="builder"):
        write_rows(tmp_path, "runs", [{"run_id": "r", "builder_version": "0", "status": "ok"}],
                   "x")
    with pytest.raises(BadValueError, match="do not fit"):
        write_rows(tmp_path, "runs", [{"run_id": "r", "builder": "b", "builder_version": "0",
                                       "status": "ok", "seconds": "slow"}], "x")
    assert not list(tmp_path.rglob("*.parquet"))


def test_write_rows_partitions_and_leaves_no_temp_files(tmp_path):
    rows = [{"space": s, "arch_id": a, "task": t, "params": 1, "run_id": "r"}
            for s in ("unet3d", "mstf") for a in ("x", "y") for t in ("msd/hippocampus",
                                                                       "medmnist/breastmnist")]
    files = write_rows(tmp_path, "costs", rows, "job-1")
    assert sorted(f.relative_to(tmp_path).as_posix() for f in files) == [
        f"costs/space={s}/task={t}/job-1.parquet" for s in ("mstf", "unet3d")
        for t in ("medmnist%2Fbreastmnist", "msd%2Fhippocampus")]
    assert sum(pq.read_metadata(f).num_rows for f in files) == 8
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]


def test_reading_files_directly_gives_true_partition_values(tmp_path):
    """DuckDB detects hive folders by default; the decoded folder value must equal the column."""
    import duckdb

    write_rows(tmp_path, "costs", [{"space": "unet3d", "arch_id": "a", "task": "msd/hippocampus",
                                    "params": 1, "run_id": "r"}], "x")
    got = duckdb.sql(f"SELECT task, space FROM '{tmp_path}/costs/**/*.parquet'").fetchall()
    assert got == [("msd/hippocampus", "unet3d")]


def test_unknown_table():
    with pytest.raises(UnknownNameError, match="known tables"):
        get_table("evaluation")


def test_manifest_describes_every_file(release):
    m = json.loads((release / "MANIFEST.json").read_text())
    assert m["schema_version"] == SCHEMA_VERSION
    assert {f["table"] for f in m["files"]} == {"runs", "tasks", "devices", "architectures",
                                                "evaluations", "costs", "hardware"}
    ev = next(f for f in m["files"] if f["table"] == "evaluations")
    assert ev["rows"] == 10 and ev["schema_version"] == SCHEMA_VERSION
