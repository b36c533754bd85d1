"""Open released tables and query them with DuckDB, read-only.

:func:`open` returns a :class:`Store`: one in-memory DuckDB connection with one view per table
of :mod:`medbench.schema` over the table's Parquet files. Views are created when first used,
so opening reads no file; DuckDB then reads only the columns and row groups a query needs.

The connection is locked down: DuckDB may read the tables' folder and nothing else
(``enable_external_access=false`` with ``allowed_directories``, configuration locked), and
:meth:`Store.sql` accepts only statements that read.
"""

from __future__ import annotations

import os
import re
import select
import signal
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from medbench import catalog
from medbench.errors import (BadValueError, MedbenchError, ReadOnlyError, TableError,
                             UnknownNameError)
from medbench.manifest import (MANIFEST_NAME, check_listing, check_manifest_shape,
                               list_table_files, load_manifest)
from medbench.remote import is_url, load_httpfs
from medbench.schema import TABLE_NAMES, TABLES, Table, partition_segment

if TYPE_CHECKING:
    from medbench.query import QueryResult

__all__ = ["Store", "open", "default_tables_path", "translate_error"]

#: Environment variable naming the tables to open when no path is given.
TABLES_ENV = "MEDBENCH_TABLES"

_READ_STATEMENTS = {"SELECT", "EXPLAIN"}
#: What DuckDB may use at most for one store's queries (``SET memory_limit``); the tables are
#: megabytes, so a query that needs more is a runaway one.
DEFAULT_MEMORY_LIMIT = "4GB"
#: Whitespace and comments, which may stand before and between a statement's first words.
_GAP = re.compile(r"(?:\s+|--[^\n]*(?:\n|$)|/\*.*?\*/)*", re.S)
#: What follows EXPLAIN before the statement it explains: ANALYZE, or an option list.
_EXPLAIN_HEAD = re.compile(r"EXPLAIN\b(?:(?:\s+|--[^\n]*(?:\n|$)|/\*.*?\*/)*"
                           r"(?:ANALY[SZ]E\b|\([^()]*\)))?", re.S | re.I)


def explained_statement(query: str) -> str | None:
    """The statement an ``EXPLAIN [ANALYZE | (options)]`` statement wraps, or None when the
    text does not start that way. ``EXPLAIN ANALYZE`` runs what it wraps, so that statement
    is the one to check."""
    head = _EXPLAIN_HEAD.match(query, _GAP.match(query).end())
    return query[head.end():] if head else None


def default_tables_path() -> str:
    """``$MEDBENCH_TABLES`` if set, else the ``tables/`` folder shipped beside the package."""
    env = os.environ.get(TABLES_ENV)
    if env:
        return env
    return str(Path(__file__).resolve().parent.parent / "tables")


def _quote(text: str) -> str:
    """A SQL string literal (the only place paths are spliced into SQL)."""
    return "'" + text.replace("'", "''") + "'"


