"""A builder for the kill test: run_jobs over synthetic jobs that take a few tens of ms.

    python tests/kill_target.py WORK N_JOBS
    python tests/kill_target.py WORK N_JOBS --pool PID_DIR  # 2 workers; jobs write pid, sleep

The rows are made up to exercise the commit path; they are never benchmark content.
"""

import os
import sys
import time
from functools import partial
from pathlib import Path

from builders.jobs import Job, WorkDir, run_jobs


def run(job, run_id):
    time.sleep(0.02 + 0.03 * (hash(job.key) % 3))
    seed = job.args["seed"]
    key = {"space": "unet3d", "arch_id": job.args["arch"], "task": "msd/hippocampus",
           "method": "standalone", "seed": seed}
    curves = [{**key, "epoch": e, "val_dice": 0.1 * e, "elapsed_seconds": float(e),
               "run_id": run_id} for e in range(1, 4)]
    return {"evaluations": [{**key, "epochs": 3, "val_dice": 0.3, "run_id": run_id}],
            "curves": curves,
            "tasks": [{"task": "msd/hippocampus", "collection": "msd", "name": "hippocampus",
                       "dims": 3, "label_kind": "segmentation", "n_classes": 3,
                       "metric": "dice", "run_id": run_id}],
            "architectures": [{"space": "unet3d", "arch_id": job.args["arch"],
                               "arch_index": job.args["index"], "config": "{}",
                               "run_id": run_id}]}


def sleeper(job, run_id, pid_dir):
    (Path(pid_dir) / job.key).write_text(str(os.getpid()))
    time.sleep(120)
    return run(job, run_id)


if __name__ == "__main__":
    work, n = WorkDir(sys.argv[1]), int(sys.argv[2])
    jobs = [Job(f"{i}-s{s}", {"arch": f"a{i}", "index": i, "seed": s})
            for i in range(n // 2) for s in (0, 1)]
    pool = sys.argv[4] if sys.argv[3:4] == ["--pool"] else None
    run_jobs(work, jobs, partial(sleeper, pid_dir=pool) if pool else run,
             builder="tests.kill_target", version="0", device="test", workers=2 if pool else 1)
