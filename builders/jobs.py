"""Running builder jobs: crash-safe job folders, resume, run records, progress.

A builder's work folder (``runs/<builder>/<task>/``) holds one folder per finished job under
``jobs/``, each a small tables-format folder (``<table>/<partition>/<run_id>.parquet``) with
every row the job produced, its ``runs`` row included. A job writes into ``staging/<run_id>/``
and the finished folder is renamed into ``jobs/`` in one step, so a killed builder leaves at
most an unfinished staging folder (deleted on the next start) and never a partial or
duplicated job. A rerun skips every job whose folder exists.

A long job may also save its state to ``resume/<key>.pt`` (:meth:`WorkDir.checkpoint`,
written by :func:`save_checkpoint` in one rename) and, when started again after a kill, go
on from there; the file is deleted once the job's folder is committed. (``checkpoints/`` is
a builder's own: the supernet's epochs, which later jobs read.) Such a job notes
``prior_seconds`` (what its earlier attempts spent up to the checkpoint) in ``job.args``, and
its ``runs`` row counts them in ``seconds``.
"""

from __future__ import annotations

import functools
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from medbench.errors import BadValueError, MedbenchError
from medbench.release import write_rows

__all__ = ["Job", "WorkDir", "git_commit", "torch_device", "torch_threads", "device_name",
           "run_jobs", "finish", "save_checkpoint", "at_least", "add_backend_args",
           "read_job_meta"]


@dataclass(frozen=True)
class Job:
    """One unit of work: ``key`` names it uniquely within its work folder."""

    key: str
    args: dict


def git_commit() -> str | None:
    """Commit of the repository the builder runs from ('+dirty' if it has changes)."""
    try:
        here = Path(__file__).resolve().parent
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True,
                             text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", ":/medbench", ":/builders"],
                               cwd=here, capture_output=True, text=True, timeout=10).stdout
        return (sha + ("+dirty" if dirty.strip() else "")) or None
    except (OSError, subprocess.SubprocessError):
        return None


def torch_device(name: str | None) -> str:
    """The torch device a builder's ``--device`` asks for: cuda where there is one when not
    given; anything but cpu/cuda[:N], or cuda on a machine without it, is a BadValueError."""
    import torch

    if name is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.split(":")[0] not in ("cpu", "cuda"):
        raise BadValueError(f"--device must be cpu or cuda, got {name!r}")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise BadValueError("--device cuda: no CUDA device on this machine")
    return name


def torch_threads(args) -> int:
    """Torch threads per job by the builders' rule, set in this process: ``--threads``, else
    1 where jobs run side by side (``--workers`` > 1 or Ray), else 0 (all cores, not set)."""
    threads = args.threads or (1 if args.workers > 1 or args.backend == "ray" else 0)
    if threads:
        import torch

        torch.set_num_threads(threads)
    return threads


@functools.lru_cache(maxsize=None)
def device_name(device: str) -> str:
    """The id of the device a job runs on, as ``devices.device`` spells it (e.g.
    ``amd-epyc-f26m2-avx512f-2c``; the GPU's model for ``cuda``): one vocabulary for
    ``runs.device``, ``evaluations.device`` and the hardware tables. Probed once per process
    and device (builders call it for every row they write). Runs before 2026-12-05
    wrote ``cpu: <model> (<n> threads)`` here; their rows keep it."""
    from builders.measure.device import probe_device

    return probe_device(cuda=device.startswith("cuda"))["device"]


def read_job_meta(path: Path) -> dict:
    """A job folder's ``job.json``; a damaged one is a MedbenchError naming it (it is written
    before the folder's rename, so only damage after the fact makes one)."""
    try:
        meta = json.loads(path.read_text())
        if isinstance(meta, dict) and isinstance(meta.get("key"), str) and \
                meta.get("status") in ("ok", "failed"):
            return meta
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        pass
    raise MedbenchError(f"{path} is damaged: move its job folder out of the work folder")


