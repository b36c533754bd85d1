"""Write schema-conformant Parquet files into a tables folder, atomically, and refresh its manifest.

This is the one place rows become table files: builders hand rows to :func:`write_rows`, which
checks them against :mod:`medbench.schema`, splits them by the table's partition columns and
writes each part with a temporary name, fsync and rename, so a reader never sees a partial file.
Needs pyarrow (a core dependency), not torch.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping
from pathlib import Path

from medbench.errors import BadValueError, MedbenchError
from medbench.manifest import atomic_write_bytes, write_manifest
from medbench.schema import arrow_schema, get_table, partition_dir

__all__ = ["to_arrow", "write_rows", "write_manifest", "PARQUET_OPTIONS"]

#: How every table file is written.
PARQUET_OPTIONS = {"compression": "zstd", "compression_level": 9, "row_group_size": 128 * 1024}


def to_arrow(table: str, rows: Iterable[Mapping] | object):
    """Rows (dicts, or a pyarrow Table) as a pyarrow Table with exactly the table's schema.

    Raises:
        BadValueError: if a row lacks a non-nullable column, has an unknown column, or a value
            does not convert to the column's type.
    """
    import pyarrow as pa

    schema = arrow_schema(table)
    if isinstance(rows, pa.Table):
        data = rows
    else:
        rows = list(rows)
        unknown = {k for r in rows for k in r} - set(schema.names)
        if unknown:
            raise BadValueError(f"{table}: unknown column(s) {', '.join(sorted(unknown))}")
        data = pa.table({f.name: [r.get(f.name) for r in rows] for f in schema} if rows else
                        {f.name: pa.array([], f.type) for f in schema})
    missing = [n for n in schema.names if n not in data.column_names]
    extra = [n for n in data.column_names if n not in schema.names]
    if extra:
        raise BadValueError(f"{table}: unknown column(s) {', '.join(extra)}")
    for name in missing:
        if not schema.field(name).nullable:
            raise BadValueError(f"{table}: required column {name} is missing")
        data = data.append_column(name, pa.nulls(len(data), schema.field(name).type))
    for f in schema:
        if not f.nullable and data.column(f.name).null_count:
            raise BadValueError(f"{table}: required column {f.name} is NULL in "
                                f"{data.column(f.name).null_count} row(s)")
    try:
        return data.select(schema.names).cast(schema)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as e:
        raise BadValueError(f"{table}: rows do not fit the schema: {e}") from None


def write_rows(root: str | Path, table: str, rows: Iterable[Mapping] | object,
               name: str, replace: bool = False) -> list[Path]:
    """Write rows of ``table`` under ``root/<table>/<partition>/<name>.parquet``.

    Args:
        root: the tables (or shard) folder.
        table: table name of the schema.
        rows: dicts or a pyarrow Table.
        name: file stem, unique per writing job (e.g. the run id).
        replace: overwrite a file of the same name; by default that is an error, so two
            writers that pick the same name can never silently drop each other's rows.

    Returns:
        The files written, one per partition present in ``rows``.
    """
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    t = get_table(table)
    data = to_arrow(table, rows)
    groups: dict[str, object] = {}
    if t.partition_by and len(data):
        combos = data.select(list(t.partition_by)).group_by(list(t.partition_by)).aggregate([])
        for combo in combos.to_pylist():
            mask = None
            for col, value in combo.items():
                eq = pc.equal(data.column(col), value)
                mask = eq if mask is None else pc.and_(mask, eq)
            groups[partition_dir(t, combo)] = data.filter(mask)
    else:
        groups[""] = data
    written = []
    for sub, part in groups.items():
        path = Path(root) / table / sub / f"{name}.parquet"
        buf = io.BytesIO()
        pq.write_table(part, buf, **PARQUET_OPTIONS)
        try:
            atomic_write_bytes(path, buf.getvalue(), replace=replace)
        except FileExistsError:
            raise MedbenchError(f"{path} exists; a file of released rows is never "
                                "overwritten (choose another name)") from None
        written.append(path)
    return written
