"""Filter and rank results: one row per (space, architecture, task, method), seeds aggregated.

Metric columns are means over seeds of the task's primary metric (``val_dice`` / ``test_dice``
for segmentation, ``val_acc`` / ``test_acc`` for classification) with their standard deviation
and the number of seeds. Latency and energy come from one device, runtime, thread count and
batch size at a time, stated in :attr:`QueryResult.device` and friends.

Filters on quality use validation numbers (``--min-dice`` is on ``val_dice``): selecting on
test numbers would leak the test set into the choice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

from medbench import catalog
from medbench.errors import BadValueError, UnknownNameError
from medbench.units import parse_count, parse_energy_mj, parse_latency_ms

if TYPE_CHECKING:
    import duckdb

    from medbench.store import Store

__all__ = ["QueryResult", "run", "explain_empty", "task_metric", "DEFAULT_RUNTIME",
           "DEFAULT_THREADS", "DEFAULT_BATCH", "METHODS"]

#: Latency is reported for ONNX Runtime at one thread and batch 1 unless asked otherwise:
#: the setting of an edge deployment, and the least noisy on shared machines.
DEFAULT_RUNTIME = "onnxruntime"
#: The runtimes builders.hardware measures.
RUNTIMES = ("onnxruntime", "torch")
DEFAULT_THREADS = 1
DEFAULT_BATCH = 1
METHODS = ("standalone", "supernet")

_HW_COLUMNS = ("latency_ms", "latency_p10_ms", "latency_p90_ms", "latency_method", "energy_mj",
               "energy_method")


@dataclass
class QueryResult:
    """The answer to a query: its SQL on a store, plus what it is about.

    Attributes:
        relation: the rows as a DuckDB relation, made when first asked for (convert with
            ``.arrow()``, ``.df()``, ``.pl()``, ``.fetchall()``).
        sql, params: the query and its positional parameters.
        store: the store it runs on.
        task: canonical task id, or None when the tables hold no results at all.
        metric: the task's primary metric (``dice``, ``acc``, ``auc``).
        device, runtime, threads, batch: where latency and energy were measured
            (``device`` is None when the task has no hardware rows for that runtime).
        device_reason: why this device was chosen.
        notes: plain-language remarks for the user (no results, fall-backs taken).
    """

    sql: str
    params: list
    store: Store = field(repr=False)
    task: str | None
    metric: str
    device: str | None
    runtime: str
    threads: int
    batch: int
    device_reason: str = ""
    notes: list[str] = field(default_factory=list)
    limits: dict = field(default_factory=dict)

    @cached_property
    def relation(self) -> duckdb.DuckDBPyRelation:
        return self.store.relation(self.sql, self.params)

    @property
    def columns(self) -> list[str]:
        return list(self.relation.columns)

    def rows(self) -> list[tuple]:
        """All rows as tuples."""
        return self.relation.fetchall()

    def execute(self) -> duckdb.DuckDBPyConnection:
        """The query run once: a cursor to fetch its rows from (``.description`` names the
        columns). Cheaper than :attr:`relation` for rows read once, as the CLI reads them."""
        return self.store.execute(self.sql, self.params)

    def arrow(self):
        """The rows as a pyarrow Table."""
        from medbench.output import to_arrow

        return to_arrow(self.relation)

    def df(self):
        """The rows as a pandas DataFrame (needs pandas)."""
        return self.relation.df()

    def pl(self):
        """The rows as a polars DataFrame (needs polars)."""
        return self.relation.pl()


def run(store: Store, *, task: str | None = None, space: str | None = None,
        device: str | None = None, runtime: str = DEFAULT_RUNTIME,
        threads: int = DEFAULT_THREADS, batch: int = DEFAULT_BATCH,
        max_latency: str | float | None = None, max_energy: str | float | None = None,
        max_params: str | int | None = None, min_dice: float | None = None,
        min_metric: float | None = None, method: str | None = None, sort: str | None = None,
        limit: int = 20, pareto: bool = False) -> QueryResult:
    """Query results, one row per (space, arch_id, task, method) with seeds aggregated.

    Args:
        store: an open :class:`~medbench.store.Store`.
        task: task id or alias; may be omitted when the tables hold results for one task only.
        space: keep one search space; default: every space but those superseded by a newer
            version that has results for the task (:func:`medbench.catalog.superseded`:
            ``unet3d`` once ``unet3d-v2`` has results).
        device: device for latency/energy; default: the device with the most measurements
            of the listed spaces' architectures for this task, runtime, thread count and
            batch size.
        runtime: inference runtime of the latency (``onnxruntime``, ``torch``).
        threads: intra-op threads of the latency (0 = all cores).
        batch: batch size of the latency.
        max_latency: keep rows at or under this latency (``4ms``, ``250us``, ``0.1s``; bare = ms).
        max_energy: keep rows at or under this energy per batch (``5mJ``, ``0.1J``; bare = mJ).
        max_params: keep rows with at most this many parameters (``1M``, ``500k``).
        min_dice: keep rows whose mean validation Dice is at least this (Dice tasks only).
        min_metric: keep rows whose mean validation metric is at least this.
        method: ``standalone``, ``supernet`` or ``all``; default: ``standalone`` where the
            listed spaces hold standalone results for the task (weight-sharing estimates are
            left out, and a note says how many), otherwise every method.
        sort: output column to sort by, optionally ``:asc`` / ``:desc`` (default: the
            validation metric, best first; quality columns sort descending, others ascending).
        limit: at most this many rows (0 = all).
        pareto: keep only rows not dominated in (validation metric, latency) — or
            (validation metric, params) when no latency is available.

    Returns:
        A :class:`QueryResult`.

    Raises:
        UnknownNameError: unknown task, space, device, method or sort column.
        BadValueError: malformed or negative limits, or filters that do not fit the task.
    """
    latency_ms = None if max_latency is None else parse_latency_ms(max_latency)
    energy_mj = None if max_energy is None else parse_energy_mj(max_energy)
    params = None if max_params is None else parse_count(max_params)
    for name, value in (("limit", limit), ("threads", threads)):
        if value < 0:
            raise BadValueError(f"--{name} must not be negative: {value}")
    if batch < 1:
        raise BadValueError(f"--batch must be at least 1: {batch}")
    for name, value in (("min-dice", min_dice), ("min-metric", min_metric)):
        if value is not None and not 0.0 <= value <= 1.0:
            raise BadValueError(f"--{name} must lie in [0, 1]: {value}")
    if method is not None and method not in (*METHODS, "all"):
        raise UnknownNameError("method", method, (*METHODS, "all"))
    if runtime not in RUNTIMES:  # a runtime some device added beyond the usual two
        known = tuple(sorted(set(RUNTIMES) | set(store.known("runtime", "hardware"))))
        if runtime not in known:
            raise UnknownNameError("runtime", runtime, known)

    task = _choose_task(store, task)
    if task is None:
        return QueryResult("SELECT NULL::VARCHAR AS task WHERE false", [], store, None, "dice",
                           None, runtime, threads, batch,
                           notes=["the tables hold no results yet"])
    if space is not None:
        space = store.resolve_space(space)
    metric = task_metric(store, task)
    if min_dice is not None:
        if metric != "dice":
            raise BadValueError(f"--min-dice is for Dice tasks; {task} is ranked by {metric}: "
                                "use --min-metric")
        min_metric = max(min_dice, min_metric) if min_metric is not None else min_dice

    # Views over this task's partition only: a query never opens other tasks' files.
    views = {t: store.view(t, task) for t in ("evaluations", "hardware", "costs")}
    hidden, n_hidden = ((), 0) if space is not None else \
        _superseded_here(store, views["evaluations"], task)
    shown, shown_args = _shown_spaces(space, hidden)
    if device is not None:
        device = store.resolve_device(device)
        reason = "chosen with --device"
    else:
        device = store.fetchone(
            f'SELECT device FROM "{views["hardware"]}" WHERE task = ? AND runtime = ? AND '
            f"threads = ? AND batch = ? AND {shown} GROUP BY device "
            "ORDER BY count(*) DESC, device LIMIT 1",
            [task, runtime, threads, batch, *shown_args])
        device = device[0] if device else None
        reason = ("the device with the most measurements of these architectures for this "
                  "task" if device else "")

    notes = []
    if n_hidden:
        notes.append(f"{n_hidden} architecture(s) of superseded spaces ({', '.join(hidden)}) "
                     "left out: --space names one to see them")
    if method is None:
        method, n_estimates = _default_method(store, views["evaluations"], task,
                                              (shown, shown_args))
        if n_estimates:
            notes.append(f"{n_estimates} weight-sharing estimate(s) (method supernet) left out "
                         "beside the standalone-trained rows: --method supernet or all to see "
                         "them")
    elif method == "all":
        method = None
    if device is None:
        notes.append(f"no latency measured for {task} with {runtime}, {threads} thread(s), "
                     f"batch {batch}")
        if pareto:
            notes.append("Pareto front taken on (val metric, params) for lack of latency")
    sql, args = _compile(views, task, metric, (shown, shown_args), method, device, runtime,
                         threads, batch, latency_ms, energy_mj, params, min_metric, sort, limit,
                         pareto, pareto_on_latency=device is not None)
    return QueryResult(sql, args, store, task, metric, device, runtime, threads, batch,
                       device_reason=reason, notes=notes,
                       limits={"space": space, "hidden": hidden, "method": method,
                               "latency_ms": latency_ms, "energy_mj": energy_mj,
                               "params": params})


def _superseded_here(store: Store, ev_view: str, task: str) -> tuple[tuple[str, ...], int]:
    """The superseded spaces whose newer version has results for ``task``, and how many
    architectures with results they hold (one query)."""
    newer = catalog.superseded()
    if not newer:
        return (), 0
    names = sorted({*newer, *newer.values()})
    counts = dict(store.fetchall(
        f'SELECT space, count(DISTINCT arch_id) FROM "{ev_view}" WHERE task = ? AND space IN '
        f"({', '.join('?' * len(names))}) GROUP BY space", [task, *names]))
    hidden = tuple(old for old, new in newer.items() if new in counts)
    return hidden, sum(counts.get(old, 0) for old in hidden)


def _default_method(store: Store, ev_view: str, task: str, spaces: tuple[str, list]
                    ) -> tuple[str | None, int]:
    """``standalone`` and how many (space, architecture) pairs of other methods that leaves
    out, where the shown spaces hold standalone results for ``task``; else (None, 0)."""
    shown, shown_args = spaces
    counts = dict(store.fetchall(
        f'SELECT method, count(DISTINCT (space, arch_id)) FROM "{ev_view}" WHERE task = ? '
        f"AND {shown} GROUP BY method", [task, *shown_args]))
    if not counts.get("standalone"):
        return None, 0
    return "standalone", sum(n for m, n in counts.items() if m != "standalone")


def _shown_spaces(space: str | None, hidden: tuple[str, ...]) -> tuple[str, list]:
    """The SQL condition (and its values) on ``space`` that a query's rows meet."""
    if space is not None:
        return "space = ?", [space]
    if hidden:
        return f"space NOT IN ({', '.join('?' * len(hidden))})", list(hidden)
    return "true", []


