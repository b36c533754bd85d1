"""Searchers behind the ask/tell interface of :mod:`medbench.simulate.simulator`.

A searcher is built from what a real search would know before training anything: the number
of candidate architectures, their configurations, and the largest fidelity. It never gets
the table, so it cannot read test (or unseen validation) numbers.
"""

from __future__ import annotations

import hashlib

from collections import deque

import numpy as np

from medbench.errors import UnknownNameError
from medbench.simulate.simulator import Suggestion

__all__ = ["RandomSearch", "RegularizedEvolution", "LocalSearch", "ASHA", "Hyperband",
           "SuccessiveHalving", "PymooSearch", "NSGA2Search", "MOEADSearch", "MSTFSearch",
           "ProxyWarmStartEvolution", "SEARCHERS",
           "make_searcher", "config_features"]


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


def _choices(value) -> list[int]:
    """A configuration value as a flat list of integers (nested dicts and lists flattened,
    keys in sorted order; strings and fractions as hashes, compared only for equality)."""
    if isinstance(value, dict):
        return [x for key in sorted(value) for x in _choices(value[key])]
    if isinstance(value, list):
        return [x for v in value for x in _choices(v)]
    if isinstance(value, (bool, int)):
        return [int(value)]
    # hash() of a string changes with PYTHONHASHSEED, and so would every search that reads
    # these features; a digest of the value's repr is the same in every process
    digest = hashlib.blake2b(repr(value).encode(), digest_size=8).digest()
    return [int.from_bytes(digest, "little", signed=True)]


def config_features(configs: list[dict]) -> np.ndarray:
    """Configurations as an integer matrix (one column per choice, lists flattened and padded),
    for distances between architectures."""
    rows = [_choices(c) for c in configs]
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


class LocalSearch:
    """Best-improvement local search (White et al., 2021) over architectures with results.

    Starts from a random architecture; evaluates its untried nearest neighbours (smallest
    Hamming distance in choices) one by one and moves to the best one that beats it;
    restarts from a random architecture at a local optimum.
    """

    def __init__(self, n_archs: int, max_epochs: int, rng: np.random.Generator,
                 configs: list[dict] | None = None, **_: object):
        self.n_archs, self.max_epochs, self.rng = n_archs, max_epochs, rng
        self.features = config_features(configs) if configs else None
        self.seen: dict[int, float] = {}
        self.current: int | None = None
        self.queue: list[int] = []
        self._tried: list[int] = []  # neighbours of the current architecture asked so far
        self.pending = 0

    def _neighbours(self, arch: int) -> list[int]:
        if self.features is None:
            return []
        dist = np.sum(self.features != self.features[arch], axis=1)
        dist[arch] = np.iinfo(dist.dtype).max
        near = np.flatnonzero(dist == dist.min())
        return [int(a) for a in self.rng.permutation(near) if int(a) not in self.seen]

    def ask(self) -> Suggestion:
        if self.current is not None and not self.queue and not self.pending:
            best = max(self._neighbourhood_results(), key=lambda t: t[1], default=None)
            if best is not None and best[1] > self.seen.get(self.current, -np.inf):
                self.current = best[0]
                self.queue = self._neighbours(self.current)
            else:
                self.current = None  # local optimum: restart
        if self.current is None:
            self.current = int(self.rng.integers(self.n_archs))
            self.queue = self._neighbours(self.current)
            self._tried = []
            self.pending += 1
            return Suggestion(self.current, self.max_epochs)
        if not self.queue:  # neighbours still running: evaluate a random architecture
            return Suggestion(int(self.rng.integers(self.n_archs)), self.max_epochs)
        arch = self.queue.pop(0)
        self._tried.append(arch)
        self.pending += 1
        return Suggestion(arch, self.max_epochs)

    def _neighbourhood_results(self):
        return [(a, self.seen[a]) for a in self._tried if a in self.seen
                and not np.isnan(self.seen[a])]

    def tell(self, suggestion: Suggestion, value: float) -> None:
        self.seen[suggestion.arch] = value
        if suggestion.arch == self.current or suggestion.arch in self._tried:
            self.pending = max(self.pending - 1, 0)


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


