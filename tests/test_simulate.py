"""The simulator: event queue against a hand-worked schedule, no test leakage, seeding,
searchers on a tiny table whose optimum is known, and arrays built from the tables."""

from __future__ import annotations

import numpy as np
import pytest

import medbench
from medbench.errors import BadValueError, UnknownNameError
from medbench.release import write_manifest, write_rows
from medbench.simulate import Suggestion, Tabular, from_store, make_searcher, simulate


def table(val, elapsed, test=None, configs=None):
    val, elapsed = np.asarray(val, float), np.asarray(elapsed, float)
    n, s, _ = val.shape
    return Tabular("toy", "toy/task", "standalone", "dice", [f"a{i}" for i in range(n)],
                   np.arange(s), val, elapsed,
                   np.asarray(test, float) if test is not None else val[:, :, -1].copy(),
                   np.full(n, np.nan), np.full(n, np.nan), np.full(n, np.nan), configs or [])


class Scripted:
    """Asks a fixed sequence; records what it was told."""

    def __init__(self, plan):
        self.plan, self.told = list(plan), []

    def ask(self):
        return Suggestion(*self.plan.pop(0))

    def tell(self, suggestion, value):
        self.told.append((suggestion.arch, value))


def test_two_workers_follow_the_hand_worked_schedule():
    # arch: training seconds after epoch 1 and 2; val after epoch 1 and 2
    t = table(val=[[[0.1, 0.2]], [[0.3, 0.6]], [[0.2, 0.5]]],
              elapsed=[[[1, 2]], [[3, 6]], [[2, 5]]])
    s = Scripted([(0, 2), (1, 2), (2, 2), (0, 2), (1, 2), (2, 2)])
    traj = simulate(t, s, workers=2, budget_seconds=10, rng=np.random.default_rng(0))
    # w0: a0 0->2, a2 2->7, a1 7->13 (past budget); w1: a1 0->6, a0 6->8, a2 8->13
    assert traj.time.tolist() == [2, 6, 7, 8]
    assert traj.worker.tolist() == [0, 1, 0, 1]
    assert traj.arch.tolist() == [0, 1, 2, 0]
    assert traj.val.tolist() == [0.2, 0.6, 0.5, 0.2]
    assert traj.incumbent.tolist() == [0, 1, 1, 1]
    assert s.told == [(0, 0.2), (1, 0.6), (2, 0.5), (0, 0.2)]


def test_ties_finish_first_come_first_served():
    t = table(val=[[[0.5]], [[0.7]]], elapsed=[[[4]], [[4]]])
    traj = simulate(t, Scripted([(1, 1), (0, 1), (0, 1), (1, 1)]), workers=2,
                    budget_seconds=4, rng=np.random.default_rng(0))
    assert traj.worker.tolist() == [0, 1] and traj.arch.tolist() == [1, 0]


def test_lower_fidelity_costs_less_and_reads_its_epoch():
    t = table(val=[[[0.1, 0.9]]], elapsed=[[[1, 10]]])
    traj = simulate(t, Scripted([(0, 1)] * 3 + [(0, 2)] * 3), workers=1, budget_seconds=3,
                    rng=np.random.default_rng(0))
    assert traj.time.tolist() == [1, 2, 3] and traj.val.tolist() == [0.1] * 3


def test_seed_modes():
    t = table(val=[[[0.2], [0.4]]], elapsed=[[[1], [3]]])
    mean = simulate(t, Scripted([(0, 1)] * 2), workers=1, budget_seconds=2,
                    rng=np.random.default_rng(0), seed_mode="mean")
    assert mean.time.tolist() == [2] and mean.val.tolist() == pytest.approx([0.3])
    rand = simulate(t, Scripted([(0, 1)] * 50), workers=1, budget_seconds=1e9,
                    rng=np.random.default_rng(0), max_evaluations=40)
    assert set(np.round(rand.val, 6)) == {0.2, 0.4}


