"""medbench results in the formats of other NAS tools, so they run on medbench data.

- **Syne Tune**: :func:`to_syne_tune` gives a ``BlackboxTabular`` (hyperparameters ×
  seeds × epochs × objectives) for Syne Tune's simulator (``UserBlackboxBackend`` with
  ``SimulatorCallback``); :func:`write_syne_tune` stores it in Syne Tune's blackbox layout
  (``hyperparameters.parquet``, ``objectives_evaluations.npy``, ``fidelities_values.npy``,
  ``configspace.json``, ``metadata.json``) with Syne Tune's own ``serialize``, readable by
  its ``deserialize``. Needs ``pip install syne-tune pandas``.
- **NASLib**: :func:`to_naslib` gives the nested dict of NASLib's zero-cost benchmark files
  (``{task: {arch: {"id", "val_accuracy", "test_accuracy", <proxy>: {"score", "time"}}}}``),
  with medbench's metric under the accuracy keys and the learning curve, training time and
  costs beside; :func:`write_naslib` writes it as JSON.

Both take a :class:`~medbench.simulate.tabular.Tabular` (see ``from_store``), so they carry
what the simulator sees; test metrics are the final ones per seed.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from medbench.errors import MedbenchError
from medbench.simulate.tabular import Tabular

__all__ = ["to_syne_tune", "write_syne_tune", "to_naslib", "write_naslib", "EXPORTS"]


def _objective_names(table: Tabular) -> list[str]:
    return [f"val_{table.metric}", "elapsed_time", f"test_{table.metric}"]


def to_syne_tune(table: Tabular):
    """The table as a Syne Tune ``BlackboxTabular``.

    Hyperparameters are two columns, ``arch_id`` (a choice over the table's architectures)
    and ``space`` (constant): Syne Tune's tabular lookup needs more than one column. The
    fidelity is ``epochs`` (1..max); objectives are the validation metric, the cumulative
    training seconds (``elapsed_time``, Syne Tune's simulated clock reads it) and the final
    test metric at every epoch (report it for incumbents only).
    """
    try:
        import pandas as pd
        import syne_tune.config_space as sp
        from syne_tune.blackbox_repository.blackbox_tabular import BlackboxTabular
    except ImportError as e:
        raise MedbenchError(f"the Syne Tune export needs syne-tune and pandas ({e.name} is "
                            "missing): pip install syne-tune pandas") from None
    hps = pd.DataFrame({"arch_id": table.arch_ids, "space": [table.space] * table.n_archs})
    test = np.broadcast_to(table.test[:, :, None], table.val.shape)
    evaluations = np.stack([table.val, table.elapsed, test], axis=-1).astype(np.float32)
    return BlackboxTabular(
        hyperparameters=hps,
        configuration_space={"arch_id": sp.choice(list(table.arch_ids)), "space": table.space},
        fidelity_space={"epochs": sp.randint(1, table.max_epochs)},
        objectives_evaluations=evaluations,
        fidelity_values=np.arange(1, table.max_epochs + 1),
        objectives_names=_objective_names(table),
    )


def write_syne_tune(table: Tabular, path: str | Path) -> Path:
    """Store :func:`to_syne_tune` in Syne Tune's blackbox layout under ``path``."""
    try:
        from syne_tune.blackbox_repository.blackbox_tabular import serialize
    except ImportError as e:
        raise MedbenchError(f"the Syne Tune export needs syne-tune ({e.name} is missing): "
                            "pip install syne-tune pandas fastparquet") from None
    path = Path(path)
    serialize({table.task: to_syne_tune(table)}, str(path),
              metadata={"metric_elapsed_time": "elapsed_time",
                        "metric_valid_error": f"val_{table.metric}",
                        "source": "medbench", "space": table.space, "method": table.method})
    return path


def to_naslib(table: Tabular, proxies: dict[str, dict[str, tuple[float, float]]] | None = None
              ) -> dict:
    """The table as NASLib's zero-cost-benchmark dict, one entry per architecture.

    Args:
        table: the arrays of one (space, task, method).
        proxies: optional ``{arch_id: {proxy: (score, seconds)}}`` to add as
            ``{proxy: {"score", "time"}}`` entries, as NASLib's files hold them.

    Values are means over seeds (NaN-aware; None where no seed has one). ``val_accuracy``
    and ``test_accuracy`` carry the task's metric (named in ``metric``).
    """
    def mean(x) -> float | None:
        x = np.asarray(x, float)
        return None if np.isnan(x).all() else float(np.nanmean(x))

    out = {}
    with np.errstate(all="ignore"):
        for i, arch in enumerate(table.arch_ids):
            curve = [mean(table.val[i, :, e]) for e in range(table.max_epochs)]
            entry = {
                "id": i, "metric": table.metric,
                "val_accuracy": curve[-1], "test_accuracy": mean(table.test[i]),
                "val_curve": curve, "train_time": mean(table.elapsed[i, :, -1]),
                "latency_ms": mean(table.latency_ms[i]), "params": mean(table.params[i]),
                "config": table.configs[i] if i < len(table.configs) else {},
            }
            for name, (score, seconds) in (proxies or {}).get(arch, {}).items():
                entry[name] = {"score": score, "time": seconds}
            out[arch] = entry
    return {table.task: out}


def write_naslib(table: Tabular, path: str | Path,
                 proxies: dict[str, dict[str, tuple[float, float]]] | None = None) -> Path:
    """:func:`to_naslib` as a JSON file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(to_naslib(table, proxies), indent=1, allow_nan=False))
    return path


def proxies_from_store(store, table: Tabular) -> dict[str, dict[str, tuple[float, float]]]:
    """``{arch_id: {proxy: (mean score, mean seconds)}}`` of the table's task and space."""
    view = store.view("proxies", table.task)
    out: dict[str, dict[str, tuple[float, float]]] = {}
    for arch, proxy, score, seconds in store.fetchall(
            f'SELECT arch_id, proxy, avg(score), avg(seconds) FROM "{view}" WHERE task = ? '
            "AND space = ? AND isfinite(score) GROUP BY ALL ORDER BY ALL",
            [table.task, table.space]):
        out.setdefault(arch, {})[proxy] = (score, seconds)
    return out


EXPORTS = ("syne-tune", "naslib")
