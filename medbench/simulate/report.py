"""Compare searchers: repeated simulated runs, trajectories, regret curves, rank statistics.

:func:`compare` runs every algorithm ``repeats`` times on one :class:`Tabular` and returns
the trajectories as one long table; :func:`write_report` turns them into ``trajectories.parquet``,
``regret.png`` / ``regret.svg`` (anytime regret of the validation-chosen incumbent's test
metric, mean and 95 % band over repeats) and ``summary.md`` (final regret, mean rank,
Friedman and pairwise Wilcoxon tests).

Regret at time t = best mean test metric of the table - mean test metric of the incumbent
(the architecture with the best validation result found by t). Before the first result the
regret is undefined and not plotted.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from medbench.errors import BadValueError
from medbench.simulate.searchers import make_searcher
from medbench.simulate.simulator import simulate
from medbench.simulate.tabular import Tabular

__all__ = ["parse_duration", "compare", "regret_curves", "write_report"]

_UNITS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    """Seconds from ``24h``, ``90m``, ``3600s``, ``1.5d`` (a bare number is seconds)."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-z]*)\s*", text.lower())
    if not m or m.group(2) not in {"", *_UNITS}:
        raise BadValueError(f"cannot read the budget {text!r}; use e.g. 24h, 90m, 3600s, 1d")
    return float(m.group(1)) * _UNITS.get(m.group(2), 1)


def compare(table: Tabular, algorithms: list[str], *, workers: int, budget_seconds: float,
            repeats: int, seed: int = 0, seed_mode: str = "random") -> dict[str, np.ndarray]:
    """Run each algorithm ``repeats`` times; returns the trajectories as columns of equal length.

    Run ``r`` of algorithm ``a`` uses generators seeded from ``(seed, a's position, r)``, so
    results reproduce and algorithms see different, fixed streams.
    """
    if repeats < 1:
        raise BadValueError(f"repeats must be at least 1, got {repeats}")
    from medbench.simulate.searchers import SEARCHERS

    for name in algorithms:  # fail before running anything
        if name not in SEARCHERS:
            make_searcher(name, n_archs=1, max_epochs=1, rng=np.random.default_rng(0))
    cols: dict[str, list] = {k: [] for k in ("algorithm", "repeat", "time", "worker", "arch_id",
                                             "epochs", "val", table.cost_name,
                                             "incumbent_arch_id", "incumbent_val",
                                             "incumbent_test")}
    ids = np.array(table.arch_ids, dtype=object)
    for a, name in enumerate(algorithms):
        for r in range(repeats):
            searcher = make_searcher(name, n_archs=table.n_archs, max_epochs=table.max_epochs,
                                     rng=np.random.default_rng([seed, a, r, 0]),
                                     configs=table.configs, latency_ms=table.cost,
                                     proxies=table.proxies,
                                     proxy_seconds=table.proxy_seconds)
            traj = simulate(table, searcher, workers=workers, budget_seconds=budget_seconds,
                            rng=np.random.default_rng([seed, a, r, 1]), seed_mode=seed_mode)
            n = len(traj)
            cols["algorithm"] += [name] * n
            cols["repeat"] += [r] * n
            cols["time"] += traj.time.tolist()
            cols["worker"] += traj.worker.tolist()
            cols["arch_id"] += ids[traj.arch].tolist()
            cols["epochs"] += traj.epochs.tolist()
            cols["val"] += traj.val.tolist()
            cols[table.cost_name] += table.cost[traj.arch].tolist()
            cols["incumbent_arch_id"] += ids[traj.incumbent].tolist()
            cols["incumbent_val"] += traj.incumbent_val.tolist()
            cols["incumbent_test"] += traj.incumbent_test.tolist()
    return {k: np.asarray(v) for k, v in cols.items()}


def regret_curves(table: Tabular, runs: dict[str, np.ndarray], grid: np.ndarray
                  ) -> dict[str, np.ndarray]:
    """Regret on a time grid per algorithm: array (repeats, len(grid)), NaN before any result."""
    test_mean = np.nanmean(table.test, axis=1)
    best = np.nanmax(test_mean)
    out = {}
    for name in dict.fromkeys(runs["algorithm"].tolist()):
        mask = runs["algorithm"] == name
        reps = sorted(set(runs["repeat"][mask].tolist()))
        curves = np.full((len(reps), len(grid)), np.nan)
        for i, r in enumerate(reps):
            m = mask & (runs["repeat"] == r)
            t, inc = runs["time"][m], runs["incumbent_test"][m]
            pos = np.searchsorted(t, grid, side="right") - 1
            ok = pos >= 0
            curves[i, ok] = best - inc[pos[ok]]
        out[name] = curves
    return out


