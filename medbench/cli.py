"""The ``medbench`` command's entry point, and ``medbench query``.

``medbench query`` is the command a user or a script runs again and again, so its process
starts light: it is parsed here with :mod:`argparse` and never imports typer, whose import and
command building cost a cold query about a fifth of ``import duckdb`` (measured in
``benchmarks/query_startup.py``). Every other command is a typer command in
:mod:`medbench.commands`; ``medbench --help`` lists ``query`` among them.

Every user error (:class:`~medbench.errors.MedbenchError` or a usage error) is printed by
:func:`main` as one line on stderr, with exit code 2. No command writes to the tables.
"""

from __future__ import annotations

import os
import sys

from medbench.errors import MedbenchError

__all__ = ["main", "entry", "run_query", "query_parser", "split_root", "QUERY_HELP", "UsageError"]

QUERY_HELP = "Architectures with their results, seeds aggregated, filtered and ranked."


class UsageError(MedbenchError):
    """Arguments a command cannot parse."""

    def __init__(self, message: str, command: str = "medbench"):
        super().__init__(f"{message} (see '{command} --help')")


def split_root(args: list[str]) -> tuple[str | None, str, list[str]] | None:
    """``(tables, command, rest)`` when ``args`` name a command after no root option but
    ``--tables``; None for help, ``--version``, a bare ``--tables`` or no command at all."""
    tables = None
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--tables":
            if i + 1 == len(args):
                return None
            tables = args[i + 1]
            i += 2
        elif arg.startswith("--tables="):
            tables = arg.split("=", 1)[1]
            i += 1
        elif arg.startswith("-"):
            return None
        else:
            return tables, arg, args[i + 1:]
    return None


def query_parser():
    """The argparse parser of ``medbench query`` (its only definition)."""
    import argparse

    from medbench.output import Format
    from medbench.query import DEFAULT_BATCH, DEFAULT_RUNTIME, DEFAULT_THREADS

    class Parser(argparse.ArgumentParser):
        def error(self, message: str):  # one line, exit 2 (argparse prints usage, then exits)
            raise UsageError(message, self.prog)

    p = Parser(prog="medbench query", description=QUERY_HELP, allow_abbrev=False)
    opt = p.add_argument
    opt("--task", metavar="TASK",
        help="Task id or alias, e.g. hippocampus, msd/hippocampus, pneumoniamnist.")
    opt("--space", metavar="SPACE", help="Search space, e.g. unet3d.")
    opt("--device", metavar="DEVICE",
        help="Device of latency/energy (default: the one with most measurements).")
    opt("--runtime", metavar="RUNTIME", default=DEFAULT_RUNTIME,
        help=f"Runtime of latency/energy (default: {DEFAULT_RUNTIME}).")
    opt("--threads", metavar="N", type=int, default=DEFAULT_THREADS,
        help=f"Threads of latency/energy, 0 = all (default: {DEFAULT_THREADS}).")
    opt("--batch", metavar="N", type=int, default=DEFAULT_BATCH,
        help=f"Batch size of latency/energy (default: {DEFAULT_BATCH}).")
    opt("--max-latency", metavar="LATENCY",
        help="Latency limit with unit: 4ms, 250us, 0.1s (bare number: ms).")
    opt("--max-energy", metavar="ENERGY", help="Energy limit per batch: 5mJ, 0.1J (bare: mJ).")
    opt("--max-params", metavar="COUNT", help="Parameter limit: 500k, 1M, 2000000.")
    opt("--min-dice", metavar="X", type=float, help="Minimum mean validation Dice.")
    opt("--min-metric", metavar="X", type=float,
        help="Minimum mean validation metric of the task.")
    opt("--method", metavar="METHOD", help="standalone or supernet.")
    opt("--sort", metavar="COLUMN",
        help="Column to sort by, e.g. test_dice or latency_ms:asc (default: val metric).")
    opt("--limit", metavar="N", type=int, default=20, help="Rows to show, 0 = all (default: 20).")
    opt("--pareto", action="store_true",
        help="Only rows not dominated in (val metric, latency).")
    opt("--format", "-f", dest="fmt", default=Format.table.value,
        choices=[f.value for f in Format], help="Output format (default: table).")
    opt("--output", metavar="FILE", help="File for --format parquet.")
    return p


def run_query(tables: str | None, args: list[str]) -> None:
    """Run ``medbench query`` with its arguments on the tables at ``tables`` (None: default)."""
    from medbench.output import Format, emit
    from medbench.store import open as open_store

    a = query_parser().parse_args(args)
    with open_store(tables) as store:
        res = store.query(task=a.task, space=a.space, device=a.device, runtime=a.runtime,
                          threads=a.threads, batch=a.batch, max_latency=a.max_latency,
                          max_energy=a.max_energy, max_params=a.max_params,
                          min_dice=a.min_dice, min_metric=a.min_metric, method=a.method,
                          sort=a.sort, limit=a.limit, pareto=a.pareto)
        for note in res.notes:
            note_line(note)
        if res.task is None:
            return
        if res.device:
            where = (f"latency/energy: device {res.device}, {res.runtime}, {res.threads} "
                     f"thread(s), batch {res.batch} ({res.device_reason})")
        else:
            where = "latency/energy: not measured"
        fmt = Format(a.fmt)
        # Rows read once come cheapest from a cursor; Parquet is written from the relation's
        # Arrow table (a cursor's would be one copy more).
        rows = res.relation if fmt == Format.parquet else res.execute()
        n = emit(rows, fmt, output=a.output,
                 title=f"{res.task} · {res.metric}: mean and std over seeds",
                 caption=where, hide=("task", "device", "runtime", "threads", "batch"))
        if n == 0:
            has_any = store.fetchone(f'SELECT count(*) FROM "{store.view("evaluations", res.task)}"'
                                     " WHERE task = ?", [res.task])[0]
            note_line(f"no results for {res.task} in the tables yet" if not has_any else
                      f"no result for {res.task} passes these filters")
            if has_any:
                from medbench.query import explain_empty

                for note in explain_empty(store, res):
                    note_line(note)


def note_line(text: str) -> None:
    """A remark for the user, on stderr (stdout carries only data)."""
    print(f"medbench: {text}", file=sys.stderr)


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
