"""A builder for the kill test: run_jobs over synthetic jobs that take a few tens of ms.

    python tests/kill_target.py WORK N_JOBS

The rows are made up to exercise the commit path; they are never benchmark content.
"""

import sys
import time

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


if __name__ == "__main__":
    work, n = WorkDir(sys.argv[1]), int(sys.argv[2])
    jobs = [Job(f"{i}-s{s}", {"arch": f"a{i}", "index": i, "seed": s})
            for i in range(n // 2) for s in (0, 1)]
    run_jobs(work, jobs, run, builder="tests.kill_target", version="0", device="test")
