"""medbench: a tabular benchmark for neural architecture search on medical images.

``import medbench`` is light: it loads DuckDB only when tables are opened and never imports
torch, MONAI, medmnist or pandas.

Example:
    >>> import medbench
    >>> store = medbench.open()                       # the bundled tables
    >>> res = store.query(task="hippocampus", max_latency="4ms")
    >>> res.relation.fetchall()
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "open", "Store", "MedbenchError"]


def __getattr__(name: str):
    # Lazy exports keep `import medbench` free of duckdb until tables are opened.
    if name in ("open", "Store"):
        from medbench import store

        return getattr(store, name)
    if name == "MedbenchError":
        from medbench.errors import MedbenchError

        return MedbenchError
    raise AttributeError(f"module 'medbench' has no attribute {name!r}")
