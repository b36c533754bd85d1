"""A static web site of the tables: ``medbench explore --out site/``.

No server: the pages load their data as ``<script>`` files, so the site works from a
``file://`` URL and from any static host. Per task, a page plots each architecture's mean
validation metric against latency, energy, parameters or MACs on a chosen device, runtime and
thread count, with the Pareto front of what the filters (space, method, maximum latency and
parameters) leave, and a sortable table of the same rows; each architecture has a page with
its learning curves, per-class scores, zero-cost proxies and every hardware measurement. The
front page has the headline numbers. Plots are drawn in the browser by Plotly's JavaScript
bundle, copied from the ``plotly`` package into the site.

Layout of ``out/``: ``index.html``; ``task-<slug>.html`` and ``arch-<slug>.html#<n>`` per
task; ``data/*.js`` (the tables' numbers); ``assets/`` (``explore.js``, ``explore.css``,
``plotly.min.js``).
"""

from __future__ import annotations

import html
import json
import re
import shutil
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path

from medbench import catalog
from medbench.errors import BadValueError, MedbenchError
from medbench.query import task_metric
from medbench.store import Store

__all__ = ["write_site", "task_data", "slug"]

#: The latency setting a task page shows first, where measured (as ``medbench query``).
DEFAULT_SETTING = ("onnxruntime", 1)


def slug(task: str) -> str:
    """A file-name form of a task id: ``msd/hippocampus`` -> ``msd-hippocampus``."""
    return re.sub(r"[^a-z0-9]+", "-", task.lower()).strip("-")


def _rows(store: Store, sql: str, params: list | None = None) -> list[dict]:
    cur = store.execute(sql, params)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r)) for r in cur.fetchall()]


def _round(x, digits: int = 4):
    return None if x is None else round(float(x), digits)


def task_data(store: Store, task: str) -> tuple[dict, dict]:
    """A task's rows (one per space, architecture and training method, seeds averaged) with
    their hardware measurements, and the per-architecture details (curves, per-class
    scores, proxies, hardware, config)."""
    metric = task_metric(store, task)
    ev, costs, hw = (store.view(t, task) for t in ("evaluations", "costs", "hardware"))
    rows = _rows(store, f"""
        SELECT e.space, e.arch_id, e.method, count(DISTINCT e.seed) AS n_seeds,
               avg(e."val_{metric}") AS val, stddev_samp(e."val_{metric}") AS val_std,
               avg(e."test_{metric}") AS test, any_value(c.params) AS params,
               any_value(c.macs) AS macs
        FROM "{ev}" e LEFT JOIN "{costs}" c ON c.space = e.space AND c.arch_id = e.arch_id
             AND c.task = e.task
        WHERE e.task = ? GROUP BY ALL ORDER BY e.space, e.arch_id, e.method""", [task])
    index = {(r["space"], r["arch_id"]): [] for r in rows}
    measured = _rows(store, f"""
        SELECT space, arch_id, device, runtime, threads, latency_ms, latency_p10_ms,
               latency_p90_ms, latency_method, energy_mj, energy_method, power_w
        FROM "{hw}" WHERE task = ? AND batch = 1 ORDER BY ALL""", [task])
    settings: dict[tuple, int] = {}
    for m in measured:
        if (m["space"], m["arch_id"]) in index:
            index[(m["space"], m["arch_id"])].append(m)
            key = (m["device"], m["runtime"], m["threads"])
            settings[key] = settings.get(key, 0) + 1
    order = sorted(settings, key=lambda k: (-settings[k], k))
    preferred = [k for k in order if k[1:] == DEFAULT_SETTING]
    order = preferred[:1] + [k for k in order if k not in preferred[:1]]
    pos = {k: i for i, k in enumerate(order)}
    newer = catalog.superseded()
    spaces = sorted({r["space"] for r in rows})
    hidden = [s for s in spaces if newer.get(s) in spaces]
    out_rows = []
    for r in rows:
        hw_of = {}
        for m in index[(r["space"], r["arch_id"])]:
            hw_of[pos[(m["device"], m["runtime"], m["threads"])]] = [
                _round(m["latency_ms"]), _round(m["energy_mj"])]
        out_rows.append([r["space"], r["arch_id"], r["method"], r["n_seeds"], _round(r["val"]),
                         _round(r["val_std"]), _round(r["test"]), r["params"], r["macs"],
                         hw_of])
    data = {"task": task, "slug": slug(task), "metric": metric,
            "columns": ["space", "arch_id", "method", "n_seeds", "val", "val_std", "test",
                        "params", "macs", "hw"],
            "rows": out_rows,
            "settings": [{"device": d, "runtime": rt, "threads": t, "n": settings[(d, rt, t)]}
                         for d, rt, t in order],
            "spaces": spaces, "hidden_spaces": hidden,
            "superseded": {s: newer[s] for s in hidden}}
    return data, _details(store, task, metric, rows, index)