_LIMITS = (("latency_ms", "hardware", "--max-latency", "ms"),
           ("energy_mj", "hardware", "--max-energy", "mJ"),
           ("params", "costs", "--max-params", ""))


def explain_empty(store: Store, res: QueryResult) -> list[str]:
    """Why a query with hardware or cost limits found nothing: for each limit, the lowest
    value that any architecture with results reaches (the fastest measured latency, ...)."""
    out = []
    if res.task is None:
        return out
    shown, shown_args = _shown_spaces(res.limits.get("space"), res.limits.get("hidden", ()))
    ev_where, ev_args = ["task = ?", shown], [res.task, *shown_args]
    if res.limits.get("method") is not None:
        ev_where.append("method = ?")
        ev_args.append(res.limits["method"])
    ev = f'SELECT space, arch_id FROM "{store.view("evaluations", res.task)}" WHERE ' \
         + " AND ".join(ev_where)
    for column, table, option, unit in _LIMITS:
        limit = res.limits.get(column)
        if limit is None or (table == "hardware" and res.device is None):
            continue
        where, args = "task = ?", [res.task]
        if table == "hardware":
            where += " AND device = ? AND runtime = ? AND threads = ? AND batch = ?"
            args += [res.device, res.runtime, res.threads, res.batch]
        row = store.fetchone(
            f'SELECT arch_id, {column} FROM "{store.view(table, res.task)}" WHERE {where} '
            f"AND {column} IS NOT NULL AND (space, arch_id) IN ({ev}) "
            f"ORDER BY {column}, arch_id LIMIT 1", [*args, *ev_args])
        if row is None:
            out.append(f"no architecture with results has {column} for {option}")
        elif row[1] > limit:
            show = (lambda v: f"{v:.4g} {unit}") if unit else (lambda v: f"{int(v):,}")
            where_measured = f" on {res.device}" if table == "hardware" else ""
            out.append(f"{option} {show(limit)}: the lowest of any architecture with results"
                       f"{where_measured} is {show(row[1])} ({row[0]})")
    return out