class WorkDir:
    """The work folder of one builder and task."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.jobs = self.root / "jobs"
        self.staging = self.root / "staging"
        self.resume = self.root / "resume"

    def checkpoint(self, key: str) -> Path:
        """Where job ``key`` keeps its state between attempts (kept across restarts)."""
        return self.resume / f"{key}.pt"

    def prepare(self) -> None:
        """Create the folders and delete what a killed run left in staging."""
        self.jobs.mkdir(parents=True, exist_ok=True)
        if self.staging.exists():
            shutil.rmtree(self.staging)
        self.staging.mkdir(parents=True)

    def finished(self) -> dict[str, str]:
        """Key -> status ("ok" or "failed") of every job folder."""
        out = {}
        if self.jobs.exists():
            for d in self.jobs.iterdir():
                meta = d / "job.json"
                if meta.exists():
                    m = read_job_meta(meta)
                    out[m["key"]] = m["status"]
        return out

    def done(self) -> set[str]:
        """Keys of finished jobs (ok or failed)."""
        return set(self.finished())

    def ok(self) -> set[str]:
        """Keys of jobs that finished without error."""
        return {k for k, status in self.finished().items() if status == "ok"}

    def commit(self, run_id: str, key: str, rows: dict[str, list[dict]], status: str) -> Path:
        """Write a job's rows to staging, then move the folder into ``jobs/`` in one rename."""
        stage = self.staging / run_id
        for table, table_rows in rows.items():
            if table_rows:
                write_rows(stage, table, table_rows, run_id)
        (stage / "job.json").write_text(json.dumps({"key": key, "run_id": run_id,
                                                    "status": status}))
        fd = os.open(stage, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        final = self.jobs / run_id
        os.rename(stage, final)
        return final


def save_checkpoint(path: Path, state: dict) -> None:
    """Write a job's state with ``torch.save`` to a temporary file, then rename it over
    ``path`` in one step: a kill leaves the previous checkpoint or the new one, never half."""
    import io

    import torch

    from medbench.manifest import atomic_write_bytes

    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write_bytes(path, buf.getvalue())


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def _attempt(run: Callable[[Job, str], dict[str, list[dict]]], job: Job, run_id: str) -> dict:
    """Run one job where the backend puts it; never raises (a failure is a result)."""
    started, t0 = _now(), time.perf_counter()
    try:
        rows = run(job, run_id)
        status, error = "ok", None
    except Exception as e:  # noqa: BLE001 - a failed job is recorded, not fatal
        rows, status = {}, "failed"
        error = (traceback.format_exception_only(type(e), e)[-1].strip())[:500]
    # job.args comes back too: a job may note facts about its run there (runs.args), such as
    # the seconds its earlier, checkpointed attempts spent.
    seconds = time.perf_counter() - t0 + float(job.args.get("prior_seconds", 0.0))
    return {"rows": rows, "status": status, "error": error, "started": started,
            "finished": _now(), "seconds": seconds, "args": job.args}


def _failed(job: Job, error: BaseException) -> dict:
    """The result of a job whose worker died (the backend raised instead of returning)."""
    text = (traceback.format_exception_only(type(error), error)[-1].strip())[:500]
    now = _now()
    return {"rows": {}, "status": "failed", "error": f"worker lost: {text}", "started": now,
            "finished": now, "seconds": 0.0, "args": job.args}


BACKENDS = ("local", "ray")


def _exit_with_parent(parent: int, every: float = 0.5) -> None:
    """In a pool worker: end this process once ``parent`` is gone (a killed builder)."""
    import threading

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(every)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def _execute(todo: list[tuple[Job, str]], run, backend: str, workers: int,
             cpus_per_job: float, on_start: Callable[[Job], None] = lambda job: None,
             ) -> Iterator[tuple[Job, str, dict]]:
    """Yield ``(job, run_id, result)`` as jobs finish, on the chosen backend.

    ``local`` with one worker runs jobs in this process, in order; with more, in a pool of
    worker processes (``run`` must then pickle: a module-level function or a partial of one).
    ``ray`` submits Ray tasks to the cluster at ``$RAY_ADDRESS``, or to a local one started
    here; ``workers`` bounds the jobs in flight and each task reserves ``cpus_per_job``.
    Whatever the backend, only this process commits job folders. ``on_start(job)`` is
    called as each job is started or submitted.
    """
    if backend not in BACKENDS:
        raise BadValueError(f"unknown backend {backend!r}; use one of {', '.join(BACKENDS)}")
    if workers < 1:
        raise BadValueError(f"--workers must be at least 1 (got {workers})")
    if backend == "local" and workers == 1:
        for job, run_id in todo:
            on_start(job)
            yield job, run_id, _attempt(run, job, run_id)
        return
    if backend == "local":
        import multiprocessing
        from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

        # spawn: torch and fork do not mix; every worker imports the builder afresh. Workers
        # end with this process, however it ends (their results could not be committed).
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                 initializer=_exit_with_parent, initargs=(os.getpid(),)) as pool:
            pending = {}
            for job, run_id in todo:
                on_start(job)
                pending[pool.submit(_attempt, run, job, run_id)] = (job, run_id)
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    job, run_id = pending.pop(future)
                    try:
                        result = future.result()
                    except Exception as e:  # noqa: BLE001 - a crashed worker process
                        result = _failed(job, e)
                    yield job, run_id, result
        return
    yield from _execute_ray(todo, run, workers, cpus_per_job, on_start)


def _execute_ray(todo, run, workers: int, cpus_per_job: float, on_start):
    try:
        import ray
    except ImportError:
        raise BadValueError("--backend ray needs Ray: pip install 'medbench[ray]'") from None
    started_here = not ray.is_initialized()
    if started_here:
        address = os.environ.get("RAY_ADDRESS")
        kwargs = {} if address else {"num_cpus": max(1, int(workers * cpus_per_job))}
        ray.init(address=address, include_dashboard=False, log_to_driver=False, **kwargs)
    try:
        task = ray.remote(num_cpus=cpus_per_job, max_retries=0)(_attempt)
        queue, pending = list(todo), {}
        while queue or pending:
            while queue and len(pending) < workers:
                job, run_id = queue.pop(0)
                on_start(job)
                pending[task.remote(run, job, run_id)] = (job, run_id)
            done, _ = ray.wait(list(pending), num_returns=1)
            job, run_id = pending.pop(done[0])
            try:
                result = ray.get(done[0])
            except Exception as e:  # noqa: BLE001 - a worker that died
                result = _failed(job, e)
            yield job, run_id, result
    finally:
        if started_here:
            ray.shutdown()


