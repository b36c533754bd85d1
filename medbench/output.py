"""Print relations as a rich table, JSON, CSV or Parquet (the CLI's output formats)."""

from __future__ import annotations

import csv
import json
import math
import sys
from datetime import date, datetime
from enum import Enum
from typing import IO

from medbench.errors import BadValueError

__all__ = ["Format", "emit", "format_value", "plain", "to_arrow"]


def to_arrow(relation):
    """A DuckDB relation as a pyarrow Table (``to_arrow_table`` from DuckDB 1.4 on)."""
    convert = getattr(relation, "to_arrow_table", None) or relation.fetch_arrow_table
    return convert()


class Format(str, Enum):
    table = "table"
    json = "json"
    csv = "csv"
    parquet = "parquet"


def format_value(value: object) -> str:
    """A value for a human: 4 significant digits for floats, '-' for NULL."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return "NaN" if math.isnan(value) else f"{value:.4g}"
    if isinstance(value, list):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    return str(value)


def plain(value: object) -> object:
    """A value as JSON can hold it: NaN to None, dates to ISO text, lists element-wise."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def emit(relation, fmt: Format, *, title: str | None = None, caption: str | None = None,
         hide: tuple[str, ...] = (), output: str | None = None,
         stream: IO[str] | None = None) -> int:
    """Print a DuckDB relation (or an executed DuckDB cursor) in a format; returns the number
    of rows.

    Args:
        relation: the rows.
        fmt: output format.
        title, caption: shown around a rich table (other formats are data only).
        hide: columns left out of the rich table (constant context stated in the caption).
        output: file for Parquet output (default: standard output, never a terminal).
        stream: text stream for table/JSON/CSV (default: standard output).
    """
    stream = stream or sys.stdout
    if fmt == Format.parquet:
        return _parquet(relation, output)
    columns = [d[0] for d in relation.description]
    rows = relation.fetchall()
    if fmt == Format.json:
        stream.write(json.dumps([{c: plain(v) for c, v in zip(columns, r)} for r in rows],
                                indent=1) + "\n")
    elif fmt == Format.csv:
        w = csv.writer(stream, lineterminator="\n")
        w.writerow(columns)
        for r in rows:
            w.writerow("" if v is None else json.dumps(plain(v)) if isinstance(v, list)
                       else plain(v) for v in r)
    else:
        _table(columns, rows, title, caption, hide, stream)
    return len(rows)


def _table(columns, rows, title, caption, hide, stream) -> None:
    """A rich table on a terminal; plain aligned text (no box drawing) when piped."""
    if not rows:
        return
    keep = [i for i, c in enumerate(columns) if c not in hide]
    # Columns that are NULL in every row say nothing; the caption states what is missing.
    keep = [i for i in keep if any(r[i] is not None for r in rows)]
    # A column X_std is shown inside the cell of X, as "mean ± std".
    std = {columns.index(c[:-4]): i for i, c in enumerate(columns)
           if c.endswith("_std") and c[:-4] in columns}
    keep = [i for i in keep if i not in std.values()]
    names = [columns[i] + (" ± std" if i in std else "") for i in keep]
    cells = [[format_value(r[i]) + (f" ± {format_value(r[std[i]])}"
                                     if i in std and r[std[i]] is not None else "")
              for i in keep] for r in rows]
    isatty = getattr(stream, "isatty", lambda: False)()
    if not isatty:
        widths = [max(len(n), *(len(c[j]) for c in cells)) for j, n in enumerate(names)]
        line = lambda vals: "  ".join(v.ljust(w) for v, w in zip(vals, widths)).rstrip()  # noqa: E731
        out = [f"# {title}"] if title else []
        out += [line(names), *(line(c) for c in cells)]
        if caption:
            out.append(f"# {caption}")
        stream.write("\n".join(out) + "\n")
        return
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(title=title, caption=caption, caption_justify="left", title_justify="left")
    for n in names:
        table.add_column(n, overflow="fold")
    for c in cells:
        table.add_row(*(Text(v) for v in c))
    Console(file=stream, highlight=False).print(table)


def _parquet(relation, output: str | None) -> int:
    import pyarrow.parquet as pq

    data = to_arrow(relation)
    if output is None:
        if sys.stdout.isatty():
            raise BadValueError("Parquet is binary: give --output FILE or redirect stdout")
        pq.write_table(data, sys.stdout.buffer, compression="zstd")
        sys.stdout.buffer.flush()
    else:
        import io

        buf = io.BytesIO()
        pq.write_table(data, buf, compression="zstd")
        write_file(output, buf.getvalue())
    return data.num_rows


def write_file(output: str, data: bytes) -> None:
    """Write an output file whole or not at all: to a temporary file beside it, renamed over
    it at the end, so a failed write leaves what was there. Only a regular file (or a new
    name in an existing folder) is written: never a device, a folder or a link's target."""
    from pathlib import Path

    from medbench.manifest import atomic_write_bytes

    path = Path(output)
    if path.is_symlink() or (path.exists() and not path.is_file()):
        raise BadValueError(f"--output {output}: not a regular file; give a file name")
    if not path.parent.is_dir():
        raise BadValueError(f"--output {output}: no folder {path.parent}")
    try:
        atomic_write_bytes(path, data)
    except OSError as e:
        raise BadValueError(f"--output {output}: cannot write it ({e.strerror or e})") from None
