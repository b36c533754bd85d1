"""Release finished builder jobs into ``tables/``: dedup on keys, add files, refresh the manifest.

    python -m builders.release runs/unet3d/msd_hippocampus/v1.1-e40 [--tables tables]

Every job folder under ``<work>/jobs/`` is a small tables-format folder. For each table, the
rows of all jobs are united, rows whose key is already released (or repeated across jobs:
shared rows such as ``tasks`` and ``architectures``) are dropped, first come first kept, and
the rest are written as new files named after this release. Then ``MANIFEST.json`` is
rebuilt. Running it twice adds nothing the second time.

One exception to "released rows are never changed": a column the schema marks ``fill``
(energy modelled after the latency was measured) may be filled into a released row where it
is NULL, by a job row with the same key and every other column equal. The files holding such
rows are rewritten in place, each atomically, with only those NULLs replaced; a marker file
(``.filling``) stands while they are, so that a release interrupted there rebuilds the
manifest on its next run instead of refusing the folder.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from builders.jobs import read_job_meta
from medbench.errors import MedbenchError, TableError
from medbench.store import one_line
from medbench.manifest import (MANIFEST_NAME, check_listing, list_table_files, load_manifest,
                               write_manifest)
from medbench.output import to_arrow as relation_to_arrow
from medbench.release import to_arrow, write_rows
from medbench.schema import TABLES
from medbench.validate import value_problems

__all__ = ["release", "released_rows", "main"]

#: Stands in the tables folder while released files are being filled (see the module's doc).
FILLING = ".filling"


def release(work: str | Path, tables: str | Path, name: str | None = None) -> dict[str, int]:
    """Add the rows of every finished job under ``work`` that ``tables`` lacks.

    Returns:
        Rows added per table.

    Raises:
        MedbenchError: nothing is written when the folder's files are not its manifest's,
            another release into it runs, or a new row fails validate's value checks.
    """
    work, tables = Path(work), Path(tables)
    jobs = sorted(p for p in (work / "jobs").iterdir() if (p / "job.json").exists()) \
        if (work / "jobs").is_dir() else []
    for job in jobs:
        read_job_meta(job / "job.json")
    if not jobs:
        raise MedbenchError(f"no finished job under {work}/jobs")
    tables.mkdir(parents=True, exist_ok=True)
    with _locked(tables):
        return _release(jobs, work, tables, name)


@contextmanager
def _locked(tables: Path) -> Iterator[None]:
    """Hold an exclusive lock on the tables folder itself (no file is made): a second release
    into the same folder is refused while one runs, instead of releasing the same keys
    twice."""
    fd = os.open(tables, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise MedbenchError(f"another release into {tables} is running: "
                                "nothing released") from None
        if (tables / FILLING).exists():  # an earlier release stopped while filling files
            write_manifest(tables)
            (tables / FILLING).unlink()
        yield
    finally:
        os.close(fd)


def _release(jobs: list[Path], work: Path, tables: Path, name: str | None) -> dict[str, int]:
    import duckdb

    released = listed_files(tables)
    if name is None:
        # Unique among the released files: two releases in one second must not share a name
        # (write_rows refuses to overwrite, and a shared name once dropped released rows).
        stems = {Path(f).stem for files in released.values() for f in files}
        name = base = f"release-{datetime.now(timezone.utc):%Y%m%dT%H%M%S}"
        n = 1
        while name in stems:
            n += 1
            name = f"{base}-{n}"
    con = duckdb.connect()
    try:
        fresh = _read_jobs(con, jobs, work, released, tables)
        filled = _filled_files(con, jobs, released, tables)
    except duckdb.Error as e:
        raise MedbenchError(f"cannot read the jobs' files ({one_line(e)}): nothing "
                            "released") from None
    finally:
        con.close()
    # The new rows, and the filled files, pass validate's value checks by themselves before
    # anything is written.
    with tempfile.TemporaryDirectory(prefix="medbench-release-") as staged:
        for table, data in fresh.items():
            if len(data):
                write_rows(staged, table, data, name)
        for i, (table, _, data, _) in enumerate(filled):
            write_rows(staged, table, data, f"filled-{i}")
        problems = value_problems(staged)
    if problems:
        raise MedbenchError(f"{len(problems)} problem(s) in the new rows ({problems[0]}): "
                            "nothing released")
    for table, data in fresh.items():
        if len(data):
            write_rows(tables, table, data, name)
    if filled:
        (tables / FILLING).touch()
        for table, path, data, _ in filled:
            write_rows(tables, table, data, Path(path).stem, replace=True)
    write_manifest(tables)
    (tables / FILLING).unlink(missing_ok=True)
    counts = {table: len(data) for table, data in fresh.items()}
    for table, _, _, n in filled:
        counts[f"{table} (filled)"] = counts.get(f"{table} (filled)", 0) + n
    return counts


def _filled_files(con, jobs: list[Path], released: dict[str, list[str]], tables: Path
                  ) -> list[tuple[str, str, object, int]]:
    """Released files to rewrite: those that job rows fill (see the module's doc), and those
    of an older schema. Per file: its table, its path under ``tables``, all its rows in their
    order (fills applied, newer columns NULL), and how many rows were filled."""
    import pyarrow.parquet as pq

    out = []
    for table, t in TABLES.items():
        fill = [c.name for c in t.columns if c.fill]
        files = [str(f) for job in jobs for f in sorted((job / table).rglob("*.parquet"))]
        done = set()
        if fill and files and table in released:
            out += _fill(con, table, fill, files, released[table], tables)
            done = {rel for _, rel, _, _ in out}
        # Files of an older schema get its newer (nullable) columns as NULL, values unchanged:
        # the store reads a table's files as one schema.
        for rel in released.get(table, []):
            if rel not in done and pq.read_schema(tables / rel).names != list(t.column_names):
                out.append((table, rel, to_arrow(table, pq.read_table(tables / rel,
                                                                     partitioning=None)), 0))
    return out


def _fill(con, table: str, fill: list[str], files: list[str], released: list[str],
          tables: Path) -> list[tuple[str, str, object, int]]:
    """The released files of ``table`` that rows of the job ``files`` fill."""
    t = TABLES[table]
    out = []
    q = lambda c: f'"{c}"'  # noqa: E731
    keys = ", ".join(map(q, t.key))
    on = " AND ".join([f"o.{q(c)} = n.{q(c)}" for c in t.key] +
                      [f"o.{q(c)} IS NOT DISTINCT FROM n.{q(c)}" for c in t.column_names
                       if c not in fill and c not in t.key])
    changes = " OR ".join(f"(o.{q(c)} IS NULL AND n.{q(c)} IS NOT NULL)" for c in fill)
    con.register("o", released_rows(tables, table, released, where=True))
    con.register("n", relation_to_arrow(con.sql(
        "SELECT * EXCLUDE (filename) FROM read_parquet(?, hive_partitioning=false, "
        f"union_by_name=true, filename=true) QUALIFY row_number() OVER (PARTITION BY {keys} "
        "ORDER BY filename) = 1", params=[files])))
    hits = con.execute(f"SELECT o._file, count(*) FROM o JOIN n ON {on} WHERE {changes} "
                       "GROUP BY ALL ORDER BY ALL").fetchall()
    sets = ", ".join(f"coalesce(o.{q(c)}, n.{q(c)}) AS {q(c)}" for c in fill)
    for rel, n_changed in hits:
        data = relation_to_arrow(con.sql(
            f"SELECT o.* EXCLUDE (_file, _row) REPLACE ({sets}) FROM o LEFT JOIN n ON {on} "
            "WHERE o._file = ? ORDER BY o._row", params=[rel]))
        out.append((table, rel, to_arrow(table, data), n_changed))
    con.unregister("o")
    con.unregister("n")
    return out


def released_rows(tables: str | Path, table: str, files: list[str] | None = None,
                  where: bool = False):
    """The released rows of ``table`` as one pyarrow Table of the current schema, read file by
    file (older files lack newer columns: NULL here), without the store, which needs one
    schema. ``files``: these paths under ``tables`` (default: the manifest's). ``where``: add
    columns ``_file`` (the path) and ``_row`` (the row's place in it)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    tables = Path(tables)
    if files is None:
        files = listed_files(tables).get(table, [])
    parts = []
    for rel in files:
        data = to_arrow(table, pq.read_table(tables / rel, partitioning=None))
        if where:
            data = data.append_column("_file", pa.array([rel] * len(data), pa.string())) \
                .append_column("_row", pa.array(range(len(data)), pa.int64()))
        parts.append(data)
    return pa.concat_tables(parts) if parts else to_arrow(table, [])


def _read_jobs(con, jobs: list[Path], work: Path, released: dict[str, list[str]],
               tables: Path) -> dict[str, object]:
    """Per table the jobs have files for, their rows that ``released`` lacks, deduplicated
    on keys (an Arrow table, maybe empty)."""
    fresh = {}
    clash = _run_id_clashes(con, jobs, [str(tables / f) for f in released.get("runs", [])])
    if clash:
        raise MedbenchError(
            f"{len(clash)} run id(s) of {work} name another job too (e.g. {clash[0]}): "
            "their rows would be credited to it; nothing released")
    for table, t in TABLES.items():
        files = [str(f) for job in jobs for f in sorted((job / table).rglob("*.parquet"))]
        if not files:
            continue
        keys = ", ".join(f'"{k}"' for k in t.key)
        new = ("SELECT * FROM read_parquet(?, hive_partitioning=false, "
               "union_by_name=true, filename=true)")
        sql = (f"SELECT * EXCLUDE (filename) FROM ({new}) "
               f"QUALIFY row_number() OVER (PARTITION BY {keys} ORDER BY filename) = 1")
        params: list = [files]
        if table in released:
            old = [str(tables / f) for f in released[table]]
            sql = (f"SELECT n.* FROM ({sql}) n ANTI JOIN read_parquet(?, "
                   f"hive_partitioning=false) o USING ({keys})")
            params.append(old)
        fresh[table] = to_arrow(table, relation_to_arrow(con.sql(sql, params=params)))
    return fresh


def listed_files(tables: Path) -> dict[str, list[str]]:
    """The released files per table, as ``MANIFEST.json`` lists them, once the folder is
    checked to hold exactly those (:func:`medbench.manifest.check_listing`): a Parquet file
    the manifest does not list would otherwise be adopted by this release's manifest, and
    rows of the jobs whose keys it holds dropped."""
    manifest = load_manifest(tables)
    if manifest is None:
        if list_table_files(tables):
            raise MedbenchError(f"{tables} holds Parquet files but no {MANIFEST_NAME}: "
                                "nothing released")
        return {}
    try:
        check_listing(tables, manifest)
    except TableError as e:
        raise MedbenchError(f"{e}: nothing released") from None
    listed: dict[str, list[str]] = {}
    for entry in manifest["files"]:
        listed.setdefault(entry["table"], []).append(entry["path"])
    return {k: sorted(v) for k, v in listed.items()}


def _run_id_clashes(con, jobs: list[Path], released_runs: list[str]) -> list[str]:
    """Run ids that two different jobs carry (among ``jobs``, or one of them and a released
    run): the same job released twice is no clash."""
    files = [str(f) for job in jobs for f in sorted((job / "runs").rglob("*.parquet"))]
    if not files:
        return []
    same = "builder, args, started_at, seconds"
    new = f"SELECT run_id, {same} FROM read_parquet(?, hive_partitioning=false)"
    sql = f"SELECT run_id FROM ({new}) GROUP BY run_id HAVING count(DISTINCT ({same})) > 1"
    params: list = [files]
    if released_runs:
        sql += (f" UNION SELECT n.run_id FROM ({new}) n JOIN read_parquet(?, "
                "hive_partitioning=false) o USING (run_id) WHERE (n.builder, n.args, "
                "n.started_at, n.seconds) IS DISTINCT FROM (o.builder, o.args, o.started_at, "
                "o.seconds)")
        params += [files, released_runs]
    return sorted(r for (r,) in con.execute(sql, params).fetchall())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m builders.release", description=__doc__.split(
        "\n\n")[0])
    ap.add_argument("work", help="a builder's work folder (holding jobs/)")
    ap.add_argument("--tables", default="tables")
    args = ap.parse_args(argv)
    try:
        added = release(args.work, args.tables)
    except MedbenchError as e:
        print(f"builders.release: error: {e}", file=sys.stderr)
        return 2
    for table, n in added.items():
        print(f"{table}: +{n} rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