def _details(store: Store, task: str, metric: str, rows: list[dict], hw: dict) -> dict:
    ev, curves, proxies, archs, tasks = (store.view(t, task) for t in (
        "evaluations", "curves", "proxies", "architectures", "tasks"))
    position = {(r["space"], r["arch_id"], r["method"]): i for i, r in enumerate(rows)}
    details: dict[int, dict] = {i: {} for i in range(len(rows))}
    names = store.fetchone(f'SELECT class_names FROM "{tasks}" WHERE task = ?', [task])
    per_class = '"val_dice_per_class"' if metric == "dice" else "NULL"
    for r in _rows(store, f"""
            SELECT space, arch_id, method, seed, "val_{metric}" AS val,
                   "test_{metric}" AS test, {per_class} AS per_class
            FROM "{ev}" WHERE task = ? ORDER BY ALL""", [task]):
        d = details[position[(r["space"], r["arch_id"], r["method"])]]
        d.setdefault("seeds", []).append([r["seed"], _round(r["val"]), _round(r["test"]),
                                          [_round(x) for x in r["per_class"] or []]])
    curve_col = f"val_{metric}" if f"val_{metric}" in ("val_dice", "val_acc", "val_auc") \
        else None
    if curve_col:
        for r in _rows(store, f"""
                SELECT space, arch_id, method, seed,
                       list(epoch ORDER BY epoch) AS epochs,
                       list("{curve_col}" ORDER BY epoch) AS val,
                       list(train_loss ORDER BY epoch) AS loss
                FROM "{curves}" WHERE task = ? GROUP BY ALL ORDER BY ALL""", [task]):
            i = position.get((r["space"], r["arch_id"], r["method"]))
            if i is not None:
                details[i].setdefault("curves", []).append(
                    [r["seed"], r["epochs"], [_round(v) for v in r["val"]],
                     [_round(v) for v in r["loss"]]])
    scores: dict[tuple, dict] = {}
    for r in _rows(store, f"""
            SELECT space, arch_id, proxy, avg(score) AS score, count(*) AS n
            FROM "{proxies}" WHERE task = ? GROUP BY ALL ORDER BY ALL""", [task]):
        scores.setdefault((r["space"], r["arch_id"]), {})[r["proxy"]] = [
            _round(r["score"], 6), r["n"]]
    configs = {(r["space"], r["arch_id"]): r["config"] for r in _rows(store, f"""
        SELECT a.space, a.arch_id, a.config FROM "{archs}" a
        SEMI JOIN "{ev}" e ON e.space = a.space AND e.arch_id = a.arch_id AND e.task = ?""",
                                                                          [task])}
    for (space, arch, method), i in position.items():
        d = details[i]
        d["proxies"] = scores.get((space, arch), {})
        d["config"] = configs.get((space, arch))
        d["hardware"] = [[m["device"], m["runtime"], m["threads"], _round(m["latency_ms"]),
                          _round(m["latency_p10_ms"]), _round(m["latency_p90_ms"]),
                          m["latency_method"], _round(m["energy_mj"]), m["energy_method"],
                          _round(m["power_w"])] for m in hw[(space, arch)]]
    return {"task": task, "metric": metric,
            "class_names": list(names[0] or [])[1:] if names and names[0] else [],
            "details": [details[i] for i in range(len(rows))]}


def _headline(store: Store, tasks: list[dict]) -> dict:
    from medbench.schema import SCHEMA_VERSION, TABLE_NAMES

    return {"schema": SCHEMA_VERSION,
            "generated": f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC",
            "tables": {t: store.n_rows(t) for t in TABLE_NAMES},
            "tasks": tasks}


