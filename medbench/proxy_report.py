"""How well zero-cost proxies predict trained quality, per space, task and method.

    medbench report proxies [--out reports/proxies] [--bootstrap 1000]

For every (space, task, method) with proxy scores and trained results (method: standalone
training, or accuracy inherited from a supernet), and every proxy: Spearman ρ and Kendall τ
between the proxy (mean over its seeds) and the mean validation metric over architectures,
each with a bootstrap 95 % interval (architectures resampled); the top-10 % precision (the
share of the proxy's top 10 % that is in the metric's top 10 %, at least one architecture);
and the proxy's own seed-to-seed stability (Spearman between its scores of
two seeds, averaged over seed pairs). The MSTF-NAS two-objective combination (f1 = -jacov -
flops, f2 = -synflow + flops, each proxy min-max normalised over architectures) enters as
``mstf_f1`` and ``mstf_f2``, negated so that larger is better like every other row.
Suite-Zero's published correlations are not copied in: the report names the paper for
context only.

Writes ``proxies.md`` and a heat map per space (PNG); :func:`correlations` gives the rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medbench.errors import MedbenchError

__all__ = ["ProxyCorrelation", "correlations", "write_report", "mstf_objectives"]


@dataclass
class ProxyCorrelation:
    space: str
    task: str
    method: str  # how the metric was obtained: standalone or supernet
    proxy: str
    n_archs: int
    spearman: float
    spearman_ci: tuple[float, float]
    kendall: float
    kendall_ci: tuple[float, float]
    top10_precision: float
    seed_stability: float | None
    seconds: float  # mean seconds per architecture and seed


def mstf_objectives(scores: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray] | None:
    """MSTF-NAS's objectives (to minimise) from jacov, synflow and flops, or None if absent.

    Each proxy is min-max normalised over the architectures given; NaN stays NaN.
    """
    if not {"jacov", "synflow", "flops"} <= set(scores):
        return None

    def norm(x):
        x = np.asarray(x, float)
        lo, hi = np.nanmin(x), np.nanmax(x)
        return np.zeros_like(x) if hi == lo else (x - lo) / (hi - lo)

    j, s, f = norm(scores["jacov"]), norm(scores["synflow"]), norm(scores["flops"])
    return -j - f, -s + f


def correlations(store, bootstrap: int = 1000, seed: int = 0) -> list[ProxyCorrelation]:
    """Every proxy's correlation with the trained metric, per space, task and method (3+
    architectures)."""
    from medbench import catalog
    from medbench.rankstats import bootstrap_ci, kendall, spearman, stream, top_precision

    store.views("proxies", "evaluations", "tasks")
    groups = store.fetchall("""
        SELECT DISTINCT p.space, p.task, e.method FROM (SELECT DISTINCT space, task
        FROM proxies) p JOIN evaluations e ON e.space = p.space AND e.task = p.task
        ORDER BY ALL""")
    out, scores = [], {}
    for space, task, method in groups:
        row = store.fetchone("SELECT metric FROM tasks WHERE task = ?", [task])
        metric = (row[0] if row and row[0] else None) or catalog.default_metric(task)
        quality = dict(store.fetchall(
            f"SELECT arch_id, avg(val_{metric}) FROM evaluations WHERE space = ? AND task = ? "
            f"AND method = ? AND val_{metric} IS NOT NULL GROUP BY arch_id",
            [space, task, method]))
        if (space, task) not in scores:  # read once, judged against every method
            scores[space, task] = _scores(store, space, task)
        per, secs, means = scores[space, task]
        means = dict(means)  # the MSTF objectives below depend on the method's archs
        common = sorted(set(quality).intersection(*[set(d) for d in means.values()])
                        if means else ())
        if {"jacov", "synflow", "flops"} <= set(means) and common:
            f1, f2 = mstf_objectives({p: np.array([means[p][a] for a in common])
                                      for p in ("jacov", "synflow", "flops")})
            means["mstf_f1"] = dict(zip(common, (-f1).tolist()))
            means["mstf_f2"] = dict(zip(common, (-f2).tolist()))
        for proxy in sorted(means):
            archs = [a for a in sorted(means[proxy]) if a in quality]
            if len(archs) < 3:
                continue
            x = np.array([means[proxy][a] for a in archs])
            y = np.array([quality[a] for a in archs])
            rng = stream(seed, space, task, method, proxy)
            out.append(ProxyCorrelation(
                space, task, method, proxy, len(archs), spearman(x, y),
                bootstrap_ci(x, y, spearman, bootstrap, rng), kendall(x, y),
                bootstrap_ci(x, y, kendall, bootstrap, rng), top_precision(x, y),
                _seed_stability(per.get(proxy, {}), archs, spearman),
                float(np.mean(secs[proxy])) if secs.get(proxy) else float("nan")))
    return out


def _scores(store, space: str, task: str) -> tuple[dict, dict, dict]:
    """A (space, task)'s finite proxy scores per proxy, arch and seed; seconds per proxy;
    and each proxy's mean over seeds per arch."""
    per: dict[str, dict[str, dict[int, float]]] = {}
    secs: dict[str, list[float]] = {}
    for proxy, arch, s, score, seconds in store.fetchall("""
            SELECT proxy, arch_id, seed, score, seconds FROM proxies
            WHERE space = ? AND task = ? ORDER BY ALL""", [space, task]):
        if score is not None and np.isfinite(score):
            per.setdefault(proxy, {}).setdefault(arch, {})[s] = score
        if seconds is not None:
            secs.setdefault(proxy, []).append(seconds)
    means = {p: {a: float(np.mean(list(v.values()))) for a, v in d.items()}
             for p, d in per.items()}
    return per, secs, means


