"""The generated part of DATASHEET.md: counts, compute and headline results, from the tables.

    python -m medbench.datasheet [--tables tables] [--write DATASHEET.md]

Prints (or writes between the ``<!-- generated:start -->`` and ``<!-- generated:end -->``
markers of DATASHEET.md) a Markdown section computed from a release, so the datasheet's
numbers cannot drift from the tables: a test regenerates it and compares.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

from medbench.catalog import SPACES, references
from medbench.errors import MedbenchError
from medbench.schema import SCHEMA_VERSION, TABLE_NAMES

__all__ = ["generate", "splice", "main", "START", "END"]

START = "<!-- generated:start (python -m medbench.datasheet --write DATASHEET.md) -->"
END = "<!-- generated:end -->"


def _fmt(x, digits: int = 4) -> str:
    return "–" if x is None else (f"{x:.{digits}f}" if isinstance(x, float) else str(x))


def _result(row: dict, metric: str) -> str:
    """``(standalone, 3 seeds): val 0.87, test 0.88 ± 0.01``: means over seeds, the test
    metric's std where there are several."""
    n = row["n_seeds"]
    spread = f" ± {_fmt(row[f'test_{metric}_std'])}" if n > 1 else ""
    return (f"({row['method']}, {n} seed{'s' if n != 1 else ''}): val "
            f"{_fmt(row[f'val_{metric}'])}, test {_fmt(row[f'test_{metric}'])}{spread}")


def _per_class_test(store, task: str, best: dict, metric: str) -> str:
    """``; test per class: A 0.88, B 0.85`` (means over the architecture's seeds) for a
    segmentation task's architecture (``best``: a row of the default query), or nothing."""
    if not task.startswith("msd/"):
        return ""
    names = store.fetchone("SELECT class_names FROM tasks WHERE task = ?", [task])
    col = f"test_{metric}_per_class"
    if not names:
        return ""
    per_seed = [v for (v,) in store.fetchall(
        f'SELECT "{col}" FROM "{store.view("evaluations", task)}" WHERE task = ? AND space = ? '
        f'AND arch_id = ? AND method = ? AND "{col}" IS NOT NULL',
        [task, best["space"], best["arch_id"], best["method"]])]
    if not per_seed:
        return ""
    means = [sum(v) / len(v) for v in zip(*per_seed)]
    return "; test per class: " + ", ".join(
        f"{name} {_fmt(x)}" for name, x in zip(names[0][1:], means))


