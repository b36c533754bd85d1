"""The ``medbench`` command's entry point.

``medbench query`` is the command a user or a script runs again and again, so its process
starts light: it goes straight to :mod:`medbench.query_command` (argparse) and never imports
typer, whose import and command building cost a cold query about a fifth of ``import duckdb``
(measured in ``benchmarks/query_startup.py``). Every other command is a typer command in
:mod:`medbench.commands`, imported only for them; ``medbench --help`` lists ``query`` among
them.

Every user error (:class:`~medbench.errors.MedbenchError` or a usage error) is printed by
:func:`main` as one line on stderr, with exit code 2. No command writes to the tables.
"""

from __future__ import annotations

import os
import sys

from medbench.errors import MedbenchError
from medbench.query_command import QUERY_HELP, UsageError, query_parser, run_query, split_root

__all__ = ["main", "entry", "run_query", "query_parser", "split_root", "QUERY_HELP", "UsageError"]


def main(argv: list[str] | None = None) -> None:
    """Run a command (``argv``: the process's arguments when None); exits with its code.
    User errors are printed as one line on stderr, with exit code 2."""
    sys.exit(_run(sys.argv[1:] if argv is None else list(argv)))


def entry() -> None:
    """The ``medbench`` program (console script, ``python -m medbench``): :func:`main`; a
    query process then ends at once, its output flushed. Python's finalisation (DuckDB and a
    few hundred modules freed) would add about a tenth of ``import duckdb`` to every cold
    query (``benchmarks/query_startup.py``) and has nothing left to finish."""
    args = sys.argv[1:]
    code = _run(args)
    if not _is_query(args):
        sys.exit(code)
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BrokenPipeError:
        code = 1
    os._exit(code)


def _is_query(args: list[str]) -> bool:
    root = split_root(args)
    return root is not None and root[1] == "query"


def _run(args: list[str]) -> int:
    """Run a command; its exit code (user errors printed as one line: 2)."""
    args = args or ["--help"]
    try:
        if _is_query(args):
            tables, _, rest = split_root(args)
            run_query(tables, rest)
            return 0
        from medbench.commands import run_app

        return run_app(args)
    except MedbenchError as e:
        print(f"medbench: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 1
    except OSError as e:  # a path the user gave (--out, --output, --dataset) that fails
        where = f": {e.filename}" if e.filename else ""
        print(f"medbench: error: {e.strerror or e}{where}", file=sys.stderr)
        return 2
    except Exception as e:  # noqa: BLE001 - a DuckDB error raised while rows were fetched
        import duckdb

        if not isinstance(e, duckdb.Error):
            raise
        from medbench.store import translate_error

        print(f"medbench: error: {translate_error(e)}", file=sys.stderr)
        return 2
