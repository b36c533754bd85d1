"""medbench's simulator against Syne Tune's on the same table and the same search, in one run.

    pip install syne-tune pandas huggingface_hub fastparquet   # Syne Tune 0.16, benchmark only
    HF_HUB_OFFLINE=1 python benchmarks/syne_tune_ratio.py [--repeats 5] [--archs 10000]

The table is the synthetic 10,000-architecture x 3-seed x 40-epoch one of
``simulate_speed.py`` (random numbers made for timing, never shipped). It is handed to Syne
Tune through medbench's own export (``medbench.simulate.export.to_syne_tune``), so both
simulators look up the same numbers. The search: random search at full fidelity (40 epochs),
4 asynchronous workers, 24 h of simulated wall-clock. Syne Tune runs it with
``UserBlackboxBackend`` and ``SimulatorCallback`` (no sleeping); medbench with
:func:`medbench.simulate.simulate`. Times are medians over ``--repeats`` alternating runs;
the evaluation counts show both did the same amount of simulated work.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from simulate_speed import synthetic  # noqa: E402

from medbench.simulate import simulate  # noqa: E402
from medbench.simulate.export import to_syne_tune  # noqa: E402
from medbench.simulate.searchers import RandomSearch  # noqa: E402

DAY = 24 * 3600


def run_syne_tune(blackbox, seed: int, workdir: str) -> int:
    """One Syne Tune simulation; returns the number of finished trials."""
    from syne_tune import StoppingCriterion, Tuner
    from syne_tune.backend.simulator_backend.simulator_callback import SimulatorCallback
    from syne_tune.blackbox_repository import UserBlackboxBackend
    from syne_tune.optimizer.baselines import RandomSearch as SyneRandomSearch

    config_space = blackbox.configuration_space_with_max_resource_attr("epochs")
    backend = UserBlackboxBackend(blackbox=blackbox, elapsed_time_attr="elapsed_time",
                                  max_resource_attr="epochs", seed=seed)
    scheduler = SyneRandomSearch(config_space, metrics=["val_dice"], do_minimize=False,
                                 random_seed=seed)
    tuner = Tuner(trial_backend=backend, scheduler=scheduler, n_workers=4, sleep_time=0,
                  stop_criterion=StoppingCriterion(max_wallclock_time=DAY),
                  results_update_interval=DAY, print_update_interval=DAY,
                  callbacks=[SimulatorCallback()], tuner_name=f"medbench-ratio-{seed}",
                  save_tuner=False, suffix_tuner_name=False, start_jobs_without_delay=True)
    tuner.run()
    return len(tuner.tuning_status.trial_rows) if hasattr(tuner, "tuning_status") else -1


def run_medbench(table, seed: int) -> int:
    searcher = RandomSearch(n_archs=table.n_archs, max_epochs=table.max_epochs,
                            rng=np.random.default_rng(seed))
    traj = simulate(table, searcher, workers=4, budget_seconds=DAY,
                    rng=np.random.default_rng(seed + 1))
    return len(traj)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--archs", type=int, default=10_000)
    args = ap.parse_args()
    logging.disable(logging.WARNING)
    table = synthetic(n=args.archs)
    t0 = time.perf_counter()
    blackbox = to_syne_tune(table)
    export_s = time.perf_counter() - t0
    syne, ours, n_syne, n_ours = [], [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        import os

        os.environ.setdefault("SYNETUNE_FOLDER", tmp)
        for r in range(args.repeats):
            t0 = time.perf_counter()
            n_syne.append(run_syne_tune(blackbox, r, tmp))
            syne.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            n_ours.append(run_medbench(table, r))
            ours.append(time.perf_counter() - t0)
    s, m = statistics.median(syne), statistics.median(ours)
    print(f"table: {table.n_archs} archs x {table.val.shape[1]} seeds x {table.max_epochs} "
          f"epochs; export to a Syne Tune blackbox: {export_s * 1e3:.0f} ms")
    print(f"random search, 4 workers, 24 h simulated, median of {args.repeats}:")
    print(f"  Syne Tune {s * 1e3:9.1f} ms  ({statistics.median(n_syne)} trials)")
    print(f"  medbench  {m * 1e3:9.3f} ms  ({statistics.median(n_ours)} evaluations)")
    print(f"  ratio: medbench is {s / m:,.0f}x faster")


if __name__ == "__main__":
    main()
