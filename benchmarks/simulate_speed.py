"""Speed of simulated search on a synthetic 10,000-architecture x 3-seed x 40-epoch table.

    python benchmarks/simulate_speed.py [--repeats 20]

Reports, side by side in one run: the time of one random search with 4 workers and a 24 h
simulated budget (vectorized path for stateless searchers, and the generic event loop on the
same stream), lookups per second over 2 M evaluations, and the bytes of the arrays. The
table is random numbers made here for timing only, never shipped.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from medbench.simulate import Tabular, simulate
from medbench.simulate.searchers import RandomSearch, RegularizedEvolution


class EventLoopRS(RandomSearch):
    stateless = False


def synthetic(n=10_000, seeds=3, epochs=40) -> Tabular:
    rng = np.random.default_rng(0)
    val = rng.uniform(0, 1, (n, seeds, epochs))
    elapsed = np.cumsum(rng.uniform(5, 20, (n, seeds, epochs)), axis=2)
    configs = [{"a": int(i % 7), "b": int(i % 11), "c": int(i % 13)} for i in range(n)]
    return Tabular("synthetic", "synthetic/task", "standalone", "dice",
                   [str(i) for i in range(n)], np.arange(seeds), val, elapsed,
                   val[:, :, -1].copy(), np.zeros(n), np.zeros(n), np.zeros(n), configs)


def timed(fn, repeats):
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        out.append(time.perf_counter() - t0)
    return statistics.median(out), result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=20)
    args = ap.parse_args()
    t = synthetic()
    day = 24 * 3600
    run = lambda cls, **kw: simulate(  # noqa: E731
        t, cls(n_archs=t.n_archs, max_epochs=t.max_epochs, rng=np.random.default_rng(1),
               configs=t.configs), workers=4, rng=np.random.default_rng(2), **kw)
    print(f"table: {t.n_archs} archs x {t.val.shape[1]} seeds x {t.max_epochs} epochs, "
          f"{t.nbytes() / 2**20:.1f} MiB of arrays")
    for name, cls in (("random search, vectorized", RandomSearch),
                      ("random search, event loop", EventLoopRS),
                      ("regularized evolution", RegularizedEvolution)):
        sec, traj = timed(lambda: run(cls, budget_seconds=day), args.repeats)
        print(f"{name:28s} 24 h, 4 workers: {sec * 1e3:7.2f} ms for {len(traj)} evaluations")
    for name, cls in (("random search, vectorized", RandomSearch),
                      ("random search, event loop", EventLoopRS)):
        sec, traj = timed(lambda: run(cls, budget_seconds=np.inf,
                                      max_evaluations=2_000_000), 3)
        print(f"{name:28s} {len(traj) / sec / 1e6:5.2f} M evaluations/s "
              f"({len(traj)} in {sec:.2f} s)")


if __name__ == "__main__":
    main()