def generate(store) -> str:
    """The generated section for the release open in ``store``."""
    out = ["## Generated from the tables", "",
           f"Schema version {SCHEMA_VERSION}. Row counts per table:", "",
           "| table | rows |", "|---|---|"]
    for t in TABLE_NAMES:
        out.append(f"| {t} | {store.n_rows(t)} |")
    store.views()
    runs = store.fetchall("""
        SELECT builder, builder_version, count(*) FILTER (WHERE status = 'ok'),
               count(*) FILTER (WHERE status = 'failed'), sum(seconds) / 3600,
               string_agg(DISTINCT device, '; ' ORDER BY device),
               min(started_at)::DATE, max(finished_at)::DATE
        FROM runs GROUP BY ALL ORDER BY builder, builder_version""")
    out += ["", "### Compute spent (from `runs`)", ""]
    if not runs:
        out.append("No builder has run yet.")
    else:
        out += ["| builder | version | jobs ok | jobs failed | hours | devices | from | to |",
                "|---|---|---|---|---|---|---|---|"]
        for b, v, ok, failed, hours, devices, d0, d1 in runs:
            out.append(f"| {b} | {v} | {ok} | {failed} | {_fmt(hours, 2)} | {devices} | "
                       f"{d0} | {d1} |")
    out += _energy_lines(store)
    # a job may evaluate many architectures (a zoo chunk): the rate counts evaluations
    groups = store.fetchall("""
        WITH g AS (SELECT task, space, method, count(DISTINCT arch_id) AS archs,
                          count(*) AS n, count(DISTINCT seed) AS seeds, max(epochs) AS epochs
                   FROM evaluations GROUP BY ALL),
             j AS (SELECT e.task, e.space, e.method, e.run_id, count(*) AS n,
                          any_value(r.seconds) AS seconds
                   FROM evaluations e LEFT JOIN runs r USING (run_id) GROUP BY ALL)
        SELECT g.task, g.space, g.method, g.archs, g.n, g.seeds, g.epochs,
               avg(j.seconds) / 60, 3600 * sum(j.n) FILTER (WHERE j.seconds > 0)
                                    / sum(j.seconds) FILTER (WHERE j.seconds > 0)
        FROM g JOIN j USING (task, space, method) GROUP BY ALL ORDER BY ALL""")
    out += ["", "### Results", ""]
    if not groups:
        out.append("No evaluation rows yet.")
        return "\n".join(out) + "\n"
    out += ["| task | space | method | architectures | rows | seeds | epochs | "
            "minutes per job | evaluations per hour per process |",
            "|---|---|---|---|---|---|---|---|---|"]
    for task, space, method, n_arch, n, seeds, epochs, minutes, rate in groups:
        out.append(f"| {task} | {space} | {method} | {n_arch} | {n} | {seeds} | {epochs} | "
                   f"{_fmt(minutes, 1)} | {_fmt(rate, 1) if rate else '–'} |")
    for (task,) in store.fetchall("SELECT DISTINCT task FROM evaluations ORDER BY 1"):
        res = store.query(task=task, limit=0)
        m = res.metric
        rows = [dict(zip(res.columns, r)) for r in res.rows()]
        if not rows:
            continue
        fixed = references()
        ref = [r for r in rows if r["space"] in fixed]
        rows = [r for r in rows if r["space"] not in fixed] or rows
        best = max(rows, key=lambda r: (r[f"val_{m}"] or -1.0))
        out += ["", f"**{task}** (metric: {m}; selection by mean validation {m} over seeds):",
                "", f"- best architecture: `{best['space']}` `{best['arch_id']}` "
                    + _result(best, m) + _per_class_test(store, task, best, m)]
        for old in res.limits.get("hidden", ()):  # a superseded space's best, for the record
            for r in [dict(zip(res.columns, r)) for r in store.query(
                    task=task, space=old, limit=1).rows()]:
                out.append(f"- best of the superseded `{old}` (left out above): "
                           f"`{r['arch_id']}` " + _result(r, m))
        if ref or not task.startswith("msd/"):
            for r in ref[:1]:
                what = SPACES[r["space"]].description.split(":")[0]
                out.append(f"- reference, {what}: `{r['space']}` `{r['arch_id']}` "
                           + _result(r, m)
                           + _per_class_test(store, task, r, m))
        else:  # the MSD tasks' nnU-Net-style reference
            out.append("- DynUNet reference: not trained yet")
        if task == "msd/hippocampus":
            out.append("- for comparison, nnU-Net's published hippocampus Dice (anterior / "
                       "posterior): about 0.90 / 0.89, with its own recipe (1,000 epochs), not "
                       "this benchmark's 40 epochs and split")
        from medbench.validation_report import groups, split_hygiene, summary_lines, \
            validate_task

        out += ["- validation report (`medbench report validation`; figures in "
                "[reports/validation](reports/validation/validation.md)), per space and "
                "training method:"]
        hygiene = split_hygiene(store, task)
        for space, method in groups(store, task):
            out += ["  " + line for line in summary_lines(validate_task(
                store, task, space=space, method=method, hygiene=hygiene))]
        for (args,) in store.fetchall(
                "SELECT args FROM runs WHERE builder = 'builders.hardware' AND args LIKE "
                "'{\"fit_lut%' AND run_id IN (SELECT run_id FROM latency_lut WHERE task = ?) "
                "ORDER BY run_id", [task]):
            import json

            for fit in json.loads(args)["fit_lut"]:
                if "mape_pct" in fit:
                    tau = fit["kendall_tau"]
                    space = f" of {fit['space']}" if "space" in fit else ""
                    out.append(f"- latency lookup table{space} on {fit['device']} "
                               f"({fit['runtime']}, "
                               f"{fit['threads']} thread(s)): MAPE {fit['mape_pct']:.1f} %, "
                               f"Kendall tau {_fmt(tau, 3)} over {fit['n']} measured "
                               f"networks; overhead {fit['overhead_ms']:.2f} ms")
        out += _hardware_lines(store, task)
        every = [dict(zip(res.columns, r)) for r in store.query(
            task=task, method="all", device=res.device, limit=0).rows()]
        lat = [r for r in every if r["latency_ms"] is not None]
        if lat and res.device:
            shown = "/".join(sorted({r["method"] for r in rows}))  # the query's default
            fast = min(lat, key=lambda r: r["latency_ms"])
            how = Counter((r["method"], r["latency_method"]) for r in lat)
            out.append(f"- latency on {res.device} ({res.runtime}, {res.threads} thread(s), "
                       f"batch {res.batch}): {len(lat)} architectures with results and a "
                       "latency, by method and how it was obtained: " + ", ".join(
                           f"{n} {method} {lm}" for (method, lm), n in sorted(how.items()))
                       + "; fastest "
                       f"{_fmt(fast['latency_ms'], 2)} ms (`{fast['arch_id']}`, "
                       f"{fast['method']}); {sum(r['latency_ms'] is None for r in rows)} of "
                       f"the {len(rows)} {shown} ones have none there")
            if task.startswith("msd/"):
                edge = [r for r in rows if r["latency_ms"] is not None
                        and r["latency_ms"] <= 4.0]
                others = sum(r["latency_ms"] <= 4.0 for r in lat) - len(edge)
                top = max(edge, key=lambda r: r[f"val_{m}"] or -1.0) if edge else None
                out.append(f"- within 4 ms there (`medbench query --task {task} --max-latency "
                           f"4ms`): {len(edge)} {shown} architectures" + (
                               f", the best by validation `{top['arch_id']}` "
                               f"({top['n_seeds']} seeds): val {_fmt(top[f'val_{m}'])}, test "
                               f"{_fmt(top[f'test_{m}'])}, {_fmt(top['latency_ms'], 2)} ms"
                               if top else "") + (
                               f"; {others} more of other methods (`--method all`)"
                               if others else ""))
    dist = store.fetchall("""
        SELECT method, task_a, task_b, distance, n_samples_a, n_samples_b FROM task_distances
        WHERE task_a < task_b OR task_b LIKE 'pooled-%' ORDER BY ALL""")
    if dist:
        out += ["", "### Distances between data sets (`task_distances`)", "",
                "| method | task a | task b | Fréchet distance | samples a | samples b |",
                "|---|---|---|---|---|---|"]
        out += [f"| {m} | {a} | {b} | {d:.3f} | {na} | {nb} |"
                for m, a, b, d, na, nb in dist]
    from medbench.recommend import leave_one_out

    loo = [(f"{space} ({method})", r) for space, method in store.fetchall(
        "SELECT DISTINCT space, method FROM evaluations ORDER BY 1, 2")
           for r in leave_one_out(store, space, method)]
    if loo:
        out += ["", "### Recommendation, leave one data set out (`medbench recommend`)", "",
                "Test metric on each data set of the architecture recommended from its nearest "
                "other data set, against a random architecture (mean), the largest and the "
                "best:", "", "| space | data set | nearest | metric | recommended | random | "
                "largest | best | architectures |", "|---|---|---|---|---|---|---|---|---|"]
        out += [f"| {sp} | {r['task']} | {r['source']} | {r['metric']} | "
                f"{_fmt(r['recommended'], 3)} | {_fmt(r['random'], 3)} | "
                f"{_fmt(r['largest'], 3)} | {_fmt(r['best'], 3)} | {r['n_archs']} |"
                for sp, r in loo]
    from medbench import supernet_report

    trust_rows = supernet_report.trust(store)
    if trust_rows:
        out += ["", "### Supernet against standalone training", "",
                "From `medbench report supernet-trust` (plots in "
                "[reports/supernet](reports/supernet/supernet.md)):", "",
                *supernet_report.table_lines(trust_rows)]
    from medbench.proxy_report import correlations, table_lines

    proxy_rows = correlations(store, bootstrap=1000)
    if proxy_rows:
        out += ["", "### Zero-cost proxies against trained results", "",
                "From `medbench report proxies` (figures in "
                "[reports/proxies](reports/proxies/proxies.md)): rank correlation of each "
                "proxy (mean over its seeds) with the mean validation metric (per method: "
                "standalone training, or the accuracy a subnet inherits from its supernet), "
                "95 % bootstrap "
                "intervals over architectures, top-10 % precision, and the proxy's own "
                "seed-to-seed Spearman. With few architectures the intervals are wide; read "
                "them before the point values.", "", *table_lines(proxy_rows)]
    return "\n".join(out) + "\n"


