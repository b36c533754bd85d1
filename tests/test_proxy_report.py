"""medbench report proxies on a tiny synthetic release: proxies with known correlations."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import ARCHS, RUN, TASK, one_line_error

import medbench
from medbench.proxy_report import correlations, mstf_objectives
from medbench.release import write_manifest, write_rows

VAL = {a: float(np.mean(v[0])) for a, v in ARCHS.items()}  # mean val dice per arch


def add_proxies(root):
    """'oracle' equals the metric, 'inverse' reverses it, 'noisy' swaps two archs per seed;
    jacov, synflow and flops for the MSTF objectives."""
    rows = []
    archs = sorted(VAL, key=VAL.get)  # worst to best
    for seed in (0, 1, 2):
        for rank, arch in enumerate(archs):
            noisy = rank if rank > 1 else (1 - rank if seed == 1 else rank)
            for proxy, score in (("oracle", VAL[arch]), ("inverse", -VAL[arch]),
                                 ("noisy", float(noisy)), ("jacov", float(rank)),
                                 ("synflow", 10.0 * rank), ("flops", 5.0)):
                rows.append({"space": "unet3d", "arch_id": arch, "task": TASK, "proxy": proxy,
                             "seed": seed, "score": score, "seconds": 0.5, "run_id": RUN})
    write_rows(root, "proxies", rows, "proxies")
    write_manifest(root)


def by_proxy(rows):
    return {r.proxy: r for r in rows}


def test_known_correlations(release):
    add_proxies(release)
    with medbench.open(release) as store:
        rows = by_proxy(correlations(store, bootstrap=200))
    n = len(ARCHS)
    assert rows["oracle"].n_archs == n
    assert rows["oracle"].spearman == pytest.approx(1.0)
    assert rows["oracle"].kendall == pytest.approx(1.0)
    assert rows["inverse"].spearman == pytest.approx(-1.0)
    lo, hi = rows["oracle"].spearman_ci
    assert lo == pytest.approx(1.0) and hi == pytest.approx(1.0)  # a perfect rank always
    # top 10 % of 5 archs is one architecture: the oracle finds it, the inverse does not
    assert rows["oracle"].top10_precision == 1.0 and rows["inverse"].top10_precision == 0.0
    # stable across seeds, except 'noisy' whose seed 1 swaps the two worst
    assert rows["oracle"].seed_stability == pytest.approx(1.0)
    assert rows["noisy"].seed_stability < 1.0
    assert rows["oracle"].seconds == pytest.approx(0.5)
    # MSTF: f1 = -jacov - flops (flops constant -> 0), f2 = -synflow + flops, negated here
    assert rows["mstf_f1"].spearman == pytest.approx(1.0)
    assert rows["mstf_f2"].spearman == pytest.approx(1.0)


def test_an_interval_does_not_move_when_other_proxies_are_added(release):
    """Each comparison draws its resamples from its own stream: scoring one more proxy (whose
    name sorts first) leaves every other proxy's bootstrap interval as it was."""
    add_proxies(release)
    order = ["b-mid", "a-small", "e-oneseed", "d-bad", "c-large"]  # a wide interval
    write_rows(release, "proxies", [
        {"space": "unet3d", "arch_id": a, "task": TASK, "proxy": "shuffled", "seed": 0,
         "score": float(i), "seconds": 0.5, "run_id": RUN} for i, a in enumerate(order)],
        "shuffled")
    write_manifest(release)
    with medbench.open(release) as store:
        before = by_proxy(correlations(store, bootstrap=200))
    lo, hi = before["shuffled"].kendall_ci
    assert lo < hi  # a nondegenerate interval, so a shifted stream would show
    write_rows(release, "proxies", [
        {"space": "unet3d", "arch_id": a, "task": TASK, "proxy": "aa-first", "seed": 0,
         "score": float(len(a)), "seconds": 0.5, "run_id": RUN} for a in ARCHS], "first")
    write_manifest(release)
    with medbench.open(release) as store:
        after = by_proxy(correlations(store, bootstrap=200))
    assert "aa-first" in after
    for proxy, row in before.items():
        np.testing.assert_array_equal(after[proxy].spearman_ci, row.spearman_ci, proxy)
        np.testing.assert_array_equal(after[proxy].kendall_ci, row.kendall_ci, proxy)