def _choose_task(store: Store, task: str | None) -> str | None:
    if task is not None:
        try:  # the catalogue resolves without reading any table
            return catalog.resolve_task(task)
        except UnknownNameError:
            return store.resolve_task(task)
    with_results = store.known("task", "evaluations")
    if len(with_results) == 1:
        return with_results[0]
    if not with_results:
        return None
    raise BadValueError("the tables hold results for several tasks (" + ", ".join(with_results)
                        + "); choose one with --task")


def task_metric(store: Store, task: str) -> str:
    # A catalogued task's metric is fixed by the catalogue (validate holds the tasks table to
    # it), which spares a cold query a file read; other tasks name theirs in the tasks table.
    if task in catalog.TASKS:
        return catalog.default_metric(task)
    row = store.fetchone(f'SELECT metric FROM "{store.view("tasks")}" WHERE task = ?', [task])
    return row[0] if row and row[0] else catalog.default_metric(task)


def output_columns(metric: str) -> list[str]:
    """Columns of a query result for a task ranked by ``metric``, in order."""
    return ["space", "arch_id", "task", "method", "n_seeds",
            f"val_{metric}", f"val_{metric}_std", f"test_{metric}", f"test_{metric}_std",
            "params", "macs", *_HW_COLUMNS, "device", "runtime", "threads", "batch"]


