"""Searchers behind the ask/tell interface of :mod:`medbench.simulate.simulator`.

A searcher is built from what a real search would know before training anything: the number
of candidate architectures, their configurations, and the largest fidelity. It never gets
the table, so it cannot read test (or unseen validation) numbers.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from medbench.errors import UnknownNameError
from medbench.simulate.simulator import Suggestion

__all__ = ["RandomSearch", "RegularizedEvolution", "ASHA", "SEARCHERS", "make_searcher",
           "config_features"]


class RandomSearch:
    """Uniformly random architectures at full fidelity.

    Stateless (results do not change what it asks), so the simulator may draw its
    suggestions in blocks with :meth:`ask_batch`; ``ask`` reads the same stream.
    """

    stateless = True
    _BLOCK = 4096

    def __init__(self, n_archs: int, max_epochs: int, rng: np.random.Generator, **_: object):
        self.n_archs, self.max_epochs, self.rng = n_archs, max_epochs, rng
        self._buffer = np.empty(0, dtype=np.int64)

    def ask_batch(self, n: int) -> np.ndarray:
        """The architectures of the next ``n`` suggestions (all at ``max_epochs``)."""
        while len(self._buffer) < n:
            self._buffer = np.concatenate(
                [self._buffer, self.rng.integers(self.n_archs, size=self._BLOCK)])
        out, self._buffer = self._buffer[:n], self._buffer[n:]
        return out

    def ask(self) -> Suggestion:
        return Suggestion(int(self.ask_batch(1)[0]), self.max_epochs)

    def tell(self, suggestion: Suggestion, value: float) -> None:
        pass


def config_features(configs: list[dict]) -> np.ndarray:
    """Configurations as an integer matrix (one column per choice, lists flattened and padded),
    for distances between architectures."""
    rows = []
    for c in configs:
        row = []
        for key in sorted(c):
            v = c[key]
            row += [hash(x) if isinstance(x, str) else x for x in v] if isinstance(v, list) \
                else [hash(v) if isinstance(v, str) else v]
        rows.append(row)
    width = max((len(r) for r in rows), default=0)
    out = np.full((len(rows), width), -1, dtype=np.int64)
    for i, r in enumerate(rows):
        out[i, :len(r)] = r
    return out


class RegularizedEvolution:
    """Regularized (aging) evolution, Real et al. 2019, over the architectures of the table.

    A population of the ``population`` most recent results; each child is a mutation of the
    best of ``sample`` random members. A mutation moves to a random architecture of the table
    at the smallest Hamming distance (in choices) from the parent, since only architectures
    with results can be evaluated by lookup.
    """

    def __init__(self, n_archs: int, max_epochs: int, rng: np.random.Generator,
                 configs: list[dict] | None = None, population: int = 20, sample: int = 5,
                 **_: object):
        self.n_archs, self.max_epochs, self.rng = n_archs, max_epochs, rng
        self.population_size, self.sample = population, sample
        self.population: deque[tuple[int, float]] = deque()
        self.features = config_features(configs) if configs else None

    def ask(self) -> Suggestion:
        if len(self.population) < self.population_size:
            return Suggestion(int(self.rng.integers(self.n_archs)), self.max_epochs)
        members = [self.population[i] for i in
                   self.rng.choice(len(self.population), self.sample, replace=False)]
        parent = max(members, key=lambda m: -np.inf if np.isnan(m[1]) else m[1])[0]
        return Suggestion(self._mutate(parent), self.max_epochs)

    def _mutate(self, parent: int) -> int:
        if self.features is None or self.n_archs < 2:
            return int(self.rng.integers(self.n_archs))
        dist = np.sum(self.features != self.features[parent], axis=1)
        dist[parent] = np.iinfo(dist.dtype).max
        nearest = np.flatnonzero(dist == dist.min())
        return int(self.rng.choice(nearest))

    def tell(self, suggestion: Suggestion, value: float) -> None:
        self.population.append((suggestion.arch, value))
        if len(self.population) > self.population_size:
            self.population.popleft()


class ASHA:
    """Asynchronous successive halving (Li et al., MLSys 2020) over learning curves.

    Rungs at ``min_epochs * eta**k`` epochs up to the largest fidelity. A free worker
    promotes the best not-yet-promoted result of the highest rung where it ranks in the top
    ``1/eta`` (training resumes from its checkpoint), and otherwise starts a random new
    architecture at the lowest rung.
    """

    def __init__(self, n_archs: int, max_epochs: int, rng: np.random.Generator,
                 eta: int = 3, min_epochs: int = 1, **_: object):
        self.n_archs, self.rng, self.eta = n_archs, rng, eta
        rungs = [min_epochs]
        while rungs[-1] * eta < max_epochs:
            rungs.append(rungs[-1] * eta)
        if rungs[-1] != max_epochs:
            rungs.append(max_epochs)
        self.rungs = rungs
        self.results: list[dict[int, float]] = [{} for _ in rungs]  # rung -> arch -> value
        self.promoted: list[set[int]] = [set() for _ in rungs]

    def ask(self) -> Suggestion:
        for k in range(len(self.rungs) - 2, -1, -1):
            done = self.results[k]
            top = sorted(done, key=lambda a: -np.inf if np.isnan(done[a]) else -done[a])
            for arch in top[:len(done) // self.eta]:
                if arch not in self.promoted[k] and not np.isnan(done[arch]):
                    self.promoted[k].add(arch)
                    return Suggestion(arch, self.rungs[k + 1], resume_from=self.rungs[k])
        return Suggestion(int(self.rng.integers(self.n_archs)), self.rungs[0])

    def tell(self, suggestion: Suggestion, value: float) -> None:
        k = self.rungs.index(suggestion.epochs)
        self.results[k][suggestion.arch] = value


SEARCHERS = {"rs": RandomSearch, "re": RegularizedEvolution, "asha": ASHA}


def make_searcher(name: str, *, n_archs: int, max_epochs: int, rng: np.random.Generator,
                  configs: list[dict] | None = None):
    """A searcher by short name; an unknown name lists the known ones."""
    try:
        cls = SEARCHERS[name]
    except KeyError:
        raise UnknownNameError("algorithm", name, sorted(SEARCHERS)) from None
    return cls(n_archs=n_archs, max_epochs=max_epochs, rng=rng, configs=configs)
