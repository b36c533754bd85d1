"""How far supernet numbers can be trusted: subnets against their standalone-trained selves.

    medbench report supernet-trust [--out reports/supernet] [--bootstrap 1000]

For every (space, task) with both ``supernet`` and ``standalone`` evaluations of the same
architectures: Kendall τ and Spearman ρ between the supernet's and the standalone mean
validation metric (over seeds), each with a bootstrap 95 % interval over architectures; the
top-10 % overlap; and a scatter plot (PNG). The MED-NAS-Bench poster judges its supernet
this way (Kendall τ against stand-alone training); τ below 0.5 means the supernet should
not be trusted to rank.

Beside it, the ceiling: Kendall τ between standalone seeds of the same architectures (one
seed's ranking against another's, averaged over seed pairs). Standalone training agrees
with itself only this far, so no cheaper estimate can be expected to agree with it more.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medbench.errors import MedbenchError

__all__ = ["Trust", "trust", "write_report"]


@dataclass
class Trust:
    space: str
    task: str
    metric: str
    n_archs: int
    kendall: float
    kendall_ci: tuple[float, float]
    spearman: float
    spearman_ci: tuple[float, float]
    top10_overlap: float
    supernet: np.ndarray
    standalone: np.ndarray
    #: Kendall τ between standalone seeds (mean over seed pairs) and the architectures per
    #: pair (mean); NaN and 0 where no two seeds share 3 architectures
    seed_kendall: float = float("nan")
    seed_archs: float = 0.0


def trust(store, bootstrap: int = 1000, seed: int = 0) -> list[Trust]:
    """One :class:`Trust` per (space, task) with 3+ architectures evaluated both ways."""
    from medbench import catalog
    from medbench.rankstats import bootstrap_ci, kendall, spearman, stream, top_precision

    store.views("evaluations", "tasks")
    out = []
    for space, task in store.fetchall("""
            SELECT DISTINCT space, task FROM evaluations WHERE method = 'supernet'
            ORDER BY ALL"""):
        row = store.fetchone("SELECT metric FROM tasks WHERE task = ?", [task])
        metric = (row[0] if row and row[0] else None) or catalog.default_metric(task)
        pairs = store.fetchall(f"""
            SELECT s.v, t.v FROM
              (SELECT arch_id, avg(val_{metric}) v FROM evaluations WHERE space = ? AND
               task = ? AND method = 'supernet' GROUP BY arch_id) s
            JOIN (SELECT arch_id, avg(val_{metric}) v FROM evaluations WHERE space = ? AND
                  task = ? AND method = 'standalone' GROUP BY arch_id) t USING (arch_id)
            WHERE s.v IS NOT NULL AND t.v IS NOT NULL ORDER BY arch_id""",
                               [space, task, space, task])
        if len(pairs) < 3:
            continue
        x, y = (np.array(c, float) for c in zip(*pairs))
        rng = stream(seed, space, task)
        out.append(Trust(space, task, metric, len(x), kendall(x, y),
                         bootstrap_ci(x, y, kendall, bootstrap, rng), spearman(x, y),
                         bootstrap_ci(x, y, spearman, bootstrap, rng), top_precision(x, y),
                         x, y, *_seed_agreement(store, space, task, metric)))
    return out


def _seed_agreement(store, space: str, task: str, metric: str) -> tuple[float, float]:
    """Mean Kendall τ between pairs of standalone seeds over the architectures that have
    both seeds and a supernet result, and the mean number of those architectures."""
    from medbench.rankstats import kendall

    by_seed: dict[int, dict[str, float]] = {}
    for arch, seed, v in store.fetchall(f"""
            SELECT arch_id, seed, val_{metric} FROM evaluations WHERE space = ? AND task = ?
              AND method = 'standalone' AND val_{metric} IS NOT NULL AND arch_id IN (
                SELECT arch_id FROM evaluations WHERE space = ? AND task = ?
                  AND method = 'supernet')""", [space, task, space, task]):
        by_seed.setdefault(seed, {})[arch] = v
    taus, sizes = [], []
    seeds = sorted(by_seed)
    for i, a in enumerate(seeds):
        for b in seeds[i + 1:]:
            common = sorted(by_seed[a].keys() & by_seed[b].keys())
            if len(common) >= 3:
                taus.append(kendall(np.array([by_seed[a][k] for k in common]),
                                    np.array([by_seed[b][k] for k in common])))
                sizes.append(len(common))
    return (float(np.mean(taus)), float(np.mean(sizes))) if taus else (float("nan"), 0.0)


def _fmt(v: float) -> str:
    return "–" if v != v else f"{v:.2f}"


def table_lines(rows: list[Trust]) -> list[str]:
    out = ["| space | task | archs | Kendall τ [95 % CI] | Spearman ρ [95 % CI] | "
           "top-10 % overlap | standalone seed vs seed τ (archs) |",
           "|---|---|---|---|---|---|---|"]
    for r in rows:
        ceiling = f"{_fmt(r.seed_kendall)} ({r.seed_archs:.0f})" if r.seed_archs else "–"
        out.append(f"| {r.space} | {r.task} | {r.n_archs} | {_fmt(r.kendall)} "
                   f"[{_fmt(r.kendall_ci[0])}, {_fmt(r.kendall_ci[1])}] | {_fmt(r.spearman)} "
                   f"[{_fmt(r.spearman_ci[0])}, {_fmt(r.spearman_ci[1])}] | "
                   f"{_fmt(r.top10_overlap)} | {ceiling} |")
    return out


def write_report(store, out: str | Path, bootstrap: int = 1000) -> Path:
    """Write ``supernet.md`` and one scatter plot per (space, task) under ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = trust(store, bootstrap)
    if not rows:
        raise MedbenchError("no architecture has both supernet and standalone results: "
                            "nothing to report")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    lines = ["# Supernet against standalone training", "",
             "Generated by `medbench report supernet-trust`: rank agreement of the supernet's "
             "subnets with the same architectures trained alone (mean validation metric over "
             "seeds); intervals by bootstrap over architectures. τ < 0.5: do not trust the "
             "supernet's ranking. The last column is the ceiling: how far one standalone seed's "
             "ranking of these architectures agrees with another's (mean over seed pairs).",
             "", *table_lines(rows), ""]
    for r in rows:
        png = f"{r.space}_{r.task.replace('/', '_')}.png"
        fig, ax = plt.subplots(figsize=(4.6, 4.2))
        ax.scatter(r.standalone, r.supernet, s=14, color="#4878a8")
        ax.set(xlabel=f"standalone val {r.metric}", ylabel=f"supernet val {r.metric}",
               title=f"{r.space} on {r.task}: τ {_fmt(r.kendall)}")
        fig.tight_layout()
        fig.savefig(out / png, dpi=90, metadata={"Software": None})
        plt.close(fig)
        lines += [f"![{r.space} {r.task}]({png})", ""]
    md = out / "supernet.md"
    md.write_text("\n".join(lines))
    return md
