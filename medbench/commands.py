"""The ``medbench`` commands but ``query``: a thin typer skin over :mod:`medbench.store`.

:func:`medbench.cli.main` runs them through :func:`run_app`, which turns typer's usage errors
into medbench errors (one line on stderr, exit code 2). ``medbench query`` is parsed in
:mod:`medbench.query_command`, without typer; the app here lists it and hands its arguments
over.
No command here writes to the tables.
"""

from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer

from medbench import __version__
from medbench.query_command import (QUERY_HELP, UsageError, note_line, run_query,
                                    split_root)
from medbench.errors import MedbenchError
from medbench.output import Format, emit

__all__ = ["app", "run_app"]

_APP_SETTINGS = dict(
    name="medbench",
    help="Query the medbench tables: NAS results on medical images, as a table lookup.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
app = typer.Typer(**_APP_SETTINGS)

_state: dict[str, Optional[str]] = {"tables": None}

FormatOpt = Annotated[Format, typer.Option("--format", "-f", help="Output format.")]


def _version(value: bool) -> None:
    if value:
        from medbench.schema import SCHEMA_VERSION

        print(f"medbench {__version__} (table schema {SCHEMA_VERSION})")
        raise typer.Exit()


@app.callback()
def _root(
    tables: Annotated[Optional[str], typer.Option(
        "--tables", envvar="MEDBENCH_TABLES",
        help="Tables folder or URL (default: the tables bundled with medbench).")] = None,
    version: Annotated[bool, typer.Option(
        "--version", callback=_version, is_eager=True, help="Show the version and exit.")] = False,
) -> None:
    _state["tables"] = tables


def _open(**options):
    from medbench.store import open as open_store

    return open_store(_state["tables"], **options)


@app.command(help=QUERY_HELP, add_help_option=False, context_settings={
    "allow_extra_args": True, "ignore_unknown_options": True})
def query(ctx: typer.Context) -> None:
    # Parsed by argparse in medbench.query_command (its one definition; main() goes there
    # directly).
    run_query(_state["tables"], ctx.args)


@app.command()
def sql(
    statement: Annotated[str, typer.Argument(help="One read-only SQL statement.")],
    fmt: FormatOpt = Format.table,
    output: Annotated[Optional[str], typer.Option(help="File for --format parquet.")] = None,
    timeout: Annotated[float, typer.Option(
        help="Stop the query after this many seconds (0: no limit).")] = 60.0,
    memory_limit: Annotated[str, typer.Option(
        help="The most memory DuckDB may use, e.g. 500MB, 4GB.")] = "4GB",
) -> None:
    """Run read-only SQL over the tables (every table is a view)."""
    if not 0 <= timeout <= 1e6:  # NaN included; a timer cannot wait past about 11 days
        raise MedbenchError(f"--timeout must lie in [0, 1e6] seconds: {timeout:g}")
    with _open(memory_limit=memory_limit) as store, store.guard(timeout or None):
        emit(store.sql(statement), fmt, output=output)


@app.command()
def tasks(fmt: FormatOpt = Format.table) -> None:
    """Known tasks, with their split sizes and result counts where built."""
    with _open() as store:
        emit(store.tasks(), fmt, title="tasks")


@app.command()
def spaces(fmt: FormatOpt = Format.table) -> None:
    """Known search spaces, with their size and how many architectures have results."""
    with _open() as store:
        emit(store.spaces(), fmt, title="search spaces")


@app.command()
def devices(fmt: FormatOpt = Format.table) -> None:
    """Measured devices."""
    with _open() as store:
        if not emit(store.devices(), fmt, title="devices") and fmt == Format.table:
            note_line("no device has been measured yet")


@app.command()
def info(
    space: Annotated[str, typer.Argument(help="Search space, e.g. unet3d.")],
    arch_id: Annotated[str, typer.Argument(help="Architecture id or arch_index.")],
    fmt: FormatOpt = Format.table,
) -> None:
    """Every fact about one architecture, table by table."""
    with _open() as store:
        facts = store.arch(space, arch_id)
        if fmt == Format.json:
            import json

            from medbench.output import plain

            doc = {name: [{c: plain(v) for c, v in zip(rel.columns, row)}
                          for row in rel.fetchall()] for name, rel in facts.items()}
            print(json.dumps(doc, indent=1))
            return
        if fmt not in (Format.table,):
            raise MedbenchError("medbench info prints --format table or json")
        for name, rel in facts.items():
            emit(rel, fmt, title=name, hide=("space", "arch_id"))


@app.command()
def simulate(
    task: Annotated[Optional[str], typer.Option(help="Task id or alias.")] = None,
    space: Annotated[Optional[str], typer.Option(
        help="Search space (default: the one with results for the task and method).")] = None,
    method: Annotated[str, typer.Option(help="standalone or supernet results.")] = "standalone",
    algorithms: Annotated[str, typer.Option(
        help="Comma-separated: rs, re, ls, asha, sh, hb, nsga2, moead, mstf, re-warm.")
    ] = "rs,re,asha",
    workers: Annotated[int, typer.Option(help="Parallel simulated workers.")] = 4,
    budget: Annotated[str, typer.Option(help="Simulated wall-clock: 24h, 90m, 1d.")] = "24h",
    repeats: Annotated[int, typer.Option(help="Runs per algorithm.")] = 20,
    seed: Annotated[int, typer.Option(help="Seed of every generator.")] = 0,
    seed_mode: Annotated[str, typer.Option(help="random (one seed per evaluation) or mean."
                                           )] = "random",
    out: Annotated[str, typer.Option(help="Folder for the report.")] = "report",
    objective: Annotated[str, typer.Option(
        help="Second objective of nsga2/moead and of the hypervolume: latency or energy."
    )] = "latency",
) -> None:
    """Compare searchers by simulated search on the tables: trajectories, regret, ranks."""
    from medbench.simulate import from_store
    from medbench.simulate.report import compare, parse_duration, write_report

    seconds = parse_duration(budget)
    names = [a.strip() for a in algorithms.split(",") if a.strip()]
    if not names:
        raise MedbenchError("--algorithms names none; e.g. rs,re,asha")
    if seed < 0 or repeats < 1:
        raise MedbenchError(f"--seed must not be negative and --repeats must be at least 1 "
                            f"(got {seed}, {repeats})")
    from medbench.simulate.simulator import MAX_WORKERS

    if not 1 <= workers <= MAX_WORKERS:
        raise MedbenchError(f"--workers must lie in [1, {MAX_WORKERS:,}], got {workers}")
    with _open() as store:
        if task is None:
            raise MedbenchError("give --task")
        from medbench.simulate.tabular import OBJECTIVES

        if objective not in OBJECTIVES:
            raise MedbenchError(f"unknown objective {objective!r}; use one of "
                                f"{', '.join(OBJECTIVES)}")
        table = from_store(store, task=task, space=store.resolve_space(space) if space else None,
                           method=method, objective=objective)
    runs = compare(table, names, workers=workers, budget_seconds=seconds, repeats=repeats,
                   seed=seed, seed_mode=seed_mode)
    folder = write_report(table, runs, out, workers=workers, budget_seconds=seconds,
                          algorithms=names)
    print((folder / "summary.md").read_text(), end="")
    note_line(f"report written to {folder}/")


@app.command()
def validate() -> None:
    """Check the tables: manifest checksums, schema, keys, value ranges, references."""
    from medbench.store import default_tables_path
    from medbench.validate import validate as run_validate

    root = _state["tables"]
    if root is not None and not root.strip():
        raise MedbenchError("the tables path is empty: give a folder (or leave --tables out)")
    root = root or default_tables_path()
    if "://" in root:
        raise MedbenchError("medbench validate checks a local tables folder")
    report = run_validate(root)
    for problem in report.problems:
        print(problem, file=sys.stderr)
    print(report.summary())
    if not report.ok:
        raise typer.Exit(2)


@app.command("export")
def export(
    task: Annotated[str, typer.Option(help="Task id or alias.")],
    to: Annotated[str, typer.Option("--to", help="syne-tune (a blackbox folder) or naslib "
                                    "(a JSON file).")],
    out: Annotated[str, typer.Option(help="Folder (syne-tune) or file (naslib) to write.")],
    space: Annotated[Optional[str], typer.Option(
        help="Search space (default: the one with results for the task and method).")] = None,
    method: Annotated[str, typer.Option(help="standalone or supernet.")] = "standalone",
) -> None:
    """Write one task's results in another NAS tool's format (Syne Tune, NASLib)."""
    from medbench.simulate import from_store
    from medbench.simulate.export import (EXPORTS, proxies_from_store, write_naslib,
                                          write_syne_tune)

    if to not in EXPORTS:
        raise MedbenchError(f"unknown export format {to!r}; use one of {', '.join(EXPORTS)}")
    with _open() as store:
        table = from_store(store, task=task, space=store.resolve_space(space) if space else None,
                           method=method)
        if to == "naslib":
            path = write_naslib(table, out, proxies_from_store(store, table))
        else:
            path = write_syne_tune(table, out)
    note_line(f"{table.n_archs} architectures of {table.task} ({table.space}, {table.method}) "
          f"written to {path} ({to})")


@app.command("explore")
def explore(
    out: Annotated[str, typer.Option(help="Folder for the site (new, empty, or an earlier "
                                     "site, which is replaced).")] = "site",
    task: Annotated[Optional[list[str]], typer.Option(
        help="Only this task (repeatable); default: every task with results.")] = None,
) -> None:
    """Write a static web site of the tables: per task, Pareto plots, filters, a sortable
    table, and a page per architecture. Open OUT/index.html in a browser (no server)."""
    from medbench.explore import write_site

    with _open() as store:
        done = write_site(store, out, task)
    note_line(f"{done['pages']} pages for {len(done['tasks'])} task(s), {done['rows']} rows, "
              f"written to {done['out']}/; open {done['out']}/index.html")


@app.command("recommend")
def recommend_cmd(
    dataset: Annotated[str, typer.Option(help="A task id or alias with distances in the tables "
                                         "(e.g. breastmnist), or a new data set: a folder of "
                                         "images or a MedMNIST-style .npz (needs torch).")],
    space: Annotated[str, typer.Option(help="Search space of the zoo.")] = "mednns",
    max_params: Annotated[Optional[str], typer.Option(help="Parameter limit, e.g. 1M.")
                          ] = None,
    max_latency: Annotated[Optional[str], typer.Option(
        help="Latency limit with unit (batch 1): 2ms, 250us (bare number: ms).")] = None,
    device: Annotated[Optional[str], typer.Option(
        help="Device of the latency (default: the one with most measurements).")] = None,
    runtime: Annotated[str, typer.Option(help="Runtime of the latency.")] = "onnxruntime",
    threads: Annotated[int, typer.Option(help="Threads of the latency (0 = all).")] = 1,
    limit: Annotated[int, typer.Option(help="Architectures to list.")] = 5,
    method: Annotated[Optional[str], typer.Option(
        help="Only results of this training method (supernet or standalone).")] = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """Architectures for a data set from the zoo of its nearest data set (MedNNS's rule)."""
    from pathlib import Path

    from medbench.errors import UnknownNameError
    from medbench.recommend import recommend
    from medbench.units import parse_count, parse_latency_ms

    if limit < 1:
        raise MedbenchError(f"--limit must be at least 1, got {limit}")
    limits = {"max_params": parse_count(max_params) if max_params else None,
              "max_latency_ms": parse_latency_ms(max_latency) if max_latency else None,
              "device": device, "runtime": runtime, "threads": threads}
    embedding = None
    with _open() as store:
        try:  # a task id or alias first; a file or folder otherwise (./name for a folder
            store.resolve_task(dataset)  # that shares a task's name)
            is_task = True
        except UnknownNameError:
            is_task = False
        if not is_task and Path(dataset).expanduser().exists():
            dataset = str(Path(dataset).expanduser())
            try:
                from builders.task_distances import embed, read_images
            except ImportError as e:
                raise MedbenchError(f"embedding a new data set needs torch ({e}): "
                                    "pip install 'medbench[build]'") from None
            embedding = embed(store, read_images(dataset))
            near = sorted(embedding.distances.items(), key=lambda kv: kv[1])
            note_line(f"{dataset}: {embedding.n_samples} images embedded ({embedding.dims}D, "
                  f"{embedding.method}); distances: "
                  + ", ".join(f"{t.split('/')[-1]} {d:.1f}" for t, d in near))
        elif not is_task:
            raise MedbenchError(f"{dataset}: not a known task and no such file or folder")
        rec = recommend(store, dataset, space, limit=limit, result_method=method,
                        embedding=embedding, **limits)
        if not rec.rows:
            note_line(f"no {space} architecture with results on {rec.source} meets the limits")
        where = f"; latency on {rec.device}" if rec.device else ""
        note_line(f"nearest data set to {rec.task}: {rec.source} ({rec.method}, distance "
              f"{rec.distance:.3f}); expected = its mean val {rec.metric}{where}")
        emit(rec.relation, fmt, title=f"recommended for {rec.task}")


report_app = typer.Typer(help="Reports computed from the tables.", no_args_is_help=True,
                         rich_markup_mode=None)
app.add_typer(report_app, name="report")


@report_app.command("validation")
def report_validation(
    out: Annotated[str, typer.Option(help="Folder for validation.md and its figures.")
                   ] = "reports/validation",
    splits_dir: Annotated[Optional[str], typer.Option(
        help="Folder of committed split files (default: builders/splits).")] = None,
    data_root: Annotated[Optional[str], typer.Option(
        help="Data folder (TaskXX_Name/...): also check that no image recurs across splits."
    )] = None,
) -> None:
    """Seed variability, val-vs-test agreement, distributions and split hygiene per task."""
    from medbench.validation_report import write_report

    with _open() as store:
        md = write_report(store, out, splits_dir, data_root)
    print(md.read_text(), end="")
    note_line(f"report written to {md.parent}/")


@report_app.command("proxies")
def report_proxies(
    out: Annotated[str, typer.Option(help="Folder for proxies.md and its heat maps.")
                   ] = "reports/proxies",
    bootstrap: Annotated[int, typer.Option(help="Bootstrap resamples for the intervals.")
                         ] = 1000,
) -> None:
    """Zero-cost proxies against trained results: rank correlations, top-10 %, stability."""
    from medbench.proxy_report import write_report

    _bootstrapped_report(write_report, out, bootstrap)


@report_app.command("supernet-trust")
def report_supernet_trust(
    out: Annotated[str, typer.Option(help="Folder for supernet.md and its plots.")
                   ] = "reports/supernet",
    bootstrap: Annotated[int, typer.Option(help="Bootstrap resamples for the intervals.")
                         ] = 1000,
) -> None:
    """Supernet subnets against the same architectures trained alone: Kendall τ, Spearman."""
    from medbench.supernet_report import write_report

    _bootstrapped_report(write_report, out, bootstrap)


def _bootstrapped_report(write_report, out: str, bootstrap: int) -> None:
    """Write a report whose intervals come from ``bootstrap`` resamples, and print it."""
    if bootstrap < 0:
        raise MedbenchError(f"--bootstrap must be 0 or more, got {bootstrap}")
    with _open() as store:
        md = write_report(store, out, bootstrap)
    print(md.read_text(), end="")
    note_line(f"report written to {md.parent}/")


def _app_for(args: list[str]) -> typer.Typer:
    """The app cut down to the one command that ``args`` run, else the whole app.

    typer turns every command of an app into a click command on each start (about 15 ms for
    all of medbench's, most of it reading their signatures), so a process that runs one
    command builds only that one. Help, an unknown command and sub-apps get the whole app.
    """
    root = split_root(args)
    if root is None:
        return app
    for info in app.registered_commands:
        if (info.name or info.callback.__name__.replace("_", "-")) == root[1]:
            lean = typer.Typer(**_APP_SETTINGS)
            lean.registered_callback = app.registered_callback
            lean.registered_commands = [info]
            return lean
    return app


def run_app(args: list[str]) -> int:
    """Run the typer app on ``args``; its exit code. Usage errors raise :class:`UsageError`."""
    try:  # typer >= 0.29 carries its own click
        from typer.exceptions import TyperException as UsageProblem
    except ImportError:  # pragma: no cover - older typer on top of click
        from click.exceptions import ClickException as UsageProblem

    try:
        code = _app_for(args)(args=args, prog_name="medbench", standalone_mode=False)
    except UsageProblem as e:
        raise UsageError(e.format_message()) from None
    except typer.Abort:
        raise KeyboardInterrupt from None
    return code if isinstance(code, int) else 0
