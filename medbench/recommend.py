"""Recommend architectures for a data set from the model zoo (MedNNS's use of the tables).

    medbench recommend --dataset breastmnist [--space mednns] [--max-params 1M]
                       [--max-latency 2ms] [--limit 5]
    medbench recommend --dataset path/to/images/   (a folder of images or a .npz; torch)

Nearest-dataset rule: among the other tasks with results in the space, take the one nearest
to the data set in ``task_distances`` (Fréchet distance of encoder features), and rank its
architectures by their mean validation metric there, within the cost limits. The expected
metric shown is the nearest task's; where the data set itself has results for an
architecture, they are shown beside (that is what the leave-one-out evaluation uses).

:func:`leave_one_out` judges the rule purely from the tables: for every task with results,
recommend from the others and compare the recommended architecture's own test metric on
that task with a random architecture's (the mean), the largest one's (most parameters) and
the best one's. A data set the tables do not hold (a folder or ``.npz``) is placed by an
encoder pass (``builders.task_distances.embed``, torch): its Fréchet distances to the held
sets' feature Gaussians on the shipped encoder.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from medbench.errors import MedbenchError

__all__ = ["Recommendation", "nearest_task", "recommend", "leave_one_out"]


@dataclass
class Recommendation:
    task: str             # the data set asked about
    source: str           # the nearest task the ranking comes from
    distance: float
    method: str           # distance method
    metric: str
    rows: list[dict]      # arch_id, expected (source's val metric), params, latency_ms,
                          # own val/test
    relation: object = None  # the same rows as a DuckDB relation (for output)
    device: str | None = None  # where the latency limit was taken


def _metric(store, task: str) -> str:
    from medbench.query import task_metric as metric_of

    return metric_of(store, task)


def nearest_task(store, task: str, candidates: list[str], method: str | None = None
                 ) -> tuple[str, float, str]:
    """(nearest candidate, its distance, the distance method) from ``task_distances``."""
    store.views("task_distances")
    params: list = [task]
    where = "task_a = ? AND task_b IN (SELECT unnest(?))"
    params.append(candidates)
    if method:
        where += " AND method = ?"
        params.append(method)
    row = store.fetchone(f"""
        SELECT task_b, distance, method FROM task_distances WHERE {where}
        ORDER BY method DESC, distance LIMIT 1""", params)
    if row is None:
        known = [t for (t,) in store.fetchall(
            "SELECT DISTINCT task_b FROM task_distances WHERE task_a = ? AND task_b NOT LIKE "
            "'pooled-%' ORDER BY 1", [task])]
        if known:  # measured, but only against sets without results (e.g. the 3D sets)
            raise MedbenchError(f"no task with results is near {task}: it has distances only "
                                f"to {', '.join(known)}, which have none (results: "
                                f"{', '.join(candidates) or 'none'})")
        raise MedbenchError(f"no distance from {task} to any task with results "
                            f"({', '.join(candidates) or 'none'}); run builders.task_distances")
    return row[0], float(row[1]), row[2]


def _zoo(store, space: str, method: str | None) -> list[str]:
    store.views("evaluations")
    cond = "AND method = ?" if method else ""
    return [t for (t,) in store.fetchall(
        f"SELECT DISTINCT task FROM evaluations WHERE space = ? {cond} ORDER BY 1",
        [space, method] if method else [space])]


def recommend(store, task: str, space: str, *, limit: int = 5,
              max_params: float | None = None, result_method: str | None = None,
              distance_method: str | None = None, exclude_self: bool = True,
              embedding=None, max_latency_ms: float | None = None,
              device: str | None = None, runtime: str = "onnxruntime", threads: int = 1
              ) -> Recommendation:
    """The nearest-dataset recommendation for ``task`` (see the module docstring).

    ``embedding`` (a ``builders.task_distances.Embedding``: method and distances to the
    held tasks) stands for a data set the tables do not hold; ``task`` then only labels it.
    Latency is shown, and ``max_latency_ms`` applied, at batch 1 on ``device`` (the one with
    most measurements when not given) with ``runtime`` and ``threads``: on the data set's
    own input where the tables hold it, else on the nearest set's.
    """
    space = store.resolve_space(space)
    if embedding is None:
        task = store.resolve_task(task)
    zoo = [t for t in _zoo(store, space, result_method) if not (exclude_self and t == task)]
    if not zoo:
        raise MedbenchError(f"no other task has {space} results to recommend from")
    if embedding is None:
        source, distance, method = nearest_task(store, task, zoo, distance_method)
    else:
        near = {t: d for t, d in embedding.distances.items() if t in zoo}
        if not near:
            raise MedbenchError(f"{embedding.method} has features of "
                                f"{', '.join(sorted(embedding.distances)) or 'no task'}, none "
                                f"with {space} results ({', '.join(zoo)})")
        source = min(near, key=lambda t: (near[t], t))
        distance, method = near[source], embedding.method
    metric = _metric(store, source)
    own_metric = metric if embedding is not None else _metric(store, task)
    store.views("costs", "hardware")
    cond = " AND e.method = ?" if result_method else ""
    lim = " AND params <= ?" if max_params is not None else ""
    latency, lat_args = "NULL::DOUBLE AS latency_ms", []
    if device is None:
        row = store.fetchone(
            "SELECT device FROM hardware WHERE space = ? AND task IN (?, ?) AND runtime = ? "
            "AND threads = ? AND batch = 1 GROUP BY device ORDER BY count(*) DESC, device "
            "LIMIT 1", [space, task, source, runtime, threads])
        if row is None and max_latency_ms is not None:
            raise MedbenchError(f"no {space} latency measured for {task} or {source} with "
                                f"{runtime}, {threads} thread(s), batch 1")
        device = row[0] if row else None
    else:
        device = store.resolve_device(device)
    if device is not None:
        # the data set's own measurement where there is one, else the nearest set's
        latency = ("(SELECT arg_min(h.latency_ms, h.task <> ?) FROM hardware h WHERE h.space = ? "
                   "AND h.arch_id = s.arch_id AND h.task IN (?, ?) AND h.device = ? AND "
                   "h.runtime = ? AND h.threads = ? AND h.batch = 1) AS latency_ms")
        lat_args = [task, space, task, source, device, runtime, threads]
    if max_latency_ms is not None:
        lim += " AND latency_ms <= ?"
    params: list = [space, source, *([result_method] if result_method else []),
                    space, task, space, *lat_args,
                    *([max_params] if max_params is not None else []),
                    *([max_latency_ms] if max_latency_ms is not None else []), limit]
    relation = store.relation(f"""
        WITH src AS (
            SELECT e.arch_id, avg(e.val_{metric}) AS expected
            FROM evaluations e WHERE e.space = ? AND e.task = ?{cond} GROUP BY e.arch_id),
        own AS (
            SELECT arch_id, avg(val_{own_metric}) AS own_val, avg(test_{own_metric}) AS own_test
            FROM evaluations WHERE space = ? AND task = ? GROUP BY arch_id),
        cost AS (SELECT arch_id, max(params) AS params FROM costs WHERE space = ?
                 GROUP BY arch_id),
        ranked AS (
            SELECT s.arch_id, s.expected, c.params, {latency}, o.own_val, o.own_test
            FROM src s LEFT JOIN cost c USING (arch_id) LEFT JOIN own o USING (arch_id)
            WHERE s.expected IS NOT NULL)
        SELECT * FROM ranked WHERE true{lim}
        ORDER BY expected DESC, arch_id LIMIT ?""", params)
    rows = relation.fetchall()
    cols = ("arch_id", "expected", "params", "latency_ms", "own_val", "own_test")
    return Recommendation(task, source, distance, method, metric,
                          [dict(zip(cols, r)) for r in rows], relation, device)


def leave_one_out(store, space: str, result_method: str | None = None) -> list[dict]:
    """Per task with results: the recommended architecture's own test metric against a
    random architecture (mean), the largest (most parameters) and the best on that task."""
    out = []
    for task in _zoo(store, space, result_method):
        try:
            rec = recommend(store, task, space, limit=1, result_method=result_method)
        except MedbenchError:
            continue
        metric = _metric(store, task)
        cond = " AND e.method = ?" if result_method else ""
        rows = store.fetchall(f"""
            SELECT e.arch_id, avg(e.test_{metric}), max(c.params)
            FROM evaluations e LEFT JOIN costs c USING (space, arch_id, task)
            WHERE e.space = ? AND e.task = ?{cond} GROUP BY e.arch_id""",
                              [space, task, *([result_method] if result_method else [])])
        tests = {a: t for a, t, _ in rows if t is not None}
        if not rec.rows or not tests:
            continue
        largest = max(rows, key=lambda r: (r[2] or -1))[0]
        out.append({"task": task, "source": rec.source, "metric": metric,
                    "recommended": tests.get(rec.rows[0]["arch_id"]),
                    "random": float(np.mean(list(tests.values()))),
                    "largest": tests.get(largest), "best": max(tests.values()),
                    "n_archs": len(tests)})
    return out