def _seed_stability(scores: dict[str, dict[int, float]], archs: list[str], spearman):
    seeds = sorted({s for a in archs for s in scores.get(a, {})})
    vals = []
    for i, a in enumerate(seeds):
        for b in seeds[i + 1:]:
            both = [x for x in archs if a in scores.get(x, {}) and b in scores.get(x, {})]
            if len(both) >= 3:
                v = spearman([scores[x][a] for x in both], [scores[x][b] for x in both])
                if v == v:
                    vals.append(v)
    return float(np.mean(vals)) if vals else None


def _fmt(x, d: int = 2) -> str:
    return "–" if x is None or x != x else f"{x:.{d}f}"


def table_lines(rows: list[ProxyCorrelation]) -> list[str]:
    """The rows as a Markdown table (the datasheet quotes it)."""
    out = ["| space | task | method | proxy | archs | Spearman ρ [95 % CI] | "
           "Kendall τ [95 % CI] | top-10 % precision | seed stability | s/arch |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: (r.space, r.task, r.method, -abs(r.spearman)
                                         if r.spearman == r.spearman else 0)):
        out.append(f"| {r.space} | {r.task} | {r.method} | {r.proxy} | {r.n_archs} | "
                   f"{_fmt(r.spearman)} [{_fmt(r.spearman_ci[0])}, {_fmt(r.spearman_ci[1])}] | "
                   f"{_fmt(r.kendall)} [{_fmt(r.kendall_ci[0])}, {_fmt(r.kendall_ci[1])}] | "
                   f"{_fmt(r.top10_precision)} | {_fmt(r.seed_stability)} | "
                   f"{_fmt(r.seconds, 2)} |")
    return out


def _heatmap(rows: list[ProxyCorrelation], space: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in rows if r.space == space]
    tasks = sorted({(r.task, r.method) for r in rows})
    proxies = sorted({r.proxy for r in rows})
    grid = np.full((len(proxies), len(tasks)), np.nan)
    for r in rows:
        grid[proxies.index(r.proxy), tasks.index((r.task, r.method))] = r.spearman
    fig, ax = plt.subplots(figsize=(2.2 + 1.4 * len(tasks), 0.9 + 0.32 * len(proxies)))
    im = ax.imshow(grid, cmap="RdBu", vmin=-1, vmax=1, aspect="auto")
    ax.set_xticks(range(len(tasks)), [f"{t} ({m})" for t, m in tasks], rotation=30,
                  ha="right")
    ax.set_yticks(range(len(proxies)), proxies)
    for i in range(len(proxies)):
        for j in range(len(tasks)):
            if grid[i, j] == grid[i, j]:
                ax.text(j, i, f"{grid[i, j]:.2f}", ha="center", va="center", fontsize=7)
    fig.colorbar(im, ax=ax, label="Spearman ρ with val metric")
    ax.set_title(f"zero-cost proxies, {space}")
    fig.tight_layout()
    fig.savefig(path, dpi=90, metadata={"Software": None})
    plt.close(fig)


def write_report(store, out: str | Path, bootstrap: int = 1000) -> Path:
    """Write ``proxies.md`` and one heat map per space under ``out``."""
    rows = correlations(store, bootstrap)
    if not rows:
        raise MedbenchError("no (space, task) has proxy scores for 3+ architectures with "
                            "trained results: nothing to report")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    lines = ["# Zero-cost proxies against trained results", "",
             "Generated by `medbench report proxies`; definitions in "
             "`medbench/proxy_report.py`. For context, NAS-Bench-Suite-Zero (Krishnakumar et "
             "al., NeurIPS 2022 Datasets and Benchmarks) reports these proxies on natural-image "
             "benchmarks; compare with care: spaces, tasks and metrics differ.", "",
             *table_lines(rows), ""]
    for space in sorted({r.space for r in rows}):
        png = f"{space}.png"
        _heatmap(rows, space, out / png)
        lines += [f"![{space}]({png})", ""]
    md = out / "proxies.md"
    md.write_text("\n".join(lines))
    return md