def _energy_lines(store) -> list[str]:
    """Per device: how its hardware rows got their energy, the power behind it, and why rows
    have none."""
    rows = store.fetchall("""
        SELECT h.device, count(*), count(h.energy_mj) FILTER (WHERE h.energy_method = 'nvml'),
               count(h.energy_mj) FILTER (WHERE h.energy_method = 'rapl'),
               count(h.energy_mj) FILTER (WHERE h.energy_method = 'tdp_model'),
               count(*) FILTER (WHERE h.energy_mj IS NULL), any_value(d.tdp_w),
               any_value(d.tdp_cores), any_value(d.tdp_source), any_value(d.kind)
        FROM hardware h LEFT JOIN devices d USING (device) GROUP BY ALL ORDER BY 1""")
    if not rows:
        return []
    out = ["", "### Energy per device (`hardware.energy_method`, `devices.tdp_source`)", "",
           "| device | rows | nvml | rapl | tdp_model | no energy | W per core (model) | "
           "TDP source |", "|---|---|---|---|---|---|---|---|"]
    for device, n, nvml, rapl, model, none, tdp, cores, source, kind in rows:
        if none and tdp is None:
            source = ("none: a GPU without an NVML energy counter" if kind == "gpu" else
                      "none: no reference part for this CPU and no --tdp-watts given "
                      "(`python -m builders.energy --device ... --tdp-watts W`)")
        per_core = _fmt(tdp / cores, 3) if tdp is not None else "–"
        out.append(f"| {device} | {n} | {nvml} | {rapl} | {model} | {none} | {per_core} | "
                   f"{source or '–'} |")
    return out


