"""Simulated asynchronous search: N workers, a simulated clock, lookups instead of training.

A searcher proposes an architecture and a fidelity (epochs); the simulator looks the
validation metric up in a :class:`~medbench.simulate.tabular.Tabular`, advances the worker's
clock by the recorded training time, and tells the searcher the result when that worker
finishes. Workers run asynchronously: an event heap keyed ``(finish time, counter)`` decides
who finishes next (ties first come, first served), and a free worker asks at once.

Searchers see validation metrics only. Test metrics are read by the simulator for the
incumbent (the best validation result so far) and written to the trajectory for reporting.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from medbench.errors import BadValueError
from medbench.simulate.tabular import Tabular

__all__ = ["Suggestion", "Searcher", "Trajectory", "simulate", "SEED_MODES"]

SEED_MODES = ("random", "mean")


@dataclass(frozen=True)
class Suggestion:
    """Train ``arch`` (an index of the table) for ``epochs`` epochs.

    With ``resume_from`` > 0 the training continues from a checkpoint at that epoch, so it
    costs only the time between the two epochs.
    """

    arch: int
    epochs: int
    resume_from: int = 0


class Searcher(Protocol):
    """What the simulator needs of a searcher."""

    def ask(self) -> Suggestion | None:
        """The next architecture and fidelity to evaluate, or None to leave the worker idle
        until the next result arrives (a generational algorithm waiting for its generation)."""

    def tell(self, suggestion: Suggestion, value: float) -> None:
        """The validation metric of a finished evaluation (NaN if the table lacks it)."""

    # Optional: ``setup_seconds``, simulated seconds of work before the first training
    # (zero-cost proxy scoring); every worker starts after it.


@dataclass
class Trajectory:
    """Every finished evaluation in order of simulated time (arrays of equal length).

    ``incumbent`` is the arch index with the best validation metric so far (at any
    fidelity) and ``incumbent_test`` its mean test metric over seeds.
    """

    time: np.ndarray
    worker: np.ndarray
    arch: np.ndarray
    epochs: np.ndarray
    val: np.ndarray
    incumbent: np.ndarray
    incumbent_val: np.ndarray
    incumbent_test: np.ndarray

    def __len__(self) -> int:
        return len(self.time)


#: More simulated workers than this is no search a table can answer (each holds state).
MAX_WORKERS = 10_000


def simulate(table: Tabular, searcher: Searcher, *, workers: int, budget_seconds: float,
             rng: np.random.Generator, seed_mode: str = "random",
             max_evaluations: int | None = None) -> Trajectory:
    """Run ``searcher`` on ``table`` with ``workers`` asynchronous workers.

    Args:
        table: the dense arrays.
        searcher: any object with ``ask()`` and ``tell(suggestion, value)``.
        workers: parallel workers (at least 1).
        budget_seconds: simulated wall-clock budget; evaluations finishing later are dropped.
        rng: draws the seed whose curve an evaluation reads (``seed_mode="random"``).
        seed_mode: ``random`` (one seed per evaluation) or ``mean`` (mean over seeds).
        max_evaluations: stop after this many finished evaluations.

    Returns:
        The :class:`Trajectory`.

    Raises:
        BadValueError: for no workers, a negative budget, an unknown seed mode, or a
            suggestion outside the table.
    """
    if not 1 <= workers <= MAX_WORKERS:
        raise BadValueError(f"workers must lie in [1, {MAX_WORKERS:,}], got {workers}")
    if budget_seconds < 0:
        raise BadValueError(f"budget must not be negative, got {budget_seconds}")
    if seed_mode not in SEED_MODES:
        raise BadValueError(f"seed mode {seed_mode!r}; choose from {SEED_MODES}")
    mean_val = np.nanmean(table.val, axis=1) if seed_mode == "mean" else None
    mean_elapsed = np.nanmean(table.elapsed, axis=1) if seed_mode == "mean" else None
    test_mean = _nanmean_rows(table.test)
    n_seeds = table.val.shape[1]
    seeds = _Stream(rng, n_seeds)
    if getattr(searcher, "stateless", False):
        return _simulate_stateless(table, searcher, workers, budget_seconds, seeds,
                                   mean_val, mean_elapsed, test_mean, max_evaluations)
    heap: list[tuple[float, int, int, Suggestion, float]] = []
    counter = 0

    idle: list[int] = []

    def start(worker: int, now: float) -> None:
        nonlocal counter
        s = searcher.ask()
        if s is None:
            idle.append(worker)
            return
        if not (0 <= s.arch < table.n_archs and 1 <= s.epochs <= table.max_epochs
                and 0 <= s.resume_from < s.epochs):
            raise BadValueError(f"suggestion {s} is outside the table "
                                f"({table.n_archs} archs, {table.max_epochs} epochs)")
        if mean_val is not None:
            value, elapsed = mean_val[s.arch, s.epochs - 1], mean_elapsed[s.arch]
        else:
            seed = seeds.next()
            value, elapsed = table.val[s.arch, seed, s.epochs - 1], table.elapsed[s.arch, seed]
        cost = elapsed[s.epochs - 1] - (elapsed[s.resume_from - 1] if s.resume_from else 0.0)
        cost = 0.0 if np.isnan(cost) else float(cost)
        heapq.heappush(heap, (now + cost, counter, worker, s, float(value)))
        counter += 1

    # Work a searcher does before any training (e.g. scoring architectures with zero-cost
    # proxies) delays every worker's first start.
    setup = float(getattr(searcher, "setup_seconds", 0.0))
    for w in range(workers):
        start(w, setup)
    rows: list[tuple] = []
    best_val, best_arch = -np.inf, -1
    limit = max_evaluations if max_evaluations is not None else np.inf
    while heap and len(rows) < limit:
        finish, _, worker, s, value = heapq.heappop(heap)
        if finish > budget_seconds:
            break
        searcher.tell(s, value)
        if not np.isnan(value) and value > best_val:
            best_val, best_arch = value, s.arch
        rows.append((finish, worker, s.arch, s.epochs, value, best_arch, best_val,
                     test_mean[best_arch] if best_arch >= 0 else np.nan))
        start(worker, finish)
        waiting, idle[:] = idle[:], []
        for w in waiting:  # a result may have unblocked workers left idle
            start(w, finish)
    cols = list(zip(*rows)) if rows else [[] for _ in range(8)]
    dtypes = (float, int, int, int, float, int, float, float)
    return Trajectory(*(np.asarray(c, dtype=d) for c, d in zip(cols, dtypes)))


class _Stream:
    """Seeds for evaluations, drawn in blocks; both simulation paths read the same stream."""

    def __init__(self, rng: np.random.Generator, n: int, block: int = 4096):
        self.rng, self.n, self.block = rng, n, block
        self.buffer = np.empty(0, dtype=np.int64)

    def take(self, k: int) -> np.ndarray:
        while len(self.buffer) < k:
            self.buffer = np.concatenate([self.buffer,
                                          self.rng.integers(self.n, size=self.block)])
        out, self.buffer = self.buffer[:k], self.buffer[k:]
        return out

    def next(self) -> int:
        return int(self.take(1)[0])


def _simulate_stateless(table, searcher, workers, budget, seeds, mean_val, mean_elapsed,
                        test_mean, max_evaluations) -> Trajectory:
    """The same schedule as the event loop, for searchers whose asks ignore results:
    suggestions, values and costs are looked up in blocks with numpy, and only the
    (finish time, job, worker) heap runs in Python."""
    epochs = searcher.max_epochs
    limit = max_evaluations if max_evaluations is not None else np.iinfo(np.int64).max
    archs, values, costs = [], [], []
    n = 0

    def more(k: int) -> None:
        nonlocal n
        a = searcher.ask_batch(k)
        if mean_val is not None:
            v, c = mean_val[a, epochs - 1], mean_elapsed[a, epochs - 1]
        else:
            s = seeds.take(k)
            v, c = table.val[a, s, epochs - 1], table.elapsed[a, s, epochs - 1]
        archs.append(a)
        values.append(v)
        costs.extend(np.nan_to_num(c, nan=0.0).tolist())
        n += k

    more(max(workers, 1024))
    heap = [(costs[j], j, j) for j in range(workers)]
    heapq.heapify(heap)
    done_job, done_time, done_worker = [], [], []
    nxt = workers
    pop, push = heapq.heappop, heapq.heappush
    while heap and len(done_job) < limit:
        finish, job, worker = pop(heap)
        if finish > budget:
            break
        done_job.append(job)
        done_time.append(finish)
        done_worker.append(worker)
        if nxt >= n:
            more(max(1024, n))
        push(heap, (finish + costs[nxt], nxt, worker))
        nxt += 1
    jobs = np.asarray(done_job, dtype=np.int64)
    arch = np.concatenate(archs)[jobs]
    val = np.concatenate(values)[jobs].astype(float)
    key = np.where(np.isnan(val), -np.inf, val)
    best = np.maximum.accumulate(key) if len(key) else key
    # the incumbent changes where a strictly better value arrives (first one kept on ties)
    improved = np.concatenate([[True], best[1:] > best[:-1]]) if len(key) else key.astype(bool)
    improved &= np.isfinite(key)
    idx = np.maximum.accumulate(np.where(improved, np.arange(len(key)), -1)) if len(key) \
        else np.zeros(0, dtype=np.int64)
    incumbent = np.where(idx >= 0, arch[np.maximum(idx, 0)], -1)
    inc_val = np.where(idx >= 0, best, -np.inf)
    inc_test = np.where(idx >= 0, test_mean[np.maximum(incumbent, 0)], np.nan)
    return Trajectory(np.asarray(done_time, dtype=float), np.asarray(done_worker, dtype=int),
                      arch.astype(int), np.full(len(jobs), epochs, dtype=int), val,
                      incumbent.astype(int), inc_val, inc_test)


def _nanmean_rows(a: np.ndarray) -> np.ndarray:
    counts = np.sum(~np.isnan(a), axis=1)
    sums = np.nansum(a, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
