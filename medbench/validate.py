"""``medbench validate``: check a release against its manifest and the table contract.

Checks, in order:
    1. the manifest: every listed file exists with the recorded bytes, sha256 and row count, its
       footer is readable and its columns and types are the schema's; no Parquet file is
       unlisted;
    2. the rows (over the files that passed 1): key columns never NULL and unique, required
       columns present, values in their allowed sets and ranges (NaN is not a value), and
       every reference between tables resolves (every fact row has its ``runs`` row).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from medbench.errors import MedbenchError
from medbench.manifest import MANIFEST_NAME, list_table_files, load_manifest, sha256_file
from medbench.schema import TABLES, Table, arrow_schema, partition_dir

__all__ = ["Report", "validate"]


@dataclass
class Report:
    """What validation found: one line per problem, plus what was checked."""

    root: str
    problems: list[str] = field(default_factory=list)
    files_checked: int = 0
    rows_checked: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        state = "ok" if self.ok else f"{len(self.problems)} problem(s)"
        return (f"{self.root}: {state}; {self.files_checked} files, "
                f"{self.rows_checked} rows checked")


def validate(root: str | Path) -> Report:
    """Validate the release in folder ``root``; returns a :class:`Report` (never raises on bad
    data).

    Raises:
        MedbenchError: only if ``root`` is not a folder.
    """
    root = Path(root)
    if not root.is_dir():
        raise MedbenchError(f"no tables folder at {root}")
    report = Report(str(root))
    good = _check_files(root, report)
    if good is not None:
        # With files set aside, checks across files (references, seed gaps) would report
        # the rows of those files as missing: only the values of the good files are checked.
        _check_rows(root, good, report, across_files=not report.problems)
    return report


def _check_files(root: Path, report: Report) -> dict[str, list[str]] | None:
    import pyarrow.parquet as pq

    on_disk = list_table_files(root)
    try:
        manifest = load_manifest(root)
    except MedbenchError as e:
        report.problems.append(str(e))
        return None
    if manifest is None:
        if on_disk:
            report.problems.append(f"{root} has Parquet files but no {MANIFEST_NAME}: nothing "
                                   "is checksummed")
        return None
    listed = set()
    good: dict[str, list[str]] = {}
    for entry in manifest["files"]:
        rel, table = entry["path"], entry["table"]
        listed.add(rel)
        path = root / rel
        report.files_checked += 1
        if not path.is_file():
            report.problems.append(f"{rel}: listed in the manifest but missing")
            continue
        size = path.stat().st_size
        if size != entry["bytes"]:
            report.problems.append(f"{rel}: {size} bytes, the manifest says {entry['bytes']}")
            continue
        if sha256_file(path) != entry["sha256"]:
            report.problems.append(f"{rel}: sha256 differs from the manifest (file changed or "
                                   "corrupted)")
            continue
        try:
            pf = pq.ParquetFile(path)
        except Exception as e:  # noqa: BLE001 - any unreadable footer is one problem line
            report.problems.append(f"{rel}: not a readable Parquet file ({_first_line(e)})")
            continue
        if pf.metadata.num_rows != entry["rows"]:
            report.problems.append(f"{rel}: {pf.metadata.num_rows} rows, the manifest says "
                                   f"{entry['rows']}")
            continue
        bad = _schema_mismatch(pf.schema_arrow, TABLES[table])
        if bad:
            report.problems.append(f"{rel}: {bad}")
            continue
        if not rel.startswith(table + "/"):
            report.problems.append(f"{rel}: filed under table {table} but not in its folder")
            continue
        bad = _partition_mismatch(rel, pf, TABLES[table])
        if bad:
            report.problems.append(f"{rel}: {bad}")
            continue
        good.setdefault(table, []).append(rel)
        report.rows_checked += entry["rows"]
    for rels in on_disk.values():
        for rel in rels:
            if rel not in listed:
                report.problems.append(f"{rel}: Parquet file not listed in the manifest")
    return good


def _partition_mismatch(rel: str, pf, table: Table) -> str:
    """Whether the file's partition folders name exactly the values in it (queries prune on
    the folders, so a file filed under the wrong folder would be silently skipped)."""
    if not table.partition_by or pf.metadata.num_rows == 0:
        return ""
    expected = table.name + "/" + partition_dir(table, {c: None for c in table.partition_by})
    data = pf.read(columns=list(table.partition_by))
    rows = {tuple(r.values()) for r in data.to_pylist()}
    if len(rows) != 1:
        return f"holds several partitions {sorted(rows)[:3]} in one file"
    values = dict(zip(table.partition_by, rows.pop()))
    folder = table.name + "/" + partition_dir(table, values) + "/"
    if not rel.startswith(folder):
        return f"rows of {values} filed outside {folder} (layout {expected}/...)"
    return ""


def _schema_mismatch(actual, table: Table) -> str:
    expected = arrow_schema(table)
    names = actual.names
    missing = [n for n in expected.names if n not in names]
    if missing:
        return f"missing column(s) {', '.join(missing)} of table {table.name}"
    extra = [n for n in names if n not in expected.names]
    if extra:
        return f"column(s) {', '.join(extra)} not in the schema of table {table.name}"
    for f in expected:
        got = actual.field(f.name).type
        if not got.equals(f.type):
            return f"column {f.name} has type {got}, the schema says {f.type}"
    return ""


def _check_rows(root: Path, good: dict[str, list[str]], report: Report,
                across_files: bool = True) -> None:
    from medbench.store import Store

    with Store(str(root), good, None) as store:
        store.views()
        for t in TABLES.values():
            for problem in _table_problems(store, t, refs=across_files):
                report.problems.append(f"table {t.name}: {problem}")


def value_problems(root: str | Path) -> list[str]:
    """Problems of the values in a tables-format folder by themselves: NULL keys, values
    outside their allowed sets or ranges, NaN, duplicate keys (no references, which may
    point into another release). What ``builders.release`` checks new rows with."""
    from medbench.manifest import list_table_files
    from medbench.store import Store

    files = list_table_files(root)
    out = []
    with Store(str(root), files, None) as store:
        store.views()
        for t in TABLES.values():
            if t.name in files:
                out += [f"table {t.name}: {p}" for p in _table_problems(store, t, refs=False)]
    return out


def _table_problems(store, t: Table, refs: bool = True) -> list[str]:
    q = store.fetchall
    out = []
    name = f'"{t.name}"'
    keys = ", ".join(f'"{k}"' for k in t.key)
    for c in t.columns:
        col = f'"{c.name}"'
        if not c.nullable:
            n = q(f"SELECT count(*) FROM {name} WHERE {col} IS NULL")[0][0]
            if n:
                out.append(f"{n} row(s) with NULL {c.name}")
        if c.allowed is not None:
            values = ", ".join(repr(v) if isinstance(v, str) else str(v) for v in c.allowed)
            bad = q(f"SELECT DISTINCT {col} FROM {name} WHERE {col} IS NOT NULL AND "
                    f"{col} NOT IN ({values}) LIMIT 3")
            if bad:
                out.append(f"{c.name} has value(s) {', '.join(repr(b[0]) for b in bad)}; allowed: "
                           f"{', '.join(map(str, c.allowed))}")
        # For lists, the smallest and largest element decide.
        is_list = c.type.endswith("[]")
        lo_el, hi_el = (f"list_min({col})", f"list_max({col})") if is_list else (col, col)
        conds = []
        if c.type.removesuffix("[]") == "DOUBLE":
            # Not isnan(): DuckDB folds it to false from Parquet statistics, which leave NaN
            # out; the text of the value is beyond the statistics' reach.
            conds.append(f"list_contains(CAST({col} AS VARCHAR[]), 'nan')" if is_list
                         else f"CAST({col} AS VARCHAR) = 'nan'")
        if c.min is not None:
            conds.append(f"{lo_el} < {c.min}")
        if c.max is not None:
            conds.append(f"{hi_el} > {c.max}")
        if conds:
            n = q(f"SELECT count_if({' OR '.join(conds)}) FROM {name}")[0][0]
            if n:
                lo = "-inf" if c.min is None else c.min
                hi = "inf" if c.max is None else c.max
                out.append(f"{n} row(s) with {c.name} outside [{lo}, {hi}] or NaN")
    dups = q(f"SELECT {keys}, count(*) FROM {name} GROUP BY ALL HAVING count(*) > 1 LIMIT 3")
    if dups:
        shown = "; ".join("(" + ", ".join(map(str, d[:-1])) + f") x{d[-1]}" for d in dups)
        out.append(f"duplicate key(s) {t.key}: {shown}")
    if t.name == "tasks":
        from medbench.catalog import TASKS, default_metric

        for task, metric in q('SELECT task, metric FROM "tasks"'):
            if task in TASKS and metric != default_metric(task):
                out.append(f"{task} has metric {metric!r}; the catalogue ranks it by "
                           f"{default_metric(task)!r}")
    if not refs:
        return out
    if t.name == "evaluations":
        out += _seed_gaps(q)
    for ref in t.references:
        on = " AND ".join(f'a."{c}" = b."{tc}"' for c, tc in zip(ref.columns, ref.target_columns))
        not_null = " AND ".join(f'a."{c}" IS NOT NULL' for c in ref.columns)
        rows = q(f'SELECT {", ".join(f"a.{chr(34)}{c}{chr(34)}" for c in ref.columns)}, count(*) '
                 f'OVER () FROM {name} a ANTI JOIN "{ref.table}" b ON {on} WHERE {not_null} '
                 "LIMIT 1")
        if rows:
            example = ", ".join(map(str, rows[0][:-1]))
            out.append(f"{rows[0][-1]} row(s) whose {', '.join(ref.columns)} has no row in "
                       f"{ref.table} (e.g. {example})")
    return out


def _seed_gaps(q) -> list[str]:
    """Seeds an architecture lacks below its highest seed, where other architectures of the
    same task, space and method have them, and no failed run of that seed explains the gap.

    Builders run an architecture's seeds in order, so a partial build lacks only top seeds;
    a missing seed in the middle means lost rows, unless its run failed (a ``runs`` row with
    status ``failed``, the seed and the architecture in its arguments).
    """
    rows = q("""
        WITH planned AS (SELECT DISTINCT task, space, method, seed FROM evaluations),
        top AS (SELECT task, space, method, arch_id, max(seed) AS top FROM evaluations
                GROUP BY ALL),
        expected AS (SELECT t.task, t.space, t.method, t.arch_id, p.seed
                     FROM top t JOIN planned p USING (task, space, method)
                     WHERE p.seed < t.top),
        gaps AS (SELECT x.* FROM expected x ANTI JOIN evaluations e
                 USING (task, space, method, arch_id, seed))
        SELECT g.task, g.space, g.arch_id, g.method, g.seed, count(*) OVER ()
        FROM gaps g ANTI JOIN (SELECT seed, args FROM runs WHERE status = 'failed') r
             ON r.seed = g.seed AND contains(r.args, g.arch_id)
        ORDER BY ALL LIMIT 1""")
    if not rows:
        return []
    task, space, arch, method, seed, n = rows[0]
    return [f"{n} seed gap(s) no failed run explains (e.g. {task} {space} {arch} {method} "
            f"lacks seed {seed} but has a higher one)"]


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__