def _task_summary(data: dict) -> dict:
    hidden = set(data["hidden_spaces"])
    shown = [r for r in data["rows"] if r[0] not in hidden and r[4] is not None]
    fixed = catalog.references()
    searched = [r for r in shown if r[0] not in fixed] or shown
    trained = [r for r in searched if r[2] == "standalone"]  # the best trained, as the query
    best = max(trained or searched, key=lambda r: r[4]) if searched else None
    first = data["settings"][0] if data["settings"] else None
    fast = [r for r in shown if 0 in r[9] and r[9][0][0] is not None and r[9][0][0] <= 4.0]
    return {"task": data["task"], "slug": data["slug"], "metric": data["metric"],
            "architectures": len({(r[0], r[1]) for r in data["rows"]}),
            "rows": len(data["rows"]),
            "spaces": data["spaces"], "hidden_spaces": data["hidden_spaces"],
            "best": None if best is None else {"space": best[0], "arch_id": best[1],
                                               "method": best[2], "val": best[4],
                                               "test": best[6], "n_seeds": best[3]},
            "setting": first, "within_4ms": len(fast) if first else None}


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="stylesheet" href="assets/explore.css">
</head><body data-page="{page}">
<header><a href="index.html">medbench</a> <span>{title}</span></header>
<main id="main"><noscript>This page draws its plots and tables with JavaScript.</noscript></main>
{scripts}
</body></html>
"""


def _page(path: Path, title: str, page: str, data_files: list[str]) -> None:
    scripts = "\n".join(f'<script src="{s}"></script>' for s in
                        ["assets/plotly.min.js", *data_files, "assets/explore.js"])
    path.write_text(_PAGE.format(title=html.escape(title), page=page, scripts=scripts))


def _js(path: Path, name: str, value) -> None:
    text = json.dumps(value, separators=(",", ":"), allow_nan=False)
    path.write_text(f"window.{name} = {text};\n")


def _plotly_js() -> Path:
    try:
        bundle = resources.files("plotly") / "package_data" / "plotly.min.js"
    except ModuleNotFoundError:
        raise MedbenchError("medbench explore needs the plotly package for its browser "
                            "bundle: pip install plotly") from None
    if not bundle.is_file():
        raise MedbenchError("the plotly package has no package_data/plotly.min.js: "
                            "reinstall plotly")
    return Path(str(bundle))


def write_site(store: Store, out: str | Path, tasks: list[str] | None = None) -> dict:
    """Write the site for ``tasks`` (default: every task with results) into ``out``.

    Returns:
        ``{"pages": n, "tasks": [...], "rows": n, "out": path}``.

    Raises:
        BadValueError: ``out`` is a file, or a folder holding anything but an earlier site.
        MedbenchError: no task has results, or plotly is missing.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise BadValueError(f"--out {out} is a file; give a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / "assets" / "explore.js").exists():
        raise BadValueError(f"--out {out} holds other files; give an empty or new folder "
                            "(or an earlier site, which is replaced)")
    with_results = store.known("task", "evaluations")
    if tasks:
        resolved = []
        for t in tasks:
            name = store.resolve_task(t)
            if name not in with_results:
                raise BadValueError(f"task {name} has no results in these tables")
            resolved.append(name)
        tasks = resolved
    else:
        tasks = list(with_results)
    if not tasks:
        raise MedbenchError("no task has results in these tables: nothing to show")
    plotly_js = _plotly_js()
    (out / "data").mkdir(parents=True, exist_ok=True)
    (out / "assets").mkdir(exist_ok=True)
    shutil.copyfile(plotly_js, out / "assets" / "plotly.min.js")
    assets = resources.files("medbench") / "explore_assets"
    for name in ("explore.js", "explore.css"):
        (out / "assets" / name).write_text((assets / name).read_text())
    summaries, n_rows = [], 0
    for task in tasks:
        data, details = task_data(store, task)
        s = data["slug"]
        _js(out / "data" / f"task-{s}.js", "MB_TASK", data)
        _js(out / "data" / f"detail-{s}.js", "MB_DETAIL", details)
        _page(out / f"task-{s}.html", task, "task", [f"data/task-{s}.js"])
        _page(out / f"arch-{s}.html", f"{task}: architecture", "arch",
              [f"data/task-{s}.js", f"data/detail-{s}.js"])
        summaries.append(_task_summary(data))
        n_rows += len(data["rows"])
    _js(out / "data" / "index.js", "MB_INDEX", _headline(store, summaries))
    _page(out / "index.html", "medbench explorer", "index", ["data/index.js"])
    return {"pages": 1 + 2 * len(tasks), "tasks": tasks, "rows": n_rows, "out": str(out)}
