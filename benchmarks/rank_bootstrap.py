"""Bootstrap intervals of rank correlations: all resamples at once against one by one.

    python benchmarks/rank_bootstrap.py [--resamples 1000] [--repeats 3]

The reports (`medbench report proxies`, `report supernet-trust`, the generated datasheet)
give Spearman and Kendall intervals over 1,000 resamples for every proxy x space x task x
method. For a zoo's 1,000 architectures, a 50-architecture standalone set and a 10-U-Net set,
this times :func:`medbench.rankstats.bootstrap_ci` with the vectorised statistics and with
the same statistics called once per resample through scipy (the earlier path), side by side
on the same draws, and checks that both give the same interval. The scores are random
numbers made here for timing only.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from medbench.rankstats import bootstrap_ci, kendall, spearman


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--resamples", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    for n in (1000, 50, 10):
        x = rng.normal(size=n)
        y = np.round(x + rng.normal(size=n), 2)
        for name, stat in (("spearman", spearman), ("kendall", kendall)):
            one_by_one = lambda a, b, stat=stat: stat(a, b)  # noqa: E731 - no vectorised form
            fast = slow = float("inf")
            for _ in range(args.repeats):  # alternate, so drift hits both alike
                t0 = time.perf_counter()
                a = bootstrap_ci(x, y, stat, args.resamples, np.random.default_rng(1))
                fast = min(fast, time.perf_counter() - t0)
                t0 = time.perf_counter()
                b = bootstrap_ci(x, y, one_by_one, args.resamples, np.random.default_rng(1))
                slow = min(slow, time.perf_counter() - t0)
            assert np.allclose(a, b, rtol=0, atol=1e-12), (a, b)
            print(f"n={n:5d} {name:8s} one by one {slow * 1e3:8.1f} ms, all at once "
                  f"{fast * 1e3:7.1f} ms: {slow / fast:6.1f}x (same interval "
                  f"[{a[0]:.3f}, {a[1]:.3f}])")


if __name__ == "__main__":
    main()
