"""SIGKILL a builder at random moments, many times: no finished job lost, no duplicate row,
no partial file visible to readers, and the release stays valid after every kill."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from builders.release import release
from medbench.validate import validate

# the slow tier: it kills and resumes training builds
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
N_JOBS = 40
KILLS = 20


def finished(work: Path) -> dict[str, str]:
    out = {}
    for d in (work / "jobs").iterdir() if (work / "jobs").exists() else ():
        meta = json.loads((d / "job.json").read_text())  # a job folder is always complete
        assert meta["key"] not in out, f"job {meta['key']} committed twice"
        out[meta["key"]] = d.name
        for f in d.rglob("*.parquet"):
            pq.read_metadata(f)  # every visible file is whole
    return out


def _staging_ctime(work: Path) -> int | None:
    try:
        return (work / "staging").stat().st_ctime_ns
    except FileNotFoundError:
        return None


def check_complete(work: Path, tables: Path) -> None:
    import medbench

    assert len(finished(work)) == N_JOBS
    release(work, tables)
    with medbench.open(tables) as store:
        n_eval, n_keys = store.sql("SELECT count(*), count(DISTINCT (arch_id, seed)) "
                                   "FROM evaluations").fetchall()[0]
        n_curves = store.sql("SELECT count(*) FROM curves").fetchall()[0][0]
    assert n_eval == n_keys == N_JOBS and n_curves == 3 * N_JOBS


def test_sigkill_at_random_moments(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    rng = random.Random(0)
    kills, rounds = 0, 0
    while kills < KILLS:  # a round ends when its build is complete; then a fresh one starts
        work, tables = tmp_path / f"work{rounds}", tmp_path / f"tables{rounds}"
        done: dict[str, str] = {}
        while len(done) < N_JOBS:
            before = _staging_ctime(work)
            proc = subprocess.Popen([sys.executable, str(ROOT / "tests" / "kill_target.py"),
                                     str(work), str(N_JOBS)], env=env,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            # Kill while jobs run (20-80 ms each), however long start-up takes on a busy
            # machine: from when the builder has (re)made its staging folder.
            deadline = time.monotonic() + 60
            while (_staging_ctime(work) == before and proc.poll() is None
                   and time.monotonic() < deadline):
                time.sleep(0.01)
            time.sleep(rng.uniform(0.0, 2.0))
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                kills += 1
            proc.wait()
            now = finished(work)
            assert set(done) <= set(now), "a finished job was lost"
            assert all(now[k] == v for k, v in done.items()), "a finished job was rewritten"
            done = now
            if done:
                release(work, tables)
                report = validate(tables)
                assert report.ok, report.problems
        check_complete(work, tables)
        rounds += 1
    print(f"kills survived: {kills} in {rounds} builds of {N_JOBS} jobs; rows lost: 0, "
          "duplicate rows: 0, partial files seen: 0")


def test_pool_workers_end_with_a_killed_builder(tmp_path):
    """Killing a builder's main process also ends its pool workers (no orphan training)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    pids = tmp_path / "pids"
    pids.mkdir()
    proc = subprocess.Popen([sys.executable, str(ROOT / "tests" / "kill_target.py"),
                             str(tmp_path / "work"), "4", "--pool", str(pids)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while len(list(pids.iterdir())) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    workers = [int(p.read_text()) for p in pids.iterdir()]
    assert len(workers) == 2, "the pool's two workers did not start their jobs"
    proc.send_signal(signal.SIGKILL)
    proc.wait()

    def alive(pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True

    deadline = time.monotonic() + 10
    while any(map(alive, workers)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(map(alive, workers)), "a worker outlived its builder"