def one_line(error: BaseException) -> str:
    """The first line of an exception's message."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


class Store:
    """Read-only access to one release of medbench tables.

    Use :func:`open` to make one. Every method returns DuckDB relations, which convert with
    ``.arrow()``, ``.df()`` (pandas), ``.pl()`` (polars) or ``.fetchall()``.

    Args:
        root: folder (or URL) holding ``<table>/**/*.parquet`` and ``MANIFEST.json``.
        files: Parquet files per table, relative to ``root``.
        manifest: the parsed manifest, if the release has one.
        fs: for a URL, the fsspec filesystem that reads it (None: DuckDB's httpfs).
        memory_limit: the most memory DuckDB may use (``"4GB"``, ``"500MB"``).
    """

    def __init__(self, root: str, files: dict[str, list[str]], manifest: dict | None,
                 fs: Any = None, memory_limit: str = DEFAULT_MEMORY_LIMIT):
        self.root = root
        self.files = files
        self.manifest = manifest
        self.fs = fs
        self._views: set[str] = set()
        self.con = duckdb.connect(":memory:", config={
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
        })
        try:
            if is_url(root):
                if fs is not None:
                    # DuckDB's file cache reads a registered filesystem's files whole; off,
                    # only the footer and the column chunks a query needs are fetched.
                    self.con.execute("SET enable_external_file_cache = false")
                    self.con.execute("SET parquet_metadata_cache = true")  # footers once
                    self.con.register_filesystem(fs)
                else:
                    load_httpfs(self.con, root)
                allowed = root.rstrip("/") + "/"
            else:
                allowed = str(Path(root).resolve()) + os.sep
            self.con.execute(f"SET allowed_directories = [{_quote(allowed)}]")
            # DuckDB draws its progress bar on standard output, among a query's rows
            self.con.execute("SET enable_progress_bar = false")
            # No spill folder: DuckDB would allow reads of its default one (./.tmp of the
            # caller) whatever allowed_directories says.
            self.con.execute("SET temp_directory = ''")
            try:
                if memory_limit.strip().startswith("-"):
                    raise duckdb.InvalidInputException(memory_limit)
                self.con.execute(f"SET memory_limit = {_quote(memory_limit)}")
            except duckdb.Error:
                raise BadValueError(f"--memory-limit {memory_limit!r} is not a size such as "
                                    "500MB or 4GB") from None
            self.con.execute("SET enable_external_access = false")
            self.con.execute("SET lock_configuration = true")
        except BaseException:
            self.con.close()
            raise

    # -- lifecycle ----------------------------------------------------------------------------

    def close(self) -> None:
        """Close the DuckDB connection."""
        self.con.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        n = sum(len(v) for v in self.files.values())
        return f"Store({self.root!r}, {n} files)"

    # -- views --------------------------------------------------------------------------------

    def _path(self, rel: str) -> str:
        if is_url(self.root):
            if self.root.startswith(("http://", "https://")):
                # A web server decodes the request path: the partition folder
                # "task=msd%2Fhippocampus" must be asked for as "task=msd%252Fhippocampus".
                rel = urllib.parse.quote(rel, safe="/=")
            return self.root.rstrip("/") + "/" + rel
        return str(Path(self.root).resolve() / rel)

    def view(self, table: str, task: str | None = None) -> str:
        """Create the DuckDB view of ``table`` if it does not exist yet; returns its name.

        With ``task``, the view (named ``table@task``) reads only the files of that task's
        partition (from their paths, no file opened), so a query on one task never opens the
        files of the others. Files outside any task partition are always included.
        """
        name = table if task is None or "task" not in TABLES[table].partition_by \
            else f"{table}@{task}"
        if name in self._views:
            return name
        t: Table = TABLES[table]
        cols = ", ".join(f'"{c.name}"' for c in t.columns)
        files = self.files.get(table)
        if files and name != table:
            segment = partition_segment("task", task)
            files = [f for f in files if segment in f.split("/")
                     or not any(p.startswith("task=") for p in f.split("/"))]
        if files:
            listed = ", ".join(_quote(self._path(f)) for f in files)
            body = (f"SELECT {cols} FROM read_parquet([{listed}], hive_partitioning=false, "
                    "union_by_name=false)")
        else:
            casts = ", ".join(f'CAST(NULL AS {c.type}) AS "{c.name}"' for c in t.columns)
            body = f"SELECT {casts} WHERE false"
        try:
            self.con.execute(f'CREATE VIEW "{name}" AS {body}')
        except duckdb.Error as e:
            raise TableError(f"cannot read table {table} under {self.root}: {one_line(e)} "
                             "(run 'medbench validate')") from None
        self._views.add(name)
        return name

    def views(self, *tables: str) -> None:
        """Create the views of ``tables`` (all tables when none are named)."""
        for table in tables or TABLE_NAMES:
            self.view(table)

    def n_rows(self, table: str) -> int:
        """Rows of a table, from the manifest when it has one (no file is opened)."""
        if self.manifest is not None:
            return sum(int(f["rows"]) for f in self.manifest["files"] if f["table"] == table)
        self.view(table)
        return self.fetchone(f'SELECT count(*) FROM "{table}"')[0]

    # -- running SQL --------------------------------------------------------------------------

    def fetchall(self, sql: str, params: list | None = None) -> list[tuple]:
        """Run trusted SQL built by medbench itself and fetch every row.

        DuckDB errors become medbench errors.
        """
        try:
            return self.con.execute(sql, params or []).fetchall()
        except duckdb.Error as e:
            raise translate_error(e) from None

    def execute(self, sql: str, params: list | None = None) -> duckdb.DuckDBPyConnection:
        """Run trusted SQL built by medbench itself; the cursor, to fetch from once.

        Cheaper than a relation for a result read once (a relation binds its query when made
        and again when fetched). DuckDB errors become medbench errors.
        """
        try:
            return self.con.execute(sql, params or [])
        except duckdb.Error as e:
            raise translate_error(e) from None

    def fetchone(self, sql: str, params: list | None = None) -> tuple | None:
        """The first row of :meth:`fetchall`, or None."""
        rows = self.fetchall(sql, params)
        return rows[0] if rows else None

    def sql(self, query: str) -> duckdb.DuckDBPyRelation:
        """Run one read-only statement (SELECT, WITH, FROM, DESCRIBE, SHOW, SUMMARIZE, EXPLAIN).

        Every table is a view; nothing outside the tables' folder can be read.

        Raises:
            ReadOnlyError: for a statement that writes, attaches, installs, sets or copies.
            medbench.errors.MedbenchError: for malformed SQL or unreadable tables.
        """
        try:
            statements = duckdb.extract_statements(query)
        except duckdb.Error as e:
            raise translate_error(e) from None
        if len(statements) != 1:
            raise ReadOnlyError(f"give exactly one SQL statement (got {len(statements)})")
        kind, inner = statements[0].type.name, query
        while kind == "EXPLAIN":  # EXPLAIN ANALYZE runs what it wraps: check that instead
            inner = explained_statement(inner)
            try:
                wrapped = duckdb.extract_statements(inner) if inner is not None else []
            except duckdb.Error:
                wrapped = []
            if len(wrapped) != 1:
                raise ReadOnlyError("medbench sql: EXPLAIN must wrap one read-only statement")
            kind = wrapped[0].type.name
        if kind not in _READ_STATEMENTS:
            raise ReadOnlyError(f"medbench sql is read-only: {kind} statements are not allowed")
        self.views()
        try:
            return self.con.sql(query)
        except duckdb.Error as e:
            raise translate_error(e) from None

    # -- the API --------------------------------------------------------------------------------

    @contextmanager
    def guard(self, timeout: float | None = None) -> Iterator[None]:
        """Run what the block fetches from this store under a time limit: after ``timeout``
        seconds DuckDB is interrupted and a MedbenchError raised; DuckDB errors raised while
        fetching become one-line medbench errors; Ctrl-C stays a KeyboardInterrupt."""
        timer = None
        if timeout:
            timer = threading.Timer(timeout, self.con.interrupt)
            timer.daemon = True
            timer.start()
        ctrl_c = _interrupt_on_sigint(self.con)
        try:
            yield
        except (duckdb.InterruptException, RuntimeError) as e:
            # DuckDB reports an interrupt (ours, or its own on Ctrl-C) as either
            if not isinstance(e, duckdb.InterruptException) and "interrupted" not in str(e):
                raise
            if timer is not None and not timer.is_alive():
                raise MedbenchError(f"query stopped after {timeout:g} s (--timeout)") from None
            raise KeyboardInterrupt from None
        except duckdb.OutOfMemoryException as e:
            raise MedbenchError(f"query needs more memory than --memory-limit allows: "
                                f"{one_line(e)}") from None
        except duckdb.Error as e:
            raise translate_error(e) from None
        finally:
            if timer is not None:
                timer.cancel()
            ctrl_c()

    def table(self, name: str) -> duckdb.DuckDBPyRelation:
        """The whole of one table as a relation."""
        if name not in TABLES:
            raise UnknownNameError("table", name, TABLE_NAMES)
        self.view(name)
        return self.con.table(name)

    def query(self, **filters: Any) -> QueryResult:
        """Filter, rank and join results; see :func:`medbench.query.run` for the arguments."""
        from medbench.query import run  # query.py builds on the store

        return run(self, **filters)

    def tasks(self) -> duckdb.DuckDBPyRelation:
        """Every known task (catalogue and tables) with its table facts and result counts."""
        self.views("tasks", "evaluations")
        known = [(i.task, i.collection, i.dims, i.label_kind, i.modality)
                 for i in catalog.TASKS.values()]
        self.con.execute("CREATE OR REPLACE TEMP TABLE _catalog (task VARCHAR, collection VARCHAR,"
                         " dims INTEGER, label_kind VARCHAR, modality VARCHAR)")
        self.con.executemany("INSERT INTO _catalog VALUES (?, ?, ?, ?, ?)", known)
        return self.relation("""
            SELECT k.task,
                   coalesce(t.collection, k.collection) AS collection,
                   coalesce(t.dims, k.dims) AS dims,
                   coalesce(t.label_kind, k.label_kind) AS label_kind,
                   coalesce(t.modality, k.modality) AS modality,
                   t.metric, t.n_classes, t.n_train, t.n_val, t.n_test,
                   coalesce(e.n, 0) AS n_evaluations
            FROM (SELECT task, collection, dims, label_kind, modality FROM _catalog
                  UNION ALL BY NAME
                  SELECT task, collection, dims, label_kind, modality FROM tasks
                  WHERE task NOT IN (SELECT task FROM _catalog)) k
            LEFT JOIN tasks t USING (task)
            LEFT JOIN (SELECT task, count(*) AS n FROM evaluations GROUP BY task) e USING (task)
            ORDER BY n_evaluations = 0, k.task""")

    def spaces(self) -> duckdb.DuckDBPyRelation:
        """Every known space with its size and how many architectures have results."""
        self.views("spaces", "architectures")
        rows = ", ".join(f"({_quote(s.space)}, {_quote(s.description)})"
                         for s in catalog.SPACES.values())
        return self.relation(f"""
            WITH k AS (SELECT * FROM (VALUES {rows}) v(space, description)
                       UNION ALL BY NAME
                       SELECT space, description FROM spaces
                       WHERE space NOT IN (SELECT space FROM (VALUES {rows}) v(space, d)))
            SELECT k.space, coalesce(s.description, k.description) AS description,
                   s.n_archs, coalesce(a.n, 0) AS n_archs_with_results
            FROM k LEFT JOIN spaces s USING (space)
            LEFT JOIN (SELECT space, count(*) AS n FROM architectures GROUP BY space) a
                 USING (space)
            ORDER BY n_archs_with_results = 0, k.space""")

    def devices(self) -> duckdb.DuckDBPyRelation:
        """Every measured device with how many hardware rows it has."""
        self.views("devices", "hardware")
        return self.relation("""
            SELECT d.*, coalesce(h.n, 0) AS n_measurements
            FROM devices d LEFT JOIN (SELECT device, count(*) AS n FROM hardware GROUP BY device) h
                 USING (device)
            ORDER BY n_measurements DESC, device""")

    def known(self, column: str, table: str) -> tuple[str, ...]:
        """Distinct non-NULL values of ``table.column`` in the released tables."""
        self.view(table)
        rows = self.fetchall(
            f'SELECT DISTINCT "{column}" FROM "{table}" WHERE "{column}" IS NOT NULL ORDER BY 1')
        return tuple(r[0] for r in rows)

    def resolve_task(self, name: str) -> str:
        """Canonical task id of ``name`` (an alias, a catalogue task or a task in the tables)."""
        try:  # the catalogue first: no table is read for a catalogued task
            return catalog.resolve_task(name)
        except UnknownNameError:
            return catalog.resolve_task(name, extra=self.known("task", "tasks")
                                        + self.known("task", "evaluations"))

    def resolve_space(self, name: str) -> str:
        """Canonical space name; lists the known spaces when ``name`` is not one."""
        try:
            return catalog.resolve_space(name)
        except UnknownNameError:
            return catalog.resolve_space(name, extra=self.known("space", "architectures"))

    def resolve_device(self, name: str) -> str:
        """A measured device id; lists the measured devices when ``name`` is not one."""
        key = name.strip().lower()
        known = self.known("device", "devices")  # small; the hardware scan is the fallback
        for d in known:
            if d.lower() == key:
                return d
        known = tuple(sorted(set(known) | set(self.known("device", "hardware"))))
        for d in known:
            if d.lower() == key:
                return d
        raise UnknownNameError("device", name, known)

    def arch(self, space: str, arch_id: str) -> dict[str, duckdb.DuckDBPyRelation]:
        """Every fact about one architecture: its row and its rows in every fact table.

        Where the space has a fitted per-block latency table (:mod:`medbench.latency`),
        ``latency_predicted`` holds the latency it predicts per device, runtime and threads,
        also for an architecture of the space that the tables do not hold.

        Args:
            space: space name.
            arch_id: the canonical id, or the architecture's ``arch_index`` as digits.

        Returns:
            Table name → relation of that table's rows for the architecture (only tables
            with rows).

        Raises:
            UnknownNameError: if the space is unknown, or the architecture is neither in the
                tables nor predictable from them.
        """
        from medbench.latency import predicted

        space = self.resolve_space(space)
        self.view("architectures")
        found = self.fetchone(
            "SELECT arch_id FROM architectures WHERE space = ? AND (arch_id = ? OR "
            "CAST(arch_index AS VARCHAR) = ?)", [space, arch_id, arch_id])
        out = {}
        if found is not None:
            arch_id = found[0]
            for name, t in TABLES.items():
                if {"space", "arch_id"} <= set(t.column_names):
                    self.view(name)
                    rel = self.con.sql(f'SELECT * FROM "{name}" WHERE space = $space AND '
                                       'arch_id = $arch ORDER BY ALL',
                                       params={"space": space, "arch": arch_id})
                    if self._count(rel):
                        out[name] = rel
        try:
            rel = predicted(self, space, arch_id)
        except BadValueError:
            rel = None
        if rel is not None and self._count(rel):
            out["latency_predicted"] = rel
        if not out:
            error = UnknownNameError(f"{space} architecture", arch_id, ())
            error.args = (f"no {space} architecture {arch_id!r} in the tables (their ids: "
                          f"'medbench query --space {space} --limit 0')",)
            raise error
        return out

    def _count(self, rel: duckdb.DuckDBPyRelation) -> int:
        try:
            return rel.aggregate("count(*)").fetchall()[0][0]
        except duckdb.Error as e:
            raise translate_error(e) from None

    def relation(self, sql: str, params: list | None = None) -> duckdb.DuckDBPyRelation:
        """A relation of trusted SQL built by medbench; DuckDB errors become medbench errors."""
        try:
            return self.con.sql(sql, params=params) if params else self.con.sql(sql)
        except duckdb.Error as e:
            raise translate_error(e) from None


def _interrupt_on_sigint(con) -> Callable[[], None]:
    """Interrupt ``con`` when Ctrl-C arrives; returns the function that stops watching.

    Python runs its SIGINT handler only between bytecodes of the main thread, and DuckDB
    polls for it while a query runs, but a signal that lands just as a query starts can be
    missed (the query then runs on). The signal's wakeup byte is written at once, whatever
    the main thread is doing, so a watcher thread reads it and interrupts DuckDB itself."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    read, write = os.pipe()
    os.set_blocking(write, False)
    try:
        previous = signal.set_wakeup_fd(write)
    except ValueError:  # not the main interpreter
        os.close(read)
        os.close(write)
        return lambda: None
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            select.select([read], [], [])
            if signal.SIGINT in os.read(read, 64) and not done.is_set():
                con.interrupt()

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()

    def stop() -> None:
        done.set()
        signal.set_wakeup_fd(previous)
        os.write(write, b"\0")  # wakes the watcher at once
        watcher.join()
        os.close(read)
        os.close(write)

    return stop