def _hardware_lines(store, task: str) -> list[str]:
    """Throughput of the latency builder and the noise of its control network, per device."""
    import json

    out = []
    rows = store.fetchall("""
        SELECT r.device, r.args, r.seconds, count(DISTINCT h.arch_id)
        FROM runs r JOIN hardware h USING (run_id)
        WHERE r.builder = 'builders.hardware' AND h.task = ? AND r.status = 'ok'
        GROUP BY ALL ORDER BY ALL""", [task])
    per_device: dict[str, dict] = {}
    for device, args, seconds, n in rows:
        d = per_device.setdefault(device, {"seconds": 0.0, "archs": 0, "control": {}})
        d["seconds"] += seconds or 0.0
        d["archs"] += n
        for setting, stats in (json.loads(args or "{}").get("control") or {}).items():
            if isinstance(stats, dict):
                d["control"].setdefault(setting, []).append(stats)
    for device, d in per_device.items():
        if d["seconds"] > 0:
            out.append(f"- latency builder on {device}: {d['archs']} architectures in "
                       f"{d['seconds']:.0f} s ({3600 * d['archs'] / d['seconds']:.0f} per "
                       "hour, every runtime and thread setting)")
        noise = []
        for setting, stats in sorted(d["control"].items()):
            medians = [s["median_ms"] for s in stats]
            spread = max(s["p90_ms"] / s["p10_ms"] for s in stats)
            noise.append(f"{setting} median {min(medians):.2f}-{max(medians):.2f} ms over "
                         f"{len(stats)} chunk(s), p90/p10 up to {spread:.2f}")
        if noise:
            out.append(f"- noise on {device}, from the control network measured in every "
                       f"chunk (runtime/threads, 0 = all cores): " + "; ".join(noise))
    return out


def splice(document: str, section: str) -> str:
    """``document`` with the text between the markers replaced by ``section``."""
    if START not in document or END not in document:
        raise MedbenchError("DATASHEET.md has no generated-section markers")
    head, rest = document.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{section}{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m medbench.datasheet",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--tables", default=None)
    ap.add_argument("--write", default=None, help="splice into this DATASHEET.md")
    args = ap.parse_args(argv)
    import medbench

    try:
        with medbench.open(args.tables) as store:
            section = generate(store)
        if args.write:
            path = Path(args.write)
            path.write_text(splice(path.read_text(), section))
        else:
            print(section, end="")
    except MedbenchError as e:
        print(f"medbench.datasheet: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
