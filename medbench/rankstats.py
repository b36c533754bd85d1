"""Rank agreement between two scorings of the same architectures, with bootstrap intervals.

Shared by the reports that judge a cheap estimate (a zero-cost proxy, a supernet subnet)
against trained results. Imports scipy only when called.
"""

from __future__ import annotations

import numpy as np

__all__ = ["spearman", "kendall", "bootstrap_ci", "top_precision"]


def _defined(name: str):
    def stat(a, b) -> float:
        """NaN where a rank correlation is undefined (a constant input)."""
        from scipy import stats

        a, b = np.asarray(a, float), np.asarray(b, float)
        if len(a) < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
            return float("nan")
        return float(getattr(stats, name)(a, b).statistic)
    return stat


spearman = _defined("spearmanr")
kendall = _defined("kendalltau")


def bootstrap_ci(x, y, stat, n: int, rng, level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of ``stat(x, y)`` over ``n`` resamples of the pairs (NaN, NaN if
    no resample gives a value)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    values = []
    for _ in range(n):
        idx = rng.integers(len(x), size=len(x))
        if len(set(idx.tolist())) < 3:
            continue
        v = stat(x[idx], y[idx])
        if v == v:
            values.append(v)
    if not values:
        return (float("nan"), float("nan"))
    lo, hi = np.quantile(values, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def top_precision(score, truth, share: float = 0.1) -> float:
    """Share of ``score``'s top ``share`` (at least one) that is in ``truth``'s top as well."""
    score, truth = np.asarray(score, float), np.asarray(truth, float)
    k = max(1, int(round(share * len(truth))))
    top_s = set(np.argsort(-score, kind="stable")[:k].tolist())
    top_t = set(np.argsort(-truth, kind="stable")[:k].tolist())
    return len(top_s & top_t) / k