@pytest.mark.parametrize("n", [4, 12, 60])
def test_bootstrap_scores_all_resamples_as_scipy_scores_each(n):
    """The vectorised Spearman and Kendall resamples give scipy's value for every resample
    (ties and constant resamples included), so the intervals equal the one-by-one loop's."""
    from medbench.rankstats import bootstrap_ci, kendall, spearman

    rng = np.random.default_rng(n)
    x = np.round(rng.normal(size=n), 1)
    y = np.round(x + rng.normal(size=n), 0)  # many ties
    for stat in (spearman, kendall):
        one_by_one = lambda a, b, stat=stat: stat(a, b)  # noqa: E731 - no vectorised form
        fast = bootstrap_ci(x, y, stat, 300, np.random.default_rng(1))
        slow = bootstrap_ci(x, y, one_by_one, 300, np.random.default_rng(1))
        assert fast == pytest.approx(slow, abs=1e-12) and fast[0] <= fast[1]
        idx = np.random.default_rng(2).integers(n, size=(50, n))
        many = stat.resampled(x, y, idx)
        each = np.array([stat(x[i], y[i]) for i in idx])
        assert np.array_equal(np.isnan(many), np.isnan(each))
        assert many[~np.isnan(many)] == pytest.approx(each[~np.isnan(each)], abs=1e-12)
    assert all(np.isnan(bootstrap_ci([1.0, 1.0, 1.0], [1.0, 2.0, 3.0], spearman, 50,
                                     np.random.default_rng(0))))


def test_each_method_is_judged_on_its_own_metric(release):
    """Supernet-inherited accuracies are a second group, never mixed with standalone ones."""
    add_proxies(release)
    ranked = sorted(VAL, key=VAL.get)
    write_rows(release, "evaluations", [  # the supernet ranks the architectures in reverse
        {"space": "unet3d", "arch_id": a, "task": TASK, "method": "supernet", "seed": 1,
         "epochs": 5, "val_dice": 0.9 - 0.1 * i, "test_dice": 0.5, "run_id": RUN}
        for i, a in enumerate(ranked)], "supernet")
    write_manifest(release)
    with medbench.open(release) as store:
        rows = correlations(store, bootstrap=0)
    oracle = {r.method: r for r in rows if r.proxy == "oracle"}
    assert set(oracle) == {"standalone", "supernet"}
    assert oracle["standalone"].spearman == pytest.approx(1.0)
    assert oracle["supernet"].spearman == pytest.approx(-1.0)
    assert oracle["supernet"].n_archs == len(VAL)


def test_mstf_objectives_normalise():
    f1, f2 = mstf_objectives({"jacov": np.array([0.0, 5.0, 10.0]),
                              "synflow": np.array([1.0, 2.0, 3.0]),
                              "flops": np.array([100.0, 300.0, 200.0])})
    np.testing.assert_allclose(f1, [-0.0, -1.5, -1.5])
    np.testing.assert_allclose(f2, [0.0, 0.5, -0.5])
    assert mstf_objectives({"jacov": np.ones(3)}) is None


def test_report_command(cli, release, tmp_path):
    add_proxies(release)
    out = tmp_path / "rep"
    r = cli(release, "report", "proxies", "--out", str(out), "--bootstrap", "50")
    assert r.code == 0, r.err
    assert "| unet3d | msd/hippocampus | standalone | oracle | 5 | 1.00" in r.out
    assert (out / "unet3d.png").read_bytes()[:4] == b"\x89PNG"


def test_report_without_proxies_is_one_line(cli, release, tmp_path):
    r = cli(release, "report", "proxies", "--out", str(tmp_path / "o"))
    assert one_line_error(r) and "nothing to report" in r.err
    for report in ("proxies", "supernet-trust"):
        r = cli(release, "report", report, "--out", str(tmp_path / "o"), "--bootstrap", "-1")
        assert one_line_error(r) and "--bootstrap must be 0 or more" in r.err


def test_the_datasheet_quotes_the_proxy_table(release):
    from medbench.datasheet import generate

    with medbench.open(release) as store:
        assert "Zero-cost proxies against trained results" not in generate(store)
    add_proxies(release)
    with medbench.open(release) as store:
        section = generate(store)
    assert "### Zero-cost proxies against trained results" in section
    assert "| unet3d | msd/hippocampus | standalone | oracle | 5 | 1.00 [1.00, 1.00]" in section