def hypervolume_curves(table: Tabular, runs: dict[str, np.ndarray], grid: np.ndarray
                       ) -> dict[str, np.ndarray]:
    """Hypervolume over time of the (validation metric, cost) points evaluated so far.

    The cost is the table's objective (latency or energy). Objectives are minimised as
    (-val, cost), with reference point (0, 1.1 x the table's largest cost); only
    full-fidelity evaluations with a value and a cost
    count (a result after fewer epochs is not the architecture's result). Returns
    an array (repeats, len(grid)) per algorithm.
    """
    from pymoo.indicators.hv import HV

    ref = np.array([0.0, 1.1 * np.nanmax(table.cost)])
    hv = HV(ref_point=ref)
    out = {}
    for name in dict.fromkeys(runs["algorithm"].tolist()):
        mask = runs["algorithm"] == name
        reps = sorted(set(runs["repeat"][mask].tolist()))
        curves = np.zeros((len(reps), len(grid)))
        for i, r in enumerate(reps):
            m = mask & (runs["repeat"] == r)
            t, v, lat = runs["time"][m], runs["val"][m], runs[table.cost_name][m]
            ok = ~np.isnan(v) & ~np.isnan(lat) & (runs["epochs"][m] == table.max_epochs)
            t, points = t[ok], np.c_[-v[ok], lat[ok]]
            for j, g in enumerate(grid):
                n = np.searchsorted(t, g, side="right")
                curves[i, j] = hv(points[:n]) if n else 0.0
        out[name] = curves
    return out