def translate_error(e: duckdb.Error) -> Exception:
    """A DuckDB error as the medbench error a user should see (one line)."""
    from medbench.errors import MedbenchError

    msg = one_line(e)
    if isinstance(e, duckdb.PermissionException):
        return ReadOnlyError(f"medbench sql is read-only and reads only the tables: {msg}")
    if isinstance(e, (duckdb.IOException, duckdb.InvalidInputException)):
        return TableError(f"cannot read the tables: {msg} (run 'medbench validate')")
    if isinstance(e, duckdb.ParserException):
        return MedbenchError(f"malformed SQL: {msg}")
    return MedbenchError(msg)


def open(path_or_url: str | os.PathLike | None = None,  # noqa: A001 - like gzip.open
         storage_options: dict[str, Any] | None = None, filesystem: Any = None,
         memory_limit: str = DEFAULT_MEMORY_LIMIT) -> Store:
    """Open a medbench release.

    Args:
        path_or_url: a folder with ``<table>/**/*.parquet`` (and normally ``MANIFEST.json``),
            or a URL (``s3://bucket/prefix``, ``https://...``) whose ``MANIFEST.json`` lists
            the files; see :mod:`medbench.remote`. ``None`` opens ``$MEDBENCH_TABLES`` or the
            tables bundled with medbench.
        storage_options: for a URL, options of its fsspec filesystem (e.g. ``{"anon": True}``
            or ``{"endpoint_url": ...}`` for S3).
        filesystem: for a URL, an fsspec filesystem to read it with (overrides
            ``storage_options``).
        memory_limit: the most memory DuckDB may use for the store's queries (``"4GB"``).

    Returns:
        A :class:`Store`. Opening reads the manifest only; Parquet files are read by queries.

    Raises:
        TableError: if the manifest is unreadable or lists a file that is missing.
    """
    if path_or_url is not None and not str(path_or_url).strip():
        raise TableError("the tables path is empty: give a folder or URL (or leave --tables out)")
    root = str(path_or_url) if path_or_url is not None else default_tables_path()
    if root.startswith("file://"):
        root = root[len("file://"):]
    if is_url(root):
        from medbench import remote

        fs = filesystem if filesystem is not None else remote.filesystem(root, storage_options)
        where = root.rstrip("/") + "/" + MANIFEST_NAME
        manifest = check_manifest_shape(remote.load_json(where, fs), where)
        return Store(root, _files_from_manifest(manifest), manifest, fs, memory_limit)
    if not Path(root).is_dir():
        raise TableError(f"no tables folder at {root}")
    manifest = load_manifest(root)
    if manifest is None:
        files = list_table_files(root)
    else:
        files = _files_from_manifest(manifest)
        check_listing(root, manifest)
    return Store(root, files, manifest, memory_limit=memory_limit)


def _files_from_manifest(manifest: dict) -> dict[str, list[str]]:
    files: dict[str, list[str]] = {}
    for entry in manifest["files"]:
        files.setdefault(entry["table"], []).append(entry["path"])
    return {k: sorted(v) for k, v in files.items()}
