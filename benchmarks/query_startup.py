"""Cold-start cost of ``medbench query`` against ``python -c "import duckdb"``, side by side.

Builds a synthetic stress release (never shipped: it lives in ``benchmarks/_work/``) with
1,000,000 evaluation rows (architectures x 3 seeds) spread evenly over ``--tasks`` tasks, and
one hardware and one costs row per architecture and task; then alternates cold processes of
the commands and reports medians, their ratio to ``import duckdb`` and the peak RSS of each.
``medbench query`` is timed piped (plain text output) and on a pseudo-terminal (rich table).
Processes start with medbench's bytecode compiled, as after ``pip install``.

    python benchmarks/query_startup.py [--rows 1000000] [--tasks 1] [--repeats 15]

``--tasks 1`` is the worst case: the query aggregates all 1 M rows. With ``--tasks 28`` (every
catalogued task) the query reads only its task's files, as it does in a partitioned release.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORK = HERE / "_work" / "stress_tables"


def build(root: Path, n_rows: int, n_tasks: int) -> None:
    from medbench.catalog import TASKS
    from medbench.release import write_manifest, write_rows

    tasks = ["msd/hippocampus", *sorted(t for t in TASKS if t != "msd/hippocampus")][:n_tasks]
    run = "stress-run"
    write_rows(root, "runs", [{"run_id": run, "builder": "benchmarks.query_startup",
                               "builder_version": "0", "status": "ok"}], "stress")
    write_rows(root, "devices", [{"device": "stress-cpu", "kind": "cpu", "run_id": run}],
               "stress")
    n_arch = -(-n_rows // (3 * n_tasks))
    arch_ids = [f"stress-{i:07d}" for i in range(n_arch)]
    import pyarrow as pa

    write_rows(root, "architectures", pa.table({
        "space": ["unet3d"] * n_arch, "arch_id": arch_ids,
        "arch_index": pa.array(range(n_arch), pa.int64()), "config": ["{}"] * n_arch,
        "run_id": [run] * n_arch}), "stress")
    for k, task in enumerate(tasks):
        _build_task(root, task, arch_ids, min(3 * n_arch, n_rows - k * 3 * n_arch), run, k)
    write_manifest(root)


def _build_task(root: Path, task: str, arch_ids: list[str], n_rows: int, run: str,
                seed: int) -> None:
    import numpy as np
    import pyarrow as pa

    from medbench.release import write_rows

    rng = np.random.default_rng(seed)
    n_arch = len(arch_ids)
    arch_ids = np.array(arch_ids, dtype=object)
    space = "unet3d"
    seeds = np.repeat(np.arange(3, dtype=np.int32)[None, :], n_arch, 0).ravel()[:n_rows]
    ids = np.repeat(arch_ids, 3)[:n_rows]
    quality = rng.uniform(0.5, 0.9, n_arch)
    val = np.clip(np.repeat(quality, 3)[:n_rows] + rng.normal(0, 0.01, n_rows), 0, 1)
    test = np.clip(val + rng.normal(0, 0.01, n_rows), 0, 1)
    latency = rng.lognormal(2.0, 0.8, n_arch)
    collection, name = task.split("/")
    write_rows(root, "tasks", [{"task": task, "collection": collection, "name": name,
                                "dims": 3, "label_kind": "segmentation", "n_classes": 3,
                                "metric": "dice", "run_id": run}], f"stress-{seed}")
    n = len(arch_ids)
    col = lambda v, t=None: pa.array(v, t)  # noqa: E731
    write_rows(root, "evaluations", pa.table({
        "space": col([space] * n_rows), "arch_id": col(ids, pa.string()),
        "task": col([task] * n_rows), "method": col(["standalone"] * n_rows),
        "seed": col(seeds), "epochs": col(np.full(n_rows, 40, np.int32)),
        "val_dice": col(val), "test_dice": col(test),
        "train_seconds": col(rng.uniform(100, 900, n_rows)), "run_id": col([run] * n_rows)}),
        f"stress-{seed}")
    write_rows(root, "costs", pa.table({
        "space": col([space] * n), "arch_id": col(arch_ids, pa.string()),
        "task": col([task] * n), "params": col(rng.integers(1e4, 3e7, n), pa.int64()),
        "run_id": col([run] * n)}), f"stress-{seed}")
    write_rows(root, "hardware", pa.table({
        "space": col([space] * n), "arch_id": col(arch_ids, pa.string()),
        "task": col([task] * n), "device": col(["stress-cpu"] * n),
        "runtime": col(["onnxruntime"] * n), "threads": col(np.ones(n, np.int32)),
        "batch": col(np.ones(n, np.int32)), "latency_ms": col(latency),
        "latency_method": col(["measured"] * n), "energy_mj": col(latency * 5.0),
        "energy_method": col(["estimated"] * n), "run_id": col([run] * n)}), f"stress-{seed}")


def timed(cmd: list[str], env: dict, tty: bool = False) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one cold process (stdout a pseudo-terminal if tty)."""
    import pty
    import threading

    if tty:
        master, slave = pty.openpty()
        drain = threading.Thread(target=_drain, args=(master,), daemon=True)
        drain.start()
        env = {**env, "COLUMNS": "200"}
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=slave if tty else subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if tty:
        os.close(slave)
        drain.join(1)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {proc.stderr.read().decode()[-500:]}")
    return wall, usage.ru_maxrss / 1024


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 65536):
            pass
    except OSError:
        pass
    finally:
        os.close(fd)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--tasks", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--build-only", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    work = WORK.with_name(f"stress_{args.rows}_{args.tasks}")
    if args.build_only:
        build(work, args.rows, args.tasks)
        return
    if not (work / "MANIFEST.json").exists():
        import shutil

        shutil.rmtree(work, ignore_errors=True)
        t = time.perf_counter()
        # In a child process: a forked child's peak RSS counts the parent's pages at fork.
        subprocess.run([sys.executable, __file__, "--build-only", "--rows", str(args.rows),
                        "--tasks", str(args.tasks)], check=True)
        print(f"built stress tables ({args.rows} evaluation rows over {args.tasks} task(s)) "
              f"in {time.perf_counter() - t:.1f} s")
    # Cold processes as an installed medbench starts them: with its modules' bytecode (pip
    # compiles it at install; an editable install writes it on first run), even where the
    # environment says PYTHONDONTWRITEBYTECODE, which would compile every module every run.
    import compileall

    import medbench

    compileall.compile_dir(Path(medbench.__file__).parent, quiet=1)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["MEDBENCH_TABLES"] = str(work)
    medbench = str(Path(sys.executable).with_name("medbench"))
    q = [medbench, "query", "--task", "hippocampus", "--max-latency", "4ms"]
    commands = {
        "import duckdb": ([sys.executable, "-c", "import duckdb"], False),
        "medbench query (piped)": (q, False),
        "medbench query (terminal)": (q, True),
        "medbench query --pareto csv": ([*q[:4], "--pareto", "--limit", "0", "--format", "csv"],
                                        False),
    }
    samples: dict[str, list[tuple[float, float]]] = {k: [] for k in commands}
    for cmd, tty in commands.values():  # warm the page cache once
        timed(cmd, env, tty)
    for _ in range(args.repeats):
        for name, (cmd, tty) in commands.items():
            samples[name].append(timed(cmd, env, tty))
    base = statistics.median(w for w, _ in samples["import duckdb"])
    print(f"{args.rows} evaluation rows over {args.tasks} task(s), {args.repeats} repeats")
    print(f"{'command':30s} {'median ms':>10s} {'ratio':>6s} {'peak RSS MB':>12s}")
    for name, s in samples.items():
        wall = statistics.median(w for w, _ in s)
        rss = max(r for _, r in s)
        print(f"{name:30s} {wall * 1e3:10.1f} {wall / base:6.2f} {rss:12.1f}")


if __name__ == "__main__":
    main()