def _mean_sem(c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard error over repeats (axis 0), NaN where no repeat has a value."""
    import warnings

    n = np.sum(~np.isnan(c), axis=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns before any result
        mean = np.nanmean(c, axis=0)
        sd = np.nanstd(c, axis=0, ddof=1)
    return mean, np.where(n > 1, sd / np.sqrt(np.maximum(n, 1)), 0.0)


def _band_plot(curves: dict[str, np.ndarray], grid: np.ndarray, ylabel: str, title: str,
               stem: Path) -> None:
    """Mean over repeats and a 95 % band per algorithm against simulated hours; PNG and SVG."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for name, c in curves.items():
        mean, sem = _mean_sem(c)
        ax.plot(grid / 3600, mean, label=name)
        ax.fill_between(grid / 3600, mean - 1.96 * sem, mean + 1.96 * sem, alpha=0.2)
    ax.set_xscale("log")
    ax.set_xlabel("simulated wall-clock time (hours)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    for ext in ("png", "svg"):
        fig.savefig(f"{stem}.{ext}", dpi=120)
    plt.close(fig)


def _final(curves: np.ndarray) -> np.ndarray:
    return curves[:, -1]


def _duration(seconds: float) -> str:
    """``24 h``, ``90 min``, ``45 s``: a budget as it was likely given."""
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size and (seconds / size) == round(seconds / size, 2):
            return f"{seconds / size:g} {unit}"
    return f"{seconds:g} s"


def _asha_note(table: Tabular, eta: int = 3) -> str:
    """Why successive halving may never reach the top rung of a small table."""
    from medbench.simulate.searchers import ASHA

    rungs = ASHA(table.n_archs, table.max_epochs, np.random.default_rng(0), eta=eta).rungs
    need = eta ** (len(rungs) - 1)
    if table.n_archs >= need:
        return ""
    return (f"ASHA and successive halving promote the top 1/{eta} of a rung: their top rung "
            f"(rungs {'-'.join(map(str, rungs))} epochs) needs {need} distinct architectures "
            f"and this table has {table.n_archs}.")


def write_report(table: Tabular, runs: dict[str, np.ndarray], out: str | Path, *,
                 workers: int, budget_seconds: float,
                 algorithms: list[str] | None = None) -> Path:
    """Write trajectories.parquet, regret.png/.svg and summary.md under ``out``.
    ``algorithms`` (those compared) lets the summary name any that evaluated nothing."""
    import matplotlib

    matplotlib.use("Agg")
    import pyarrow as pa
    import pyarrow.parquet as pq
    from scipy import stats

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({k: v.tolist() for k, v in runs.items()}),
                   out / "trajectories.parquet", compression="zstd")
    first = np.nanmin(table.elapsed[:, :, -1]) if np.isfinite(table.elapsed).any() else 1.0
    grid = np.geomspace(max(first, 1e-3), budget_seconds, 200)
    curves = regret_curves(table, runs, grid)
    _band_plot(curves, grid, f"regret of test {table.metric}",
               f"{table.space} on {table.task}, {workers} workers", out / "regret")

    if np.isfinite(table.cost).any():
        _multi_objective_plots(table, runs, out, grid, workers)
    names = list(curves)
    finals = np.array([_final(curves[n]) for n in names])  # (algorithms, repeats)
    lines = [f"# Search comparison: {table.space} on {table.task}", "",
             (f"{len(table.arch_ids)} architectures with curves, {table.max_epochs} epochs; "
              if table.max_epochs > 1 else f"{len(table.arch_ids)} architectures, one "
              "fidelity (final results, costing what obtaining each took); ") +
             f"{workers} workers; budget {_duration(budget_seconds)} simulated; "
             f"{finals.shape[1]} repeats per algorithm; metric {table.metric} "
             "(searchers see validation, regret uses test).", "",
             "| algorithm | final regret mean | std | mean rank | evaluations per run |",
             "|---|---|---|---|---|"]
    ranks = stats.rankdata(np.nan_to_num(finals, nan=np.inf), axis=0) if len(names) > 1 else \
        np.ones_like(finals)
    for i, name in enumerate(names):
        evals = np.sum(runs["algorithm"] == name) / finals.shape[1]
        lines.append(f"| {name} | {np.nanmean(finals[i]):.4f} | {np.nanstd(finals[i]):.4f} | "
                     f"{ranks[i].mean():.2f} | {evals:.1f} |")
    idle = [a for a in (algorithms or []) if a not in names]
    if idle:
        lines += ["", f"No evaluation finished within the budget: {', '.join(idle)} (a "
                  "proxy-driven searcher is charged its proxies' scoring time first)."]
    lines.append("")
    if len(names) >= 3 and finals.shape[1] >= 2 and np.allclose(finals, finals[0]):
        lines.append("Friedman test: every algorithm reached the same final regret.")
    elif len(names) >= 3 and finals.shape[1] >= 2:
        f = stats.friedmanchisquare(*np.nan_to_num(finals, nan=1.0))
        lines.append(f"Friedman test over final regrets: statistic {f.statistic:.3f}, "
                     f"p = {f.pvalue:.3g}.")
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            d = finals[i] - finals[j]
            if np.allclose(np.nan_to_num(d), 0):
                lines.append(f"Wilcoxon {names[i]} vs {names[j]}: identical final regrets.")
                continue
            w = stats.wilcoxon(finals[i], finals[j], nan_policy="omit")
            lines.append(f"Wilcoxon signed-rank {names[i]} vs {names[j]}: statistic "
                         f"{w.statistic:.1f}, p = {w.pvalue:.3g}.")
    files = "`trajectories.parquet` (every evaluation), `regret.png`, `regret.svg`"
    if np.isfinite(table.cost).any():
        hv_grid = np.geomspace(grid[0], grid[-1], 50)
        hv = hypervolume_curves(table, runs, hv_grid)
        lines += ["", f"| algorithm | final hypervolume (val metric, {table.objective}) mean "
                  "| std |",
                  "|---|---|---|"]
        for name, c in hv.items():
            lines.append(f"| {name} | {c[:, -1].mean():.4f} | {c[:, -1].std():.4f} |")
        full = {n for n in hv if np.any((runs["algorithm"] == n)
                                        & (runs["epochs"] == table.max_epochs))}
        if set(hv) - full:
            lines += ["", "The hypervolume counts full-fidelity results only "
                      f"({table.max_epochs} epochs); no run of {', '.join(sorted(set(hv) - full))} "
                      "trained an architecture that far, so its hypervolume is 0, while its "
                      "regret is that of its best result at any fidelity. " + _asha_note(table)]
        files += ", `hypervolume.png`/`.svg`, `pareto.png`/`.svg`"
    lines += ["", f"Files: {files}."]
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    return out


def _multi_objective_plots(table: Tabular, runs, out: Path, grid: np.ndarray,
                           workers: int) -> None:
    import matplotlib.pyplot as plt
    from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

    hv_grid = np.geomspace(grid[0], grid[-1], 50)
    _band_plot(hypervolume_curves(table, runs, hv_grid), hv_grid,
               f"hypervolume (val {table.metric}, {table.objective})",
               f"{table.space} on {table.task}, {workers} workers", out / "hypervolume")

    def front(v, lat):
        ok = ~np.isnan(v) & ~np.isnan(lat)
        f = np.c_[-v[ok], lat[ok]]
        if not len(f):
            return f
        f = f[NonDominatedSorting().do(f, only_non_dominated_front=True)]
        return f[np.argsort(f[:, 1])]

    val_mean = np.nanmean(table.val[:, :, -1], axis=1)
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    ax.scatter(table.cost, val_mean, s=8, c="lightgrey", label="all architectures (seed means)")
    f = front(val_mean, table.cost)
    ax.step(f[:, 1], -f[:, 0], where="post", c="black", label="front of seed means")
    for name in dict.fromkeys(runs["algorithm"].tolist()):
        m = (runs["algorithm"] == name) & (runs["repeat"] == 0) & \
            (runs["epochs"] == table.max_epochs)
        f = front(runs["val"][m], runs[table.cost_name][m])
        if len(f):
            ax.step(f[:, 1], -f[:, 0], where="post", label=f"{name} (repeat 0)")
    ax.set_xscale("log")
    ax.set_xlabel(table.cost_label)
    ax.set_ylabel(f"val {table.metric}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    for ext in ("png", "svg"):
        fig.savefig(out / f"pareto.{ext}", dpi=120)
    plt.close(fig)
