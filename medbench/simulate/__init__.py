"""Search as table lookup: dense arrays, a simulated clock with asynchronous workers, searchers.

Needs numpy only (no torch). See :func:`medbench.simulate.simulator.simulate`.
"""

from medbench.simulate.searchers import SEARCHERS, make_searcher
from medbench.simulate.simulator import Suggestion, Trajectory, simulate
from medbench.simulate.tabular import Tabular, from_store

__all__ = ["Tabular", "from_store", "Suggestion", "Trajectory", "simulate", "SEARCHERS",
           "make_searcher"]
