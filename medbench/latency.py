"""Latency predicted from a per-block lookup table (the FBNet / ProxylessNAS approach).

A network's latency is predicted as the sum of its blocks' latencies, each measured alone
(``latency_lut`` rows), plus one constant per device, runtime and thread count (the
``overhead`` row, fitted as the median gap between measured networks and their block sums).
No torch needed: the blocks of an architecture come from its space's ``blocks()``.
"""

from __future__ import annotations

from medbench.errors import MedbenchError

__all__ = ["load_lut", "predict", "predicted"]


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


def predicted(store, space: str, arch_id: str):
    """The latency of one architecture predicted by every fitted lookup table of its space.

    Works for any architecture of a space with ``blocks()`` (``unet3d``), in the tables or
    not: its block keys at each task's input channels are looked up per device, runtime and
    thread count; settings whose table lacks one of the blocks or has no fitted ``overhead``
    are left out.

    Returns:
        A DuckDB relation: task, device, runtime, threads, batch (1), latency_ms,
        latency_method ('lut') and n_blocks; no rows where nothing can be predicted.

    Raises:
        BadValueError: if ``arch_id`` is not an architecture of ``space``.
    """
    from medbench.spaces import get_space

    module = get_space(space)
    lut = store.view("latency_lut")
    arch = module.from_id(arch_id) if hasattr(module, "blocks") else None
    tasks = [t for (t,) in store.fetchall(
        f'SELECT DISTINCT task FROM "{lut}" WHERE space = ? ORDER BY task', [space])] \
        if arch else []
    shapes = dict(store.fetchall(
        f'SELECT task, input_shape FROM "{store.view("tasks")}"')) if tasks else {}
    need_task, need_block = [], []
    for task in tasks:
        shape = shapes.get(task)
        keys = module.blocks(arch, int(shape[0]) if shape else 1)
        need_task += [task] * len(keys)
        need_block += keys
    return store.relation(
        f"""WITH need AS (SELECT unnest(?::VARCHAR[]) AS task, unnest(?::VARCHAR[]) AS block),
        lut AS (SELECT * FROM "{lut}" WHERE space = ? AND latency_ms IS NOT NULL)
        SELECT l.task, l.device, l.runtime, l.threads, 1 AS batch,
               sum(l.latency_ms) + any_value(o.latency_ms) AS latency_ms,
               'lut' AS latency_method, count(*) AS n_blocks
        FROM need n JOIN lut l USING (task, block)
        JOIN lut o ON o.task = l.task AND o.device = l.device AND o.runtime = l.runtime
             AND o.threads = l.threads AND o.block = 'overhead'
        GROUP BY l.task, l.device, l.runtime, l.threads
        HAVING count(*) = (SELECT count(*) FROM need WHERE need.task = l.task)
        ORDER BY ALL""", [need_task, need_block, space])
