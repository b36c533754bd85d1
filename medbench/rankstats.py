"""Rank agreement between two scorings of the same architectures, with bootstrap intervals.

Shared by the reports that judge a cheap estimate (a zero-cost proxy, a supernet subnet)
against trained results. Imports scipy only when called.
"""

from __future__ import annotations

import numpy as np

__all__ = ["spearman", "kendall", "bootstrap_ci", "top_precision", "stream"]


def _defined(name: str, resampled=None):
    def stat(a, b) -> float:
        """NaN where a rank correlation is undefined (a constant input)."""
        from scipy import stats

        a, b = np.asarray(a, float), np.asarray(b, float)
        if len(a) < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
            return float("nan")
        return float(getattr(stats, name)(a, b).statistic)
    stat.resampled = resampled  # the statistic of many resamples at once (bootstrap_ci)
    return stat


def _resampled_ranks(v: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """The average ranks (1-based, ties averaged, as scipy's ``rankdata``) of each resample
    ``v[idx[r]]``, from its draw counts of each distinct value: no sorting per resample."""
    drawn, per_value = _value_draws(v, idx)
    rank_of = np.cumsum(per_value, axis=1) - per_value + (per_value + 1) / 2
    return np.take_along_axis(rank_of, drawn, axis=1)


def _spearman_resampled(x: np.ndarray, y: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Spearman's rho of each resample ``x[idx[r]], y[idx[r]]``: Pearson's r of the average
    ranks, as scipy computes it; NaN for a constant resample."""
    rx, ry = (_resampled_ranks(v, idx) for v in (x, y))
    rx -= rx.mean(1, keepdims=True)
    ry -= ry.mean(1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (rx * ry).sum(1) / np.sqrt((rx * rx).sum(1) * (ry * ry).sum(1))


def _draws(idx: np.ndarray, k: int) -> np.ndarray:
    """How often each resample (row of ``idx``, values below ``k``) draws each value."""
    rows = np.arange(len(idx))[:, None] * k
    return np.bincount((rows + idx).ravel(), minlength=len(idx) * k).reshape(-1, k)


def _value_draws(v: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each drawn item's index among the sorted distinct values of ``v``, and how often each
    resample draws each distinct value."""
    _, group = np.unique(v, return_inverse=True)
    drawn = group[idx]
    return drawn, _draws(drawn, group.max() + 1)


def _tied_pairs(v: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Pairs of drawn items with equal ``v`` in each resample."""
    per_value = _value_draws(v, idx)[1].astype(float)
    return (per_value * (per_value - 1) / 2).sum(1)


def _kendall_resampled(x: np.ndarray, y: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Kendall's tau-b of each resample, from how often it draws each item: with ``c`` the
    draw counts and ``M`` the pairwise concordance signs, concordant minus discordant pairs
    is ``c M c / 2`` (exact in floating point: small integers), over the square root of the
    untied pair counts, as scipy's tau-b. Memory grows with the square of the items, so
    beyond a few thousand the resamples are scored one by one."""
    m = len(x)
    if m > 3000:
        return np.array([kendall(x[i], y[i]) for i in idx])
    counts = _draws(idx, m).astype(float)
    signs = np.sign(x[:, None] - x[None, :]) * np.sign(y[:, None] - y[None, :])
    s = ((counts @ signs) * counts).sum(1) / 2
    total = idx.shape[1] * (idx.shape[1] - 1) / 2
    with np.errstate(invalid="ignore", divide="ignore"):
        return s / np.sqrt(total - _tied_pairs(x, idx)) / np.sqrt(total - _tied_pairs(y, idx))


spearman = _defined("spearmanr", _spearman_resampled)
kendall = _defined("kendalltau", _kendall_resampled)


def stream(seed: int, *key) -> np.random.Generator:
    """A random generator for one comparison, drawn from ``seed`` and the comparison's own
    ``key`` (its space, task, proxy...): its bootstrap draws do not depend on which other
    comparisons a report makes before it, so adding rows to one leaves the others' intervals
    as they were."""
    import zlib

    return np.random.default_rng([seed, zlib.crc32("\0".join(map(str, key)).encode())])


def bootstrap_ci(x, y, stat, n: int, rng, level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of ``stat(x, y)`` over ``n`` resamples of the pairs (NaN, NaN if
    no resample gives a value). Resamples with fewer than three distinct pairs are skipped;
    :data:`spearman` and :data:`kendall` score all resamples at once."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    idx = rng.integers(len(x), size=(n, len(x)))  # the same draws as n draws of len(x)
    idx = idx[(_draws(idx, len(x)) > 0).sum(1) >= 3]
    many = getattr(stat, "resampled", None)
    if many is not None:
        values = many(x, y, idx)
    else:
        values = np.array([stat(x[i], y[i]) for i in idx])
    values = values[~np.isnan(values)]
    if not len(values):
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