def run_jobs(work: WorkDir, jobs: Iterable[Job], run: Callable[[Job, str], dict[str, list[dict]]],
             *, builder: str, version: str, device: str, retry_failed: bool = True,
             describe: Callable[[Job], str] = lambda j: j.key, backend: str = "local",
             workers: int = 1, cpus_per_job: float = 1, limit: int = 0) -> dict:
    """Run the jobs not finished yet, committing each one as soon as it finishes.

    Args:
        work: the work folder.
        jobs: every job of the build; finished ones are skipped.
        run: ``run(job, run_id) -> {table: rows}``; a raised exception records a failed run.
        builder, version, device: written to each job's ``runs`` row.
        retry_failed: run again jobs whose earlier attempt failed.
        describe: a short label of a job for the progress bar.
        backend: ``local`` (this process, or a process pool) or ``ray``; see :func:`_execute`.
        workers: jobs run at the same time.
        cpus_per_job: CPUs a Ray task reserves.
        limit: run at most this many of the unfinished jobs (0: all), for builds in chunks.

    Returns:
        Counts: ``{"ran": n, "ok": n, "failed": n, "skipped": n, "seconds": s}``.

    Raises:
        MedbenchError: when jobs ran and every one failed (their failed runs are committed
            first), so a builder whose every job fails ends with exit code 2, not 0.
    """
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    work.prepare()
    jobs = list(jobs)
    finished = work.ok() if retry_failed else work.done()
    todo = [j for j in jobs if j.key not in finished]
    counts = {"ran": 0, "ok": 0, "failed": 0, "skipped": len(jobs) - len(todo), "seconds": 0.0}
    if limit:
        todo = todo[:limit]
    commit = git_commit()
    # Unique across builds: two builds of one builder (say two tasks) started in the same
    # second once gave their jobs of equal keys one run id; a random token tells them apart.
    stamp = f"{_now():%Y%m%dT%H%M%S}-{secrets.token_hex(2)}"
    named = [(job, f"{builder.split('.')[-1]}-{job.key}-{stamp}") for job in todo]
    first_error = None
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn(
            "{task.completed}/{task.total}"), TimeElapsedColumn()) as bar:
        task = bar.add_task(builder, total=len(todo))
        started = lambda job: bar.update(task, description=f"{builder} {describe(job)}")  # noqa: E731
        for job, run_id, r in _execute(named, run, backend, workers, cpus_per_job, started):
            rows = r["rows"]
            n_rows = sum(len(v) for k, v in rows.items() if k not in ("runs",))
            rows.setdefault("runs", []).append({
                "run_id": run_id, "builder": builder, "builder_version": version,
                "git_commit": commit, "args": json.dumps(r["args"], sort_keys=True),
                "seed": job.args.get("seed"), "device": device, "status": r["status"],
                "error": r["error"], "started_at": r["started"], "finished_at": r["finished"],
                "seconds": r["seconds"], "rows_written": n_rows})
            work.commit(run_id, job.key, rows, r["status"])
            if r["status"] == "ok":
                work.checkpoint(job.key).unlink(missing_ok=True)
            counts["ran"] += 1
            counts[r["status"]] += 1
            counts["seconds"] += r["seconds"]
            first_error = first_error or r["error"]
            bar.advance(task)
    if counts["ran"] and not counts["ok"]:
        raise MedbenchError(f"all {counts['ran']} job(s) failed, e.g. {first_error} "
                            f"(their runs rows are in {work.jobs})")
    return counts


def finish(prog: str, build: Callable[[], dict]) -> int:
    """How every builder's ``main`` ends: run ``build``, which returns the build's summary;
    print it as one JSON line and return 0, or, on a MedbenchError, print one line on
    stderr (``prog: error: ...``) and return 2."""
    try:
        summary = build()
    except MedbenchError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(summary))
    return 0


def at_least(minimum: float, kind: type = int):
    """An argparse ``type`` that reads a number of ``kind`` and refuses one below ``minimum``
    (or NaN, or an infinite one) with argparse's usage error (exit code 2)."""
    import argparse
    import math

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not math.isfinite(value) or value < minimum:
            raise argparse.ArgumentTypeError(f"must be a finite number >= {minimum:g}: {text}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


def add_backend_args(ap) -> None:
    """The ``--backend`` and ``--workers`` options every builder shares."""
    ap.add_argument("--backend", choices=BACKENDS, default="local",
                    help="where jobs run: this machine (default) or a Ray cluster "
                         "($RAY_ADDRESS, else a local one)")
    ap.add_argument("--workers", type=at_least(1), default=1,
                    help="jobs at the same time (local: worker processes; ray: tasks in flight)")
