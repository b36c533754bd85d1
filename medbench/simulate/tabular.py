"""Dense arrays for simulation: one (space, task, method) of the long tables as numpy arrays.

The long tables are the truth; these arrays are a cache built from them once, so that a
simulated evaluation is an array lookup. Axis order (as in Syne Tune's ``BlackboxTabular``):

* ``val[arch, seed, epoch]``: validation metric after ``epoch + 1`` epochs (NaN if missing);
* ``elapsed[arch, seed, epoch]``: training seconds up to the end of that epoch (results
  without curves, e.g. a supernet zoo: one "epoch", the seconds its evaluation took);
* ``test[arch, seed]``: the final test metric, for reporting incumbents only;
* ``latency_ms[arch]``, ``energy_mj[arch]``, ``params[arch]``: costs (NaN if not measured);
* ``proxies[name][arch]``, ``proxy_seconds[name][arch]``: zero-cost proxy scores and their
  cost, for proxy-driven searchers (NaN if not scored).

A missing seed or epoch stays NaN: nothing is filled in.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from medbench.errors import MedbenchError

__all__ = ["Tabular", "from_store", "OBJECTIVES"]

#: Second objectives of multi-objective search (the first is the validation metric).
OBJECTIVES = ("latency", "energy")


@dataclass
class Tabular:
    """Dense arrays of one benchmark; see the module docstring for the axes."""

    space: str
    task: str
    method: str
    metric: str
    arch_ids: list[str]
    seeds: np.ndarray
    val: np.ndarray
    elapsed: np.ndarray
    test: np.ndarray
    latency_ms: np.ndarray
    energy_mj: np.ndarray
    params: np.ndarray
    configs: list[dict] = field(default_factory=list)
    #: zero-cost proxy scores per architecture (mean over the proxy's seeds; NaN if none)
    proxies: dict[str, np.ndarray] = field(default_factory=dict)
    #: seconds to score one architecture with each proxy (mean; NaN if none)
    proxy_seconds: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.arch_ids)
        if self.val.shape[:1] != (n,) or self.val.shape != self.elapsed.shape:
            raise MedbenchError("tabular: val and elapsed must be (arch, seed, epoch) alike")
        if self.test.shape != self.val.shape[:2]:
            raise MedbenchError("tabular: test must be (arch, seed)")
        if self.objective not in OBJECTIVES:
            raise MedbenchError(f"unknown objective {self.objective!r}; use one of "
                                f"{', '.join(OBJECTIVES)}")

    #: the second objective of multi-objective searches and reports: latency or energy
    objective: str = "latency"

    @property
    def cost(self) -> np.ndarray:
        """Per-architecture cost of the objective (latency_ms or energy_mj)."""
        return self.energy_mj if self.objective == "energy" else self.latency_ms

    @property
    def cost_name(self) -> str:
        return "energy_mj" if self.objective == "energy" else "latency_ms"

    @property
    def cost_label(self) -> str:
        return "energy (mJ)" if self.objective == "energy" else "latency (ms)"

    @property
    def n_archs(self) -> int:
        return len(self.arch_ids)

    @property
    def max_epochs(self) -> int:
        return self.val.shape[2]

    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.val, self.elapsed, self.test, self.latency_ms,
                                      self.energy_mj, self.params))


def _only_space(store, evals: str, task: str, method: str) -> str:
    from medbench.catalog import references, superseded

    have = [s for (s,) in store.fetchall(f'SELECT DISTINCT space FROM "{evals}" WHERE task = ? '
                                         "AND method = ? ORDER BY 1", [task, method])]
    newer, fixed = superseded(), references()
    have = [s for s in have if newer.get(s) not in have and s not in fixed]
    if not have:
        raise MedbenchError(f"no {method} results on {task} to simulate")
    if len(have) > 1:
        raise MedbenchError(f"{task} has {method} results in several spaces "
                            f"({', '.join(have)}): choose one with --space")
    return have[0]


def from_store(store, *, task: str, space: str | None = None, method: str = "standalone",
               device: str | None = None, runtime: str = "onnxruntime",
               threads: int = 1, objective: str = "latency") -> Tabular:
    """Build the arrays of (space, task, method) from an open :class:`~medbench.store.Store`.

    Results whose architectures do not all have learning curves (a supernet zoo, whose only
    curve is the supernet's own training) give one fidelity: the final
    validation metric, costing the row's ``train_seconds`` or, where it has none, the seconds
    of the job that evaluated it divided by the rows that job made (a zoo lookup's cost).

    ``space`` None: the one space with ``method`` results for the task, leaving out a
    superseded space whose successor has some (as ``medbench query`` does) and reference
    networks (:func:`medbench.catalog.references`), which are not spaces to search.

    Raises:
        MedbenchError: if the task has no results for this space and method, or ``space`` is
            None and several spaces have them.
    """
    from medbench.query import task_metric  # the task's primary metric, one rule for all

    task = store.resolve_task(task)
    metric = task_metric(store, task)
    curves = store.view("curves", task)
    evals = store.view("evaluations", task)
    if space is None:
        space = _only_space(store, evals, task, method)
    def archs_of(view: str) -> list[tuple]:
        return store.fetchall(
            f'SELECT DISTINCT r.arch_id, a.config FROM "{view}" r LEFT JOIN '
            f'"{store.view("architectures")}" a USING (space, arch_id) '
            "WHERE r.task = ? AND r.space = ? AND r.method = ? ORDER BY r.arch_id",
            [task, space, method])

    # Curves when they cover every evaluated architecture (standalone training); else one
    # fidelity from the evaluations (a supernet: its curve is the supernet's own training)
    archs, evaluated = archs_of(curves), archs_of(evals)
    col = f"val_{metric}"
    if archs and {a for a, _ in evaluated} <= {a for a, _ in archs}:
        points = store.fetchall(
            f'SELECT arch_id, seed, epoch, "{col}", elapsed_seconds FROM "{curves}" '
            "WHERE task = ? AND space = ? AND method = ?", [task, space, method])
    else:
        # One fidelity, the final validation metric, costing the row's training seconds or
        # else its evaluation job's seconds per row it made.
        archs = evaluated
        if not archs:
            raise MedbenchError(f"no results for {space} on {task} ({method}) to simulate")
        store.views("runs")
        points = store.fetchall(
            f'SELECT e.arch_id, e.seed, 1, e."{col}", coalesce(e.train_seconds, r.seconds / n.n) '
            f'FROM "{evals}" e LEFT JOIN runs r USING (run_id) LEFT JOIN (SELECT run_id, '
            f'count(*) AS n FROM "{evals}" GROUP BY run_id) n USING (run_id) '
            "WHERE e.task = ? AND e.space = ? AND e.method = ?", [task, space, method])
    arch_ids = [a[0] for a in archs]
    index = {a: i for i, a in enumerate(arch_ids)}
    seeds = sorted({p[1] for p in points})
    seed_index = {s: i for i, s in enumerate(seeds)}
    n_epochs = max(p[2] for p in points)
    shape = (len(arch_ids), len(seeds), n_epochs)
    val, elapsed = np.full(shape, np.nan), np.full(shape, np.nan)
    for arch, seed, epoch, v, t in points:
        i, s = index[arch], seed_index[seed]
        val[i, s, epoch - 1] = np.nan if v is None else v
        elapsed[i, s, epoch - 1] = np.nan if t is None else t
    test = np.full(shape[:2], np.nan)
    for arch, seed, v in store.fetchall(
            f'SELECT arch_id, seed, "test_{metric}" FROM "{evals}" WHERE task = ? AND '
            "space = ? AND method = ?", [task, space, method]):
        if arch in index and seed in seed_index and v is not None:
            test[index[arch], seed_index[seed]] = v
    latency, energy, params = (np.full(len(arch_ids), np.nan) for _ in range(3))
    res = store.query(task=task, space=space, method=method, device=device, runtime=runtime,
                      threads=threads, limit=0)
    cols = res.columns
    for row in res.rows():
        r = dict(zip(cols, row))
        i = index.get(r["arch_id"])
        if i is not None:
            for arr, name in ((latency, "latency_ms"), (energy, "energy_mj"),
                              (params, "params")):
                if r[name] is not None:
                    arr[i] = r[name]
    import json

    configs = [json.loads(c) if c else {} for _, c in archs]
    proxies: dict[str, np.ndarray] = {}
    proxy_seconds: dict[str, np.ndarray] = {}
    view = store.view("proxies", task)
    for arch, proxy, score, seconds in store.fetchall(
            f'SELECT arch_id, proxy, avg(score) FILTER (WHERE isfinite(score)), avg(seconds) '
            f'FROM "{view}" WHERE task = ? AND space = ? GROUP BY ALL', [task, space]):
        i = index.get(arch)
        if i is None:
            continue
        for out, v in ((proxies, score), (proxy_seconds, seconds)):
            out.setdefault(proxy, np.full(len(arch_ids), np.nan))[i] = np.nan if v is None else v
    return Tabular(space, task, method, metric, arch_ids, np.array(seeds), val, elapsed, test,
                   latency, energy, params, configs, proxies, proxy_seconds, objective)