def toy(n=40, seeds=3, epochs=4, rng=0):
    """A table whose best architecture is known: quality rises with config 'x'."""
    r = np.random.default_rng(rng)
    quality = np.linspace(0.3, 0.9, n)
    val = quality[:, None, None] * (1 - 0.5 ** np.arange(1, epochs + 1))[None, None, :] \
        + r.normal(0, 0.005, (n, seeds, epochs))
    elapsed = np.cumsum(np.full((n, seeds, epochs), 10.0), axis=2)
    configs = [{"x": i % 8, "y": i // 8} for i in range(n)]
    return table(val, elapsed, configs=configs)


@pytest.mark.parametrize("name", ["rs", "re", "ls", "sh", "hb"])
def test_searchers_find_the_known_optimum(name):
    t = toy()
    s = make_searcher(name, n_archs=t.n_archs, max_epochs=t.max_epochs,
                      rng=np.random.default_rng(1), configs=t.configs)
    traj = simulate(t, s, workers=4, budget_seconds=40 * 400, rng=np.random.default_rng(2))
    assert traj.incumbent[-1] == t.n_archs - 1
    assert traj.incumbent_test[-1] == pytest.approx(np.mean(t.test[-1]))


@pytest.mark.parametrize("name", ["rs", "re", "ls", "asha", "sh", "hb", "nsga2", "moead",
                                  "mstf", "re-warm"])
def test_searchers_never_read_test_metrics(name):
    runs = []
    for test in (None, np.random.default_rng(9).uniform(size=(40, 3))):
        t = with_proxies(toy())
        t.latency_ms = np.linspace(1, 40, 40)
        if test is not None:
            t.test = test
        s = make_searcher(name, n_archs=t.n_archs, max_epochs=t.max_epochs,
                          rng=np.random.default_rng(5), configs=t.configs,
                          latency_ms=t.latency_ms, proxies=t.proxies,
                          proxy_seconds=t.proxy_seconds)
        runs.append(simulate(t, s, workers=3, budget_seconds=2000,
                             rng=np.random.default_rng(6)))
    assert runs[0].arch.tolist() == runs[1].arch.tolist()
    assert runs[0].incumbent_test.tolist() != runs[1].incumbent_test.tolist()


def test_seeded_runs_reproduce():
    def run():
        t = toy()
        s = make_searcher("re", n_archs=t.n_archs, max_epochs=t.max_epochs,
                          rng=np.random.default_rng(3), configs=t.configs)
        return simulate(t, s, workers=4, budget_seconds=5000, rng=np.random.default_rng(4))

    a, b = run(), run()
    for field in ("time", "worker", "arch", "val", "incumbent"):
        assert getattr(a, field).tolist() == getattr(b, field).tolist()


def test_bad_input():
    t = toy()
    s = make_searcher("rs", n_archs=t.n_archs, max_epochs=t.max_epochs,
                      rng=np.random.default_rng(0))
    with pytest.raises(BadValueError):
        simulate(t, s, workers=0, budget_seconds=10, rng=np.random.default_rng(0))
    with pytest.raises(BadValueError):
        simulate(t, s, workers=1, budget_seconds=-1, rng=np.random.default_rng(0))
    with pytest.raises(BadValueError):
        simulate(t, Scripted([(99, 1)]), workers=1, budget_seconds=10,
                 rng=np.random.default_rng(0))
    with pytest.raises(UnknownNameError, match="rs"):
        make_searcher("bohb", n_archs=3, max_epochs=1, rng=np.random.default_rng(0))


def test_arrays_from_the_tables(release):
    from conftest import ARCHS, RUN, TASK

    curves = [{"space": "unet3d", "arch_id": arch, "task": TASK, "method": "standalone",
               "seed": seed, "epoch": e, "val_dice": v * e / 3, "elapsed_seconds": 5.0 * e,
               "run_id": RUN}
              for arch, (vals, *_rest) in ARCHS.items() for seed, v in enumerate(vals)
              for e in (1, 2, 3)]
    # the supernet's own training curve (its largest subnet) does not make the zoo a curve
    curves.append({"space": "unet3d", "arch_id": "c-large", "task": TASK, "method": "supernet",
                   "seed": 0, "epoch": 1, "val_dice": 0.5, "elapsed_seconds": 60.0,
                   "run_id": RUN})
    write_rows(release, "curves", curves, "curves")
    write_manifest(release)
    with medbench.open(release) as store:
        t = from_store(store, task="hippocampus", space="unet3d")
    assert t.arch_ids == sorted(ARCHS) and t.val.shape == (5, 2, 3) and t.metric == "dice"
    b = t.arch_ids.index("b-mid")
    assert t.val[b, :, 2].tolist() == pytest.approx([0.80, 0.82])
    assert t.elapsed[b, 0].tolist() == [5.0, 10.0, 15.0]
    e = t.arch_ids.index("e-oneseed")
    assert np.isnan(t.val[e, 1]).all() and np.isnan(t.test[e, 1])  # missing stays missing
    assert t.test[b].tolist() == pytest.approx([0.79, 0.80])
    assert t.latency_ms[b] == pytest.approx(3.5) and t.params[b] == 200_000
    assert t.configs[b] == {"name": "b-mid"}
    with medbench.open(release) as store:
        # a supernet zoo: one fidelity, costing the job's seconds per row it made
        z = from_store(store, task="hippocampus", space="unet3d", method="supernet")
        store.views("evaluations")
        n_rows = store.fetchone("SELECT count(*) FROM evaluations WHERE run_id = ?", [RUN])[0]
        with pytest.raises(medbench.MedbenchError, match="no results for mednns"):
            from_store(store, task="hippocampus", space="mednns")
    assert z.arch_ids == ["b-mid"] and z.val.shape == (1, 1, 1) and z.max_epochs == 1
    assert z.val[0, 0, 0] == pytest.approx(0.75) and z.test[0, 0] == pytest.approx(0.74)
    assert z.elapsed[0, 0, 0] == pytest.approx(1.0 / n_rows)  # the run took 1 s


def test_the_default_space_is_the_one_with_results_newest_version_first(release):
    from conftest import RUN, TASK

    def evals(space, method, archs):
        write_rows(release, "evaluations", [
            {"space": space, "arch_id": a, "task": TASK, "method": method, "seed": 0,
             "epochs": 2, "val_dice": 0.7, "test_dice": 0.7, "run_id": RUN} for a in archs],
            f"{space}-{method}")
        write_manifest(release)

    evals("unet3d-v2", "supernet", ["v2-a", "v2-b"])
    with medbench.open(release) as store:
        # unet3d-v2 supersedes unet3d's supernet rows; unet3d alone has standalone ones
        assert from_store(store, task="hippocampus", method="supernet").space == "unet3d-v2"
        assert from_store(store, task="hippocampus").space == "unet3d"
    # a reference network (the DynUNet) is not a space to search: the default passes it by
    evals("dynunet", "supernet", ["d"])
    evals("dynunet", "standalone", ["d"])
    with medbench.open(release) as store:
        assert from_store(store, task="hippocampus", method="supernet").space == "unet3d-v2"
        assert from_store(store, task="hippocampus").space == "unet3d"
        assert from_store(store, task="hippocampus", space="dynunet").n_archs == 1
    evals("mednns", "supernet", ["m"])
    with medbench.open(release) as store:
        with pytest.raises(medbench.MedbenchError, match=r"several spaces \(mednns, unet3d-v2"):
            from_store(store, task="hippocampus", method="supernet")


def with_curves(release):
    from conftest import ARCHS, RUN, TASK

    curves = [{"space": "unet3d", "arch_id": arch, "task": TASK, "method": "standalone",
               "seed": seed, "epoch": e, "val_dice": v * e / 3, "elapsed_seconds": 600.0 * e,
               "run_id": RUN}
              for arch, (vals, *_rest) in ARCHS.items() for seed, v in enumerate(vals)
              for e in (1, 2, 3)]
    write_rows(release, "curves", curves, "curves")
    write_manifest(release)
    return release


def test_simulate_command_writes_the_report(cli, release, tmp_path):
    out = tmp_path / "report"
    r = cli(with_curves(release), "simulate", "--task", "hippocampus", "--algorithms", "rs,re",
            "--workers", "2", "--budget", "3h", "--repeats", "4", "--out", str(out))
    assert r.code == 0, r.err
    assert {p.name for p in out.iterdir()} == {"trajectories.parquet", "regret.png",
                                               "regret.svg", "summary.md", "hypervolume.png",
                                               "hypervolume.svg", "pareto.png", "pareto.svg"}
    assert "final hypervolume" in r.out
    import pyarrow.parquet as pq

    traj = pq.read_table(out / "trajectories.parquet").to_pydict()
    assert set(traj["algorithm"]) == {"rs", "re"} and set(traj["repeat"]) == {0, 1, 2, 3}
    assert max(traj["time"]) <= 3 * 3600
    assert "| rs |" in r.out and "Wilcoxon" in r.out
    again = cli(release, "simulate", "--task", "hippocampus", "--algorithms", "rs,re",
                "--workers", "2", "--budget", "3h", "--repeats", "4", "--out",
                str(tmp_path / "again"))
    assert again.code == 0
    assert (tmp_path / "again" / "summary.md").read_text() == (out / "summary.md").read_text()


def test_regret_is_zero_once_the_best_is_found():
    from medbench.simulate.report import compare, regret_curves

    t = toy()
    runs = compare(t, ["rs"], workers=4, budget_seconds=40 * 400, repeats=3)
    curves = regret_curves(t, runs, np.array([1.0, 40 * 400]))["rs"]
    assert np.isnan(curves[:, 0]).all()  # nothing finished after 1 s
    assert curves[:, 1] == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("args, message", [
    (("--algorithms", "rs,bohb"), "unknown algorithm 'bohb'"),
    (("--budget", "3 fortnights"), "cannot read the budget"),
    (("--workers", "0"), "--workers must lie in [1, 10,000]"),
    (("--space", "mednns"), "no results for mednns"),
])
def test_simulate_bad_input_is_one_line(cli, release, tmp_path, args, message):
    from conftest import one_line_error

    r = cli(with_curves(release), "simulate", "--task", "hippocampus", "--repeats", "1",
            "--out", str(tmp_path / "r"), *args)
    assert one_line_error(r) and message in r.err, r.err


def test_resumed_training_costs_only_the_extra_epochs():
    t = table(val=[[[0.1, 0.5, 0.9]]], elapsed=[[[2, 5, 9]]])
    traj = simulate(t, Scripted([(0, 1), (0, 3, 1), (0, 3)] + [(0, 1)] * 3), workers=1,
                    budget_seconds=100, rng=np.random.default_rng(0), max_evaluations=3)
    assert traj.time.tolist() == [2, 9, 18]  # 2, then 9 - 2 = 7 more, then 9 from scratch
    with pytest.raises(BadValueError):
        simulate(t, Scripted([(0, 2, 2)]), workers=1, budget_seconds=10,
                 rng=np.random.default_rng(0))


def test_asha_promotes_the_top_third_and_resumes():
    from medbench.simulate.searchers import ASHA

    t = toy(n=40, epochs=9)
    s = ASHA(n_archs=t.n_archs, max_epochs=9, rng=np.random.default_rng(0), eta=3)
    assert s.rungs == [1, 3, 9]
    traj = simulate(t, s, workers=2, budget_seconds=40 * 900, rng=np.random.default_rng(1))
    assert set(traj.epochs.tolist()) == {1, 3, 9}
    n1, n3 = np.sum(traj.epochs == 1), np.sum(traj.epochs == 3)
    assert n3 <= n1 // 3 + 1  # only the top third of a rung is promoted
    # every promotion went to an architecture seen at the rung below
    low = set(traj.arch[traj.epochs == 1].tolist())
    assert set(traj.arch[traj.epochs == 3].tolist()) <= low
    assert traj.incumbent[-1] == t.n_archs - 1


@pytest.mark.parametrize("seed_mode", ["random", "mean"])
@pytest.mark.parametrize("workers", [1, 3, 8])
def test_fast_path_gives_the_event_loops_trajectory(seed_mode, workers):
    """Random search runs on the vectorized path; the generic loop must agree exactly."""
    from medbench.simulate.searchers import RandomSearch

    class Generic(RandomSearch):
        stateless = False  # forces the event loop over the same stream of asks

    t = toy(n=40, seeds=3, epochs=4)
    t.val[5, 1, :] = np.nan  # a missing seed stays missing in both
    runs = []
    for cls in (RandomSearch, Generic):
        s = cls(n_archs=t.n_archs, max_epochs=t.max_epochs, rng=np.random.default_rng(11))
        runs.append(simulate(t, s, workers=workers, budget_seconds=5_000,
                             rng=np.random.default_rng(12), seed_mode=seed_mode))
    fast, slow = runs
    assert len(fast) == len(slow) > 100
    for field in ("time", "worker", "arch", "epochs", "incumbent"):
        assert getattr(fast, field).tolist() == getattr(slow, field).tolist(), field
    for field in ("val", "incumbent_val", "incumbent_test"):
        np.testing.assert_array_equal(getattr(fast, field), getattr(slow, field))


def test_idle_workers_wait_for_the_generation():
    class Generational:
        """Hands out two suggestions per generation; asks for more only when both are in."""

        def __init__(self):
            self.out, self.pending, self.gen = [], 0, 0

        def ask(self):
            if not self.out:
                if self.pending:
                    return None
                self.out, self.pending = [Suggestion(self.gen % 2, 1)] * 2, 2
                self.gen += 1
            return self.out.pop()

        def tell(self, s, v):
            self.pending -= 1

    t = table(val=[[[0.5]], [[0.7]]], elapsed=[[[1]], [[1]]])
    traj = simulate(t, Generational(), workers=3, budget_seconds=3,
                    rng=np.random.default_rng(0))
    # never more than a generation (2) at once; a worker left idle is woken by the result
    # that completes a generation (worker 2 takes the second suggestion of generation 2)
    assert traj.time.tolist() == [1, 1, 2, 2, 3, 3]
    assert traj.worker.tolist()[:4] == [0, 1, 1, 2]


def test_nsga2_finds_the_metric_latency_front():
    from medbench.simulate.searchers import NSGA2Search

    t = toy(n=40)
    t.latency_ms = np.linspace(1, 40, 40)[::-1].copy()  # the best are also the fastest...
    t.latency_ms[[10, 20]] = np.nan  # ...and unmeasured architectures are never chosen
    s = NSGA2Search(n_archs=40, max_epochs=t.max_epochs, rng=np.random.default_rng(0),
                    configs=t.configs, latency_ms=t.latency_ms, pop_size=8)
    traj = simulate(t, s, workers=4, budget_seconds=40 * 200, rng=np.random.default_rng(1))
    assert len(traj) >= 150
    assert not {10, 20} & set(traj.arch.tolist())
    assert traj.incumbent[-1] == 39
    with pytest.raises(BadValueError, match="latency"):
        NSGA2Search(n_archs=3, max_epochs=1, rng=np.random.default_rng(0))


def test_hypervolume_grows_to_the_true_fronts():
    from pymoo.indicators.hv import HV

    from medbench.simulate.report import compare, hypervolume_curves

    t = toy(n=40)
    t.latency_ms = np.linspace(1, 40, 40)
    runs = compare(t, ["rs"], workers=4, budget_seconds=40 * 2000, repeats=2)
    hv = hypervolume_curves(t, runs, np.array([1.0, 40 * 2000]))["rs"]
    assert (hv[:, 0] == 0).all()
    val = np.nanmean(t.val[:, :, -1], axis=1)
    # with every architecture seen, the hypervolume is that of all (seed-)results' front
    assert (hv[:, 1] > 0).all()
    upper = HV(ref_point=np.array([0.0, 44.0]))(np.c_[-np.nanmax(t.val[:, :, -1], 1),
                                                      t.latency_ms])
    assert (hv[:, 1] <= upper + 1e-9).all()
    assert hv[:, 1] == pytest.approx(HV(ref_point=np.array([0.0, 44.0]))(
        np.c_[-val, t.latency_ms]), rel=0.05)


def test_hyperband_brackets_and_synchronous_rungs():
    from medbench.simulate.searchers import Hyperband

    t = toy(n=40, epochs=9)
    s = Hyperband(n_archs=t.n_archs, max_epochs=9, rng=np.random.default_rng(0), eta=3)
    assert s.s_max == 2
    # bracket 2: 9 archs at 1 epoch, 3 at 3, 1 at 9; bracket 1: 5 at 3, 1 at 9 (rounded
    # down from 5/3); bracket 0: 3 at 9
    assert s._plan(2) == [(9, 1), (3, 3), (1, 9)]
    assert s._plan(1) == [(5, 3), (1, 9)]
    assert s._plan(0) == [(3, 9)]
    traj = simulate(t, s, workers=4, budget_seconds=10**6, rng=np.random.default_rng(1))
    first = traj.epochs[:9 + 3 + 1 + 5 + 1 + 3].tolist()
    assert first == [1] * 9 + [3] * 3 + [9] + [3] * 5 + [9] + [9] * 3
    # synchronous: a rung's results all arrive before any result of the next rung
    ends = traj.time[:9 + 3 + 1]
    assert ends[:9].max() <= ends[9:12].min() - 20  # rung 2 starts after rung 1 ends
    # promotions resume from the rung below and pick its best
    rung1 = traj.arch[:9]
    best3 = sorted(rung1.tolist(), key=lambda a: -t.val[a].mean())[:3]
    assert sorted(traj.arch[9:12].tolist()) == sorted(best3)


@pytest.mark.parametrize("name", ["nsga2", "moead"])
def test_pymoo_searchers_find_the_metric_latency_front(name):
    t = toy(n=40)
    t.latency_ms = np.linspace(1, 40, 40)[::-1].copy()
    t.latency_ms[[10, 20]] = np.nan
    s = make_searcher(name, n_archs=40, max_epochs=t.max_epochs, rng=np.random.default_rng(0),
                      configs=t.configs, latency_ms=t.latency_ms)
    traj = simulate(t, s, workers=4, budget_seconds=40 * 200, rng=np.random.default_rng(1))
    assert len(traj) >= 100
    assert not {10, 20} & set(traj.arch.tolist())
    assert traj.incumbent[-1] == 39


def test_moead_runs_one_offspring_at_a_time():
    from medbench.simulate.searchers import MOEADSearch

    t = toy(n=40)
    t.latency_ms = np.linspace(1, 40, 40)
    s = MOEADSearch(n_archs=40, max_epochs=t.max_epochs, rng=np.random.default_rng(0),
                    configs=t.configs, latency_ms=t.latency_ms, pop_size=6)
    traj = simulate(t, s, workers=3, budget_seconds=40 * 30, rng=np.random.default_rng(1))
    # the first population (6) runs 3 at a time; afterwards one offspring at a time
    times = traj.time.tolist()
    assert times[:6] == [40, 40, 40, 80, 80, 80]
    assert times[6:10] == [120, 160, 200, 240]


def with_proxies(t, seconds=0.5):
    """Proxies that know the toy's quality order (jacov, synflow) and a constant flops."""
    rank = np.arange(t.n_archs, dtype=float)
    t.proxies = {"jacov": rank.copy(), "synflow": rank * 2.0, "flops": np.full(t.n_archs, 7.0)}
    t.proxy_seconds = {p: np.full(t.n_archs, seconds) for p in t.proxies}
    return t


def test_mstf_search_trains_the_proxy_front_after_paying_for_the_proxies():
    t = with_proxies(toy(n=40))
    s = make_searcher("mstf", n_archs=40, max_epochs=t.max_epochs, rng=np.random.default_rng(0),
                      configs=t.configs, proxies=t.proxies, proxy_seconds=t.proxy_seconds)
    # f1 = -jacov - flops and f2 = -synflow + flops agree here: one best, the best arch
    assert s.picks == [39]
    assert s.setup_seconds == pytest.approx(3 * 0.5 * s.n_scored) and s.n_scored >= 10
    traj = simulate(t, s, workers=2, budget_seconds=10_000, rng=np.random.default_rng(1))
    assert traj.arch[0] == 39 and traj.time[0] == pytest.approx(s.setup_seconds + 40)
    assert traj.incumbent[0] == 39
    with pytest.raises(BadValueError, match="needs jacov proxy scores"):
        make_searcher("mstf", n_archs=40, max_epochs=4, rng=np.random.default_rng(0),
                      configs=t.configs, proxies={"synflow": t.proxies["synflow"]})


def test_proxy_warm_start_evolution_starts_from_the_proxy_best():
    t = with_proxies(toy(n=40))
    t.proxies["synflow"][3] = np.nan  # an unscored architecture is never picked by the proxy
    s = make_searcher("re-warm", n_archs=40, max_epochs=t.max_epochs,
                      rng=np.random.default_rng(0), configs=t.configs, proxies=t.proxies,
                      proxy_seconds=t.proxy_seconds)
    assert s.warm == list(range(39, 19, -1))  # the 20 best by synflow, best first
    assert s.setup_seconds == pytest.approx(39 * 0.5)
    traj = simulate(t, s, workers=4, budget_seconds=3000, rng=np.random.default_rng(1))
    assert traj.time[0] == pytest.approx(39 * 0.5 + 40)
    assert traj.incumbent[0] == 39 or traj.incumbent[3] == 39
    assert len(traj) > 20  # then it evolves


def test_proxies_reach_the_arrays_from_the_tables(release):
    from conftest import RUN, TASK

    with_curves(release)
    write_rows(release, "proxies", [
        {"space": "unet3d", "arch_id": "c-large", "task": TASK, "proxy": "synflow", "seed": s,
         "score": 10.0 + s, "seconds": 1.0 + s, "run_id": RUN} for s in (0, 1)] + [
        {"space": "unet3d", "arch_id": "a-small", "task": TASK, "proxy": "synflow", "seed": 0,
         "score": float("nan"), "seconds": 2.0, "run_id": RUN}], "p")
    write_manifest(release)
    with medbench.open(release) as store:
        t = from_store(store, task="hippocampus", space="unet3d")
    i, j = t.arch_ids.index("c-large"), t.arch_ids.index("a-small")
    assert t.proxies["synflow"][i] == pytest.approx(10.5)
    assert t.proxy_seconds["synflow"][i] == pytest.approx(1.5)
    assert np.isnan(t.proxies["synflow"][j])  # a failed score stays missing
    assert t.proxy_seconds["synflow"][j] == pytest.approx(2.0)


def test_simulate_on_metric_and_energy(cli, release, tmp_path):
    import pyarrow.parquet as pq

    out = tmp_path / "energy"
    r = cli(with_curves(release), "simulate", "--task", "hippocampus", "--algorithms",
            "nsga2,moead", "--workers", "2", "--budget", "3h", "--repeats", "2",
            "--objective", "energy", "--out", str(out))
    assert r.code == 0, r.err
    assert "final hypervolume (val metric, energy)" in r.out
    traj = pq.read_table(out / "trajectories.parquet").to_pydict()
    from conftest import ARCHS

    energy = {a: v[4] for a, v in ARCHS.items()}
    assert all(energy[a] == e for a, e in zip(traj["arch_id"], traj["energy_mj"]))
    from conftest import one_line_error

    bad = cli(release, "simulate", "--task", "hippocampus", "--objective", "power",
              "--out", str(tmp_path / "x"))
    assert one_line_error(bad) and "latency, energy" in bad.err


def test_nested_configs_compare_choice_by_choice():
    from medbench.simulate.searchers import config_features

    f = config_features([{"w": [1, 2], "e": [[0.25, 0.2], [0.35]], "s": {"d": [0, 1]}},
                         {"w": [1, 2], "e": [[0.25, 0.35], [0.35]], "s": {"d": [0, 1]}},
                         {"w": [1, 3], "e": [[0.25, 0.2], [0.35]], "s": {"d": [1, 1]}}])
    assert f.shape == (3, 7)
    assert np.sum(f[0] != f[1]) == 1 and np.sum(f[0] != f[2]) == 2  # 0.2 vs 0.35 differ


def test_a_searcher_that_evaluates_nothing_is_named(tmp_path):
    from medbench.simulate.report import compare, write_report

    t = with_proxies(toy(n=40), seconds=100.0)  # re-warm pays 40 x 100 s before training
    runs = compare(t, ["rs", "re-warm"], workers=1, budget_seconds=1000, repeats=2)
    summary = write_report(t, runs, tmp_path, workers=1, budget_seconds=1000,
                           algorithms=["rs", "re-warm"]) / "summary.md"
    text = summary.read_text()
    assert "| rs |" in text and "| re-warm |" not in text
    assert "No evaluation finished within the budget: re-warm" in text
    assert "budget 1000 s simulated" in text


_HASH_SEED_RUN = """
import numpy as np
from medbench.simulate import Tabular, make_searcher, simulate
n, ops = 48, ["max_pool_3x3", "avg_pool_3x3", "sep_conv_3x3", "skip_connect"]
r = np.random.default_rng(0)
val = np.linspace(0.3, 0.9, n)[:, None, None] + r.normal(0, 0.01, (n, 2, 3))
elapsed = np.cumsum(np.full((n, 2, 3), 10.0), axis=2)
configs = [{"normal": [ops[i % 4], ops[(i // 4) % 4]], "reduce": [f"{ops[i % 3]}@{i % 5}"]}
           for i in range(n)]
t = Tabular("mstf", "toy/task", "standalone", "acc", [f"a{i}" for i in range(n)], np.arange(2),
            val, elapsed, val[:, :, -1].copy(), np.linspace(1, 9, n), np.full(n, np.nan),
            np.full(n, np.nan), configs)
for name in ("re", "ls", "nsga2"):
    s = make_searcher(name, n_archs=n, max_epochs=3, rng=np.random.default_rng(3),
                      configs=configs, latency_ms=t.latency_ms)
    print(name, simulate(t, s, workers=2, budget_seconds=1500,
                         rng=np.random.default_rng(4)).arch.tolist())
"""


def test_string_choices_give_the_same_search_whatever_the_hash_seed():
    """Searches over string choices (mstf's operations) read features made from the
    choices: they must not depend on Python's per-process string hashing."""
    import os
    import subprocess
    import sys

    outs = []
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        outs.append(subprocess.run([sys.executable, "-c", _HASH_SEED_RUN], env=env,
                                   capture_output=True, text=True, check=True).stdout)
    assert outs[0].count("\n") == 3 and outs[0] == outs[1]


def test_the_report_explains_a_zero_hypervolume_from_a_top_rung_never_reached(tmp_path):
    """On a table of 11 architectures, ASHA (eta 3, rungs 1-3-9-27-40) cannot fill its top
    rung, so it has no full-fidelity result and a hypervolume of 0: the summary says why."""
    from medbench.simulate.report import compare, write_report

    t = toy(n=11, epochs=40)
    t.latency_ms = np.linspace(1, 11, 11)
    runs = compare(t, ["rs", "asha"], workers=2, budget_seconds=20000, repeats=2)
    assert not np.any((runs["algorithm"] == "asha") & (runs["epochs"] == 40))
    text = (write_report(t, runs, tmp_path, workers=2, budget_seconds=20000,
                         algorithms=["rs", "asha"]) / "summary.md").read_text()
    assert "| asha | 0.0000 |" in text
    assert "no run of asha trained" in text and "needs 81 distinct architectures" in text
    assert "this table has 11" in text