def _sort_clause(sort: str | None, metric: str) -> str:
    cols = output_columns(metric)
    if sort is None:
        return f'"val_{metric}" DESC NULLS LAST, arch_id'
    name, _, direction = sort.partition(":")
    name = name.strip()
    if name not in cols:
        raise UnknownNameError("sort column", name, cols)
    direction = direction.strip().lower()
    if direction not in ("", "asc", "desc"):
        raise BadValueError(f"sort direction must be asc or desc: {sort!r}")
    if not direction:
        quality = name.startswith(("val_", "test_")) and not name.endswith("_std")
        direction = "desc" if quality or name == "n_seeds" else "asc"
    return f'"{name}" {direction.upper()} NULLS LAST, arch_id'


def _compile(views, task, metric, spaces, method, device, runtime, threads, batch, latency_ms,
             energy_mj, params, min_metric, sort, limit, pareto, pareto_on_latency):
    """The SQL and its positional parameters; ``spaces`` is :func:`_shown_spaces`'s pair.
    Only schema and view names and placeholders are spliced in."""
    ev_view, hw_view, c_view = (f'"{views[t]}"' for t in ("evaluations", "hardware", "costs"))
    m = metric
    ev_where, args = ["task = ?", spaces[0]], [task, *spaces[1]]
    if method is not None:
        ev_where.append("method = ?")
        args.append(method)
    hw_args = [task, device, runtime, threads, batch]
    where, where_args = [], []
    # Limits on hardware and costs also restrict the evaluations before seeds are
    # aggregated (a semi-join), so a tight budget scans and groups few rows.
    hw_limits, hw_limit_args = [], []
    if latency_ms is not None:
        hw_limits.append("latency_ms <= ?")
        hw_limit_args.append(latency_ms)
    if energy_mj is not None:
        hw_limits.append("energy_mj <= ?")
        hw_limit_args.append(energy_mj)
    if hw_limits:
        ev_where.append(f"(space, arch_id) IN (SELECT space, arch_id FROM {hw_view} WHERE task = ? "
                        "AND device = ? AND runtime = ? AND threads = ? AND batch = ? AND "
                        + " AND ".join(hw_limits) + ")")
        args += [*hw_args, *hw_limit_args]
        where += hw_limits
        where_args += hw_limit_args
    if params is not None:
        ev_where.append(f"(space, arch_id) IN (SELECT space, arch_id FROM {c_view} WHERE task = ? "
                        "AND params <= ?)")
        args += [task, params]
        where.append("params <= ?")
        where_args.append(params)
    if min_metric is not None:
        where.append(f'"val_{m}" >= ?')
        where_args.append(min_metric)
    hw_cols = ", ".join(_HW_COLUMNS)
    base = f"""
        WITH ev AS (
            SELECT space, arch_id, task, method, count(*)::INTEGER AS n_seeds,
                   avg(val_{m}) AS val_{m}, stddev_samp(val_{m}) AS val_{m}_std,
                   avg(test_{m}) AS test_{m}, stddev_samp(test_{m}) AS test_{m}_std
            FROM {ev_view} WHERE {" AND ".join(ev_where)}
            GROUP BY space, arch_id, task, method),
        hw AS (
            SELECT space, arch_id, {hw_cols}
            FROM {hw_view} WHERE task = ? AND device = ? AND runtime = ? AND threads = ?
                                AND batch = ?),
        c AS (SELECT space, arch_id, params, macs FROM {c_view} WHERE task = ?),
        base AS (
            SELECT ev.*, c.params, c.macs, {", ".join("hw." + h for h in _HW_COLUMNS)},
                   ?::VARCHAR AS device, ?::VARCHAR AS runtime, ?::INTEGER AS threads,
                   ?::INTEGER AS batch
            FROM ev LEFT JOIN c USING (space, arch_id) LEFT JOIN hw USING (space, arch_id)
            {"WHERE " + " AND ".join(where) if where else ""})"""
    args = [*args, *hw_args, task, device, runtime, threads, batch, *where_args]
    source = "base"
    if pareto:
        cost = "latency_ms" if pareto_on_latency else "params"
        base += f""",
        front AS (
            SELECT *, max(val_{m}) OVER (ORDER BY {cost}, val_{m} DESC, arch_id
                                         ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
                      AS _best_before
            FROM base WHERE {cost} IS NOT NULL AND val_{m} IS NOT NULL)"""
        source = "(SELECT * EXCLUDE (_best_before) FROM front " \
                 f"WHERE _best_before IS NULL OR val_{m} > _best_before)"
    cols = ", ".join(f'"{c}"' for c in output_columns(m))
    sql = f"{base}\nSELECT {cols} FROM {source} ORDER BY {_sort_clause(sort, m)}"
    if limit:
        sql += f" LIMIT {int(limit)}"
    return sql, args
