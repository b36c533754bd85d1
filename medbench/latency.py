"""Latency predicted from a per-block lookup table (the FBNet / ProxylessNAS approach).

A network's latency is predicted as the sum of its blocks' latencies, each measured alone
(``latency_lut`` rows), plus one constant per device, runtime and thread count (the
``overhead`` row, fitted as the median gap between measured networks and their block sums).
No torch needed: the blocks of an architecture come from its space's ``blocks()``.
"""

from __future__ import annotations

from medbench.errors import MedbenchError

__all__ = ["load_lut", "predict"]


def load_lut(store, *, space: str, task: str, device: str, runtime: str,
             threads: int) -> dict[str, float]:
    """Block key -> latency (ms) of one device, runtime and thread count."""
    rows = store.fetchall(
        f'SELECT block, latency_ms FROM "{store.view("latency_lut", task)}" WHERE space = ? '
        "AND task = ? AND device = ? AND runtime = ? AND threads = ?",
        [space, task, device, runtime, threads])
    return {b: v for b, v in rows if v is not None}


def predict(lut: dict[str, float], blocks: list[str], overhead: bool = True) -> float:
    """Predicted latency (ms) of a network made of ``blocks``.

    Raises:
        MedbenchError: if the table lacks one of the blocks.
    """
    missing = [b for b in blocks if b not in lut]
    if missing:
        raise MedbenchError(f"the latency table lacks block(s) {', '.join(missing[:3])}")
    total = sum(lut[b] for b in blocks)
    return total + (lut.get("overhead", 0.0) if overhead else 0.0)
