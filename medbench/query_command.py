"""``medbench query``: its parser and its run, shared by the entry point and the app.

``medbench query`` is the command a user or a script runs again and again, so its process
starts light: it is parsed here with :mod:`argparse` and never imports typer (see
:mod:`medbench.cli`). :mod:`medbench.commands` imports :class:`UsageError`,
:func:`note_line` and :func:`run_query` from here, so neither of the two modules above
imports the other's top.
"""

from __future__ import annotations

import sys

from medbench.errors import MedbenchError

__all__ = ["run_query", "query_parser", "split_root", "note_line", "QUERY_HELP", "UsageError"]

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
    opt("--method", metavar="METHOD", help="standalone, supernet or all (default: standalone "
        "where the task has standalone results, else all).")
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
    with open_store(tables) as store, store.guard():
        res = store.query(task=a.task, space=a.space, device=a.device, runtime=a.runtime,
                          threads=a.threads, batch=a.batch, max_latency=a.max_latency,
                          max_energy=a.max_energy, max_params=a.max_params,
                          min_dice=a.min_dice, min_metric=a.min_metric, method=a.method,
                          sort=a.sort, limit=a.limit, pareto=a.pareto)
        if res.task is None:
            for note in res.notes:
                note_line(note)
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
        for note in res.notes:  # after the output: a failed write stays one error line
            note_line(note)
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
