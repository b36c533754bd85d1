"""Running builder jobs: crash-safe job folders, resume, run records, progress.

A builder's work folder (``runs/<builder>/<task>/``) holds one folder per finished job under
``jobs/``, each a small tables-format folder (``<table>/<partition>/<run_id>.parquet``) with
every row the job produced, its ``runs`` row included. A job writes into ``staging/<run_id>/``
and the finished folder is renamed into ``jobs/`` in one step, so a killed builder leaves at
most an unfinished staging folder (deleted on the next start) and never a partial or
duplicated job. A rerun skips every job whose folder exists.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from medbench.release import write_rows

__all__ = ["Job", "WorkDir", "git_commit", "device_name", "run_jobs"]


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


def device_name(device: str) -> str:
    """A short description of the device a job runs on, e.g. ``cpu: AMD EPYC 7B13 (2 threads)``."""
    if device.startswith("cuda"):
        import torch

        return f"cuda: {torch.cuda.get_device_name(torch.device(device))}"
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import torch

    return f"cpu: {model} ({torch.get_num_threads()} threads)"


class WorkDir:
    """The work folder of one builder and task."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.jobs = self.root / "jobs"
        self.staging = self.root / "staging"

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
                    m = json.loads(meta.read_text())
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


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def run_jobs(work: WorkDir, jobs: Iterable[Job], run: Callable[[Job, str], dict[str, list[dict]]],
             *, builder: str, version: str, device: str, retry_failed: bool = True,
             describe: Callable[[Job], str] = lambda j: j.key) -> dict:
    """Run the jobs not finished yet, one at a time, committing each on completion.

    Args:
        work: the work folder.
        jobs: every job of the build; finished ones are skipped.
        run: ``run(job, run_id) -> {table: rows}``; a raised exception records a failed run.
        builder, version, device: written to each job's ``runs`` row.
        retry_failed: run again jobs whose earlier attempt failed.
        describe: a short label of a job for the progress bar.

    Returns:
        Counts: ``{"ran": n, "ok": n, "failed": n, "skipped": n, "seconds": s}``.
    """
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    work.prepare()
    jobs = list(jobs)
    finished = work.ok() if retry_failed else work.done()
    todo = [j for j in jobs if j.key not in finished]
    counts = {"ran": 0, "ok": 0, "failed": 0, "skipped": len(jobs) - len(todo), "seconds": 0.0}
    commit = git_commit()
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn(
            "{task.completed}/{task.total}"), TimeElapsedColumn()) as bar:
        task = bar.add_task(builder, total=len(todo))
        for job in todo:
            bar.update(task, description=f"{builder} {describe(job)}")
            run_id = f"{builder.split('.')[-1]}-{job.key}-{_now():%Y%m%dT%H%M%S}"
            started, t0 = _now(), time.perf_counter()
            try:
                rows = run(job, run_id)
                status, error = "ok", None
            except Exception as e:  # noqa: BLE001 - a failed job is recorded, not fatal
                rows, status = {}, "failed"
                error = (traceback.format_exception_only(type(e), e)[-1].strip())[:500]
            seconds = time.perf_counter() - t0
            n_rows = sum(len(v) for k, v in rows.items() if k not in ("runs",))
            rows.setdefault("runs", []).append({
                "run_id": run_id, "builder": builder, "builder_version": version,
                "git_commit": commit, "args": json.dumps(job.args, sort_keys=True),
                "seed": job.args.get("seed"), "device": device, "status": status,
                "error": error, "started_at": started, "finished_at": _now(),
                "seconds": seconds, "rows_written": n_rows})
            work.commit(run_id, job.key, rows, status)
            counts["ran"] += 1
            counts[status] += 1
            counts["seconds"] += seconds
            bar.advance(task)
    return counts