class PymooSearch:
    """A pymoo algorithm on two objectives: validation metric (max) and latency (min).

    Individuals are vectors of architecture choices (:func:`config_features`, each column
    recoded to 0..k-1); an offspring is evaluated as the architecture with results nearest
    to it in Hamming distance, whose choices replace the offspring's. What pymoo asks for at
    once (a generation for NSGA-II, one offspring for MOEA/D after its first population) is
    handed out whole; workers that find none left wait for its last result. When pymoo can
    make no new offspring (a table too small for the population), random architectures with
    a latency are evaluated instead. Subclasses choose the algorithm.

    Args:
        latency_ms: latency per architecture; architectures without one cannot be chosen.
        pop_size: population size.
    """

    name = "pymoo"

    def __init__(self, n_archs: int, max_epochs: int, rng: np.random.Generator,
                 configs: list[dict] | None = None, latency_ms: np.ndarray | None = None,
                 pop_size: int = 20, **_: object):
        from pymoo.core.problem import Problem

        from medbench.errors import BadValueError

        lat = np.full(n_archs, np.nan) if latency_ms is None else np.asarray(latency_ms, float)
        self.valid = np.flatnonzero(~np.isnan(lat))
        if not len(self.valid):
            raise BadValueError(f"{self.name} needs latency (or energy) measurements for "
                                "the task's architectures")
        raw = config_features(configs) if configs else np.arange(n_archs)[:, None]
        self.X = np.stack([np.unique(col, return_inverse=True)[1] for col in raw.T], axis=1)
        self.latency, self.max_epochs, self.rng = lat, max_epochs, rng
        self.problem = Problem(n_var=self.X.shape[1], n_obj=2, xl=0,
                               xu=np.maximum(self.X.max(axis=0), 1), vtype=int)
        self.algorithm = self._algorithm(pop_size)
        self.algorithm.setup(self.problem, termination=("n_gen", 10**9),
                             seed=int(rng.integers(2**31)), verbose=False)
        self.queue: list[tuple[int, int]] = []
        self.waiting: dict[int, list[int]] = {}
        self.pending = 0
        self.exhausted = False

    @staticmethod
    def _operators() -> dict:
        from pymoo.operators.crossover.sbx import SBX
        from pymoo.operators.mutation.pm import PM
        from pymoo.operators.repair.rounding import RoundingRepair
        from pymoo.operators.sampling.rnd import IntegerRandomSampling

        return {"sampling": IntegerRandomSampling(),
                "crossover": SBX(prob=0.9, eta=15, repair=RoundingRepair()),
                "mutation": PM(eta=20, repair=RoundingRepair())}

    def _algorithm(self, pop_size: int):
        raise NotImplementedError

    def _nearest(self, x: np.ndarray) -> int:
        dist = np.sum(self.X[self.valid] != x, axis=1)
        return int(self.valid[int(dist.argmin())])

    def ask(self) -> Suggestion | None:
        if self.exhausted:  # pymoo can make no new offspring: random from here on
            return Suggestion(int(self.rng.choice(self.valid)), self.max_epochs)
        if not self.queue:
            if self.pending:
                return None
            from pymoo.core.individual import Individual
            from pymoo.core.population import Population

            got = self.algorithm.ask()
            self.single = isinstance(got, Individual)  # MOEA/D asks one offspring at a time
            self.pop = Population.create(got) if self.single else got
            if self.pop is None or not len(self.pop):
                # pymoo found no new offspring (a small table is exhausted): evaluate random
                # architectures with a latency instead, outside the algorithm's bookkeeping
                # (asking pymoo again would cost its full mating retries every time)
                self.pop, self.exhausted = None, True
                return Suggestion(int(self.rng.choice(self.valid)), self.max_epochs)
            archs = [self._nearest(x) for x in self.pop.get("X")]
            self.pop.set("X", self.X[archs])
            self.F = np.zeros((len(archs), 2))
            self.queue, self.pending = list(enumerate(archs)), len(archs)
        i, arch = self.queue.pop(0)
        self.waiting.setdefault(arch, []).append(i)
        return Suggestion(arch, self.max_epochs)

    def tell(self, suggestion: Suggestion, value: float) -> None:
        from pymoo.core.evaluator import Evaluator
        from pymoo.problems.static import StaticProblem

        if not self.waiting.get(suggestion.arch):
            return  # a random fallback evaluation, not part of a generation
        i = self.waiting[suggestion.arch].pop(0)
        self.F[i] = (0.0 if np.isnan(value) else -value, self.latency[suggestion.arch])
        self.pending -= 1
        if self.pending == 0:
            Evaluator().eval(StaticProblem(self.problem, F=self.F), self.pop)
            self.algorithm.tell(infills=self.pop[0] if self.single else self.pop)


class NSGA2Search(PymooSearch):
    """NSGA-II (Deb et al. 2002, pymoo) on (validation metric, latency); see PymooSearch."""

    name = "nsga2"

    def _algorithm(self, pop_size: int):
        from pymoo.algorithms.moo.nsga2 import NSGA2

        return NSGA2(pop_size=pop_size, eliminate_duplicates=True, **self._operators())


class MOEADSearch(PymooSearch):
    """MOEA/D (Zhang & Li 2007, pymoo) on (validation metric, latency); see PymooSearch.

    ``pop_size`` uniform weight vectors, Tchebycheff decomposition (pymoo's default for two
    objectives), 20 % of the population as neighbourhood. After the first population each
    offspring is evaluated alone, so the workers run it one result at a time: MOEA/D is a
    sequential algorithm, which the simulated clock makes visible.
    """

    name = "moead"

    def _algorithm(self, pop_size: int):
        from pymoo.algorithms.moo.moead import MOEAD
        from pymoo.util.ref_dirs import get_reference_directions

        ref_dirs = get_reference_directions("uniform", 2, n_partitions=pop_size - 1)
        return MOEAD(ref_dirs, n_neighbors=max(2, pop_size // 5), **self._operators())


class Hyperband:
    """Hyperband (Li et al., JMLR 2018): brackets of synchronous successive halving.

    With ``R = max_epochs / min_epochs`` and ``s_max = floor(log_eta R)``, bracket ``s``
    starts ``ceil((s_max + 1) / (s + 1) * eta**s)`` random architectures at
    ``max_epochs * eta**-s`` epochs and keeps the best ``1/eta`` of each rung for the next
    (training resumes from the rung below), up to ``max_epochs``. Brackets run from the most
    aggressive (``s_max``) to plain full-fidelity search (``s = 0``) and repeat. A rung is
    synchronous: free workers wait until its last result is in.
    """

    def __init__(self, n_archs: int, max_epochs: int, rng: np.random.Generator,
                 eta: int = 3, min_epochs: int = 1, **_: object):
        import math

        self.n_archs, self.max_epochs, self.rng, self.eta = n_archs, max_epochs, rng, eta
        self.s_max = int(math.floor(math.log(max_epochs / min_epochs, eta) + 1e-9))
        self.brackets = self._brackets()
        self.bracket = -1
        self.rung, self.rungs, self.queue = 0, [], []
        self.results: dict[int, float] = {}
        self.pending = 0

    def _brackets(self) -> list[int]:
        return list(range(self.s_max, -1, -1))

    def _plan(self, s: int) -> list[tuple[int, int]]:
        """(architectures, epochs) of each rung of bracket ``s``."""
        import math

        n = math.ceil((self.s_max + 1) / (s + 1) * self.eta ** s)
        out = []
        for i in range(s + 1):
            epochs = max(1, min(self.max_epochs,
                                round(self.max_epochs * self.eta ** (i - s))))
            out.append((max(1, n // self.eta ** i), epochs))
        return out

    def _start_bracket(self) -> None:
        self.bracket = (self.bracket + 1) % len(self.brackets)
        self.rungs = self._plan(self.brackets[self.bracket])
        self.rung = 0
        n, epochs = self.rungs[0]
        archs = self.rng.choice(self.n_archs, size=min(n, self.n_archs), replace=False)
        self.queue = [Suggestion(int(a), epochs) for a in archs]
        self.results = {}

    def _promote(self) -> None:
        done = self.results
        top = sorted(done, key=lambda a: -np.inf if np.isnan(done[a]) else -done[a])
        self.rung += 1
        n, epochs = self.rungs[self.rung]
        below = self.rungs[self.rung - 1][1]
        self.queue = [Suggestion(a, epochs, resume_from=below) for a in top[:n]]
        self.results = {}

    def ask(self) -> Suggestion | None:
        if not self.queue:
            if self.pending:
                return None  # the rung is not complete yet
            if self.rung + 1 < len(self.rungs) and self.results:
                self._promote()
            else:
                self._start_bracket()
        self.pending += 1
        return self.queue.pop(0)

    def tell(self, suggestion: Suggestion, value: float) -> None:
        self.results[suggestion.arch] = value
        self.pending -= 1


class SuccessiveHalving(Hyperband):
    """Synchronous successive halving (Jamieson & Talwalkar 2016): Hyperband's most
    aggressive bracket, repeated."""

    def _brackets(self) -> list[int]:
        return [self.s_max]


def _proxy(proxies: dict[str, np.ndarray] | None, name: str, algorithm: str) -> np.ndarray:
    from medbench.errors import BadValueError

    if not proxies or name not in proxies or np.isnan(proxies[name]).all():
        have = ", ".join(sorted(proxies or {})) or "none"
        raise BadValueError(f"{algorithm} needs {name} proxy scores for the task's "
                            f"architectures (the table has: {have})")
    return np.asarray(proxies[name], float)


class MSTFSearch:
    """The MSTF-NAS search: NSGA-II (pymoo) on zero-cost proxies, then train its picks.

    Phase 1, training-free: NSGA-II over architecture choices minimises MSTF-NAS's two
    objectives, f1 = -jacov - flops and f2 = -synflow + flops (each proxy min-max normalised
    over the scored architectures), for ``generations`` generations; an offspring is
    scored as the nearest architecture with all three proxies. Its cost, the proxy seconds
    of every architecture scored, is charged before any training (``setup_seconds``, one
    worker scoring). Phase 2: the final non-dominated set is trained at full fidelity by
    lookup, best sum of objectives first; then random architectures fill the budget.
    """

    def __init__(self, n_archs: int, max_epochs: int, rng: np.random.Generator,
                 configs: list[dict] | None = None,
                 proxies: dict[str, np.ndarray] | None = None,
                 proxy_seconds: dict[str, np.ndarray] | None = None,
                 generations: int = 10, pop_size: int = 20, **_: object):
        from pymoo.algorithms.moo.nsga2 import NSGA2
        from pymoo.core.problem import Problem
        from pymoo.optimize import minimize
        from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

        from medbench.proxy_report import mstf_objectives

        scores = {p: _proxy(proxies, p, "mstf") for p in ("jacov", "synflow", "flops")}
        valid = np.flatnonzero(np.all([~np.isnan(v) for v in scores.values()], axis=0))
        f1, f2 = mstf_objectives({p: v[valid] for p, v in scores.items()})
        objectives = np.full((n_archs, 2), np.nan)
        objectives[valid] = np.c_[f1, f2]
        raw = config_features(configs) if configs else np.arange(n_archs)[:, None]
        X = np.stack([np.unique(col, return_inverse=True)[1] for col in raw.T], axis=1)
        scored: set[int] = set()

        class ProxyProblem(Problem):
            def _evaluate(self, x, out, *args, **kwargs):
                archs = [int(valid[np.sum(X[valid] != row, axis=1).argmin()]) for row in x]
                scored.update(archs)
                out["F"] = objectives[archs]

        problem = ProxyProblem(n_var=X.shape[1], n_obj=2, xl=0, xu=np.maximum(X.max(0), 1),
                               vtype=int)
        minimize(problem, NSGA2(pop_size=pop_size, eliminate_duplicates=True,
                                **PymooSearch._operators()),
                 ("n_gen", generations), seed=int(rng.integers(2**31)), verbose=False)
        seen = np.array(sorted(scored))
        front = seen[NonDominatedSorting().do(objectives[seen], only_non_dominated_front=True)]
        self.picks = [int(a) for a in front[np.argsort(objectives[front].sum(axis=1),
                                                       kind="stable")]]
        seconds = proxy_seconds or {}
        self.setup_seconds = float(sum(np.nansum(seconds[p][seen]) for p in scores
                                       if p in seconds))
        self.n_scored = len(seen)
        self.n_archs, self.max_epochs, self.rng = n_archs, max_epochs, rng

    def ask(self) -> Suggestion:
        if self.picks:
            return Suggestion(self.picks.pop(0), self.max_epochs)
        return Suggestion(int(self.rng.integers(self.n_archs)), self.max_epochs)

    def tell(self, suggestion: Suggestion, value: float) -> None:
        pass


class ProxyWarmStartEvolution(RegularizedEvolution):
    """Regularized evolution whose first population is chosen by a zero-cost proxy.

    ``sample`` random architectures (all, if fewer) are scored with ``proxy`` (default
    synflow) and the ``population`` best are trained first; their scoring time is charged
    before any training (``setup_seconds``). Then it evolves like ``re``.
    """

    def __init__(self, n_archs: int, max_epochs: int, rng: np.random.Generator,
                 configs: list[dict] | None = None,
                 proxies: dict[str, np.ndarray] | None = None,
                 proxy_seconds: dict[str, np.ndarray] | None = None, proxy: str = "synflow",
                 warm_sample: int = 1000, population: int = 20, **kw: object):
        super().__init__(n_archs, max_epochs, rng, configs=configs, population=population,
                         **kw)
        score = _proxy(proxies, proxy, "re-warm")
        candidates = np.flatnonzero(~np.isnan(score))
        if len(candidates) > warm_sample:
            candidates = rng.choice(candidates, warm_sample, replace=False)
        best = candidates[np.argsort(-score[candidates], kind="stable")][:population]
        self.warm = [int(a) for a in best]
        cost = (proxy_seconds or {}).get(proxy)
        self.setup_seconds = float(np.nansum(cost[candidates])) if cost is not None else 0.0

    def ask(self) -> Suggestion:
        if self.warm:
            return Suggestion(self.warm.pop(0), self.max_epochs)
        return super().ask()


SEARCHERS = {"rs": RandomSearch, "re": RegularizedEvolution, "ls": LocalSearch, "asha": ASHA,
             "sh": SuccessiveHalving, "hb": Hyperband, "nsga2": NSGA2Search,
             "moead": MOEADSearch, "mstf": MSTFSearch, "re-warm": ProxyWarmStartEvolution}


def make_searcher(name: str, *, n_archs: int, max_epochs: int, rng: np.random.Generator,
                  configs: list[dict] | None = None, latency_ms: np.ndarray | None = None,
                  proxies: dict[str, np.ndarray] | None = None,
                  proxy_seconds: dict[str, np.ndarray] | None = None):
    """A searcher by short name; an unknown name lists the known ones."""
    try:
        cls = SEARCHERS[name]
    except KeyError:
        raise UnknownNameError("algorithm", name, sorted(SEARCHERS)) from None
    return cls(n_archs=n_archs, max_epochs=max_epochs, rng=rng, configs=configs,
               latency_ms=latency_ms, proxies=proxies, proxy_seconds=proxy_seconds)
