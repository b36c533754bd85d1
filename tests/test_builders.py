"""Builders on a tiny synthetic MSD task: checksums, split, training jobs, resume, release.

The volumes here are random blobs made by the test to exercise code paths; they are never
benchmark content.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from builders.data.msd import load_task, make_split
from medbench.errors import MedbenchError

# the slow tier: they train tiny networks
pytestmark = pytest.mark.slow

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "msd"


def test_split_is_deterministic_disjoint_and_complete():
    cases = [f"hippocampus_{i:03d}" for i in range(260)]
    a, b = make_split(cases), make_split(list(reversed(cases)))
    assert a == b
    assert [len(a[p]) for p in ("train", "val", "test")] == [156, 52, 52]
    assert sorted(a["train"] + a["val"] + a["test"]) == sorted(cases)
    assert make_split(cases, seed=1) != a


def test_committed_hippocampus_split():
    committed = json.loads((Path(__file__).resolve().parents[1] / "builders" / "splits"
                            / "msd_hippocampus.json").read_text())
    assert [len(committed[p]) for p in ("train", "val", "test")] == [156, 52, 52]
    everything = committed["train"] + committed["val"] + committed["test"]
    assert len(set(everything)) == 260
    if (SHARED / "Task04_Hippocampus" / "dataset.json").exists():
        meta = json.loads((SHARED / "Task04_Hippocampus" / "dataset.json").read_text())
        cases = [Path(e["image"]).name.split(".")[0] for e in meta["training"]]
        assert make_split(cases) == committed  # the split is reproducible from the data


nib = pytest.importorskip("nibabel")
torch = pytest.importorskip("torch")
pytest.importorskip("monai")


def make_task(root: Path, n_cases: int = 10) -> Path:
    """A tiny MSD-layout task with SHA256SUMS: 12x16x12 volumes, labels 0/1/2."""
    task = root / "Task04_Hippocampus"
    (task / "imagesTr").mkdir(parents=True)
    (task / "labelsTr").mkdir()
    rng = np.random.default_rng(0)
    training = []
    for i in range(n_cases):
        label = np.zeros((12, 16, 12), np.uint8)
        label[3:6, 4:9, 3:7] = 1
        label[6:9, 7:12, 5:9] = 2
        image = (label * 100 + rng.normal(50, 10, label.shape)).astype(np.float32)
        name = f"hippocampus_{i:03d}.nii.gz"
        nib.save(nib.Nifti1Image(image, np.eye(4)), task / "imagesTr" / name)
        nib.save(nib.Nifti1Image(label, np.eye(4)), task / "labelsTr" / name)
        training.append({"image": f"./imagesTr/{name}", "label": f"./labelsTr/{name}"})
    (task / "dataset.json").write_text(json.dumps({
        "name": "Hippocampus", "licence": "test data", "reference": "synthetic",
        "modality": {"0": "MRI"}, "labels": {"0": "background", "1": "Anterior",
                                             "2": "Posterior"},
        "numTraining": n_cases, "training": training}))
    lines = [f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.relative_to(root)}"
             for p in sorted(task.rglob("*")) if p.is_file()]
    (root / "SHA256SUMS").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture
def tiny_msd(tmp_path):
    return make_task(tmp_path / "msd")


def test_load_task_verifies_checksums_and_writes_split(tiny_msd, tmp_path):
    task = load_task("msd/hippocampus", tiny_msd, splits_dir=tmp_path / "s")
    assert task.class_names == ["background", "Anterior", "Posterior"]
    assert [len(task.split[p]) for p in ("train", "val", "test")] == [6, 2, 2]
    assert (tmp_path / "s" / "msd_hippocampus.json").exists()
    again = load_task("msd/hippocampus", tiny_msd, splits_dir=tmp_path / "s")
    assert again.split == task.split and again.split_sha256 == task.split_sha256
    image = tiny_msd / "Task04_Hippocampus" / "imagesTr" / "hippocampus_003.nii.gz"
    image.write_bytes(image.read_bytes() + b"x")
    with pytest.raises(MedbenchError, match="hippocampus_003"):
        load_task("msd/hippocampus", tiny_msd, splits_dir=tmp_path / "s")


def test_unknown_or_missing_task(tmp_path):
    with pytest.raises(MedbenchError, match="not an MSD task"):
        load_task("medmnist/pneumoniamnist", tmp_path)
    with pytest.raises(MedbenchError, match="dataset.json"):
        load_task("msd/hippocampus", tmp_path)


def test_builder_resumes_and_release_is_idempotent(tiny_msd, tmp_path):
    import duckdb

    import medbench
    from builders.release import release
    from builders.unet3d import main
    from medbench.validate import validate

    work, splits = tmp_path / "work", tmp_path / "splits"
    base = ["--data-root", str(tiny_msd), "--archs", "2", "--seeds", "0", "1", "--epochs", "2",
            "--spatial", "32", "32", "32", "--work", str(work), "--splits-dir", str(splits),
            "--threads", "1"]
    from builders.unet3d import VERSION

    jobs = work / "msd_hippocampus" / f"v{VERSION}-e2-32x32x32" / "jobs"
    assert main([*base, "--limit-jobs", "1"]) == 0
    assert len(list(jobs.iterdir())) == 1
    # A killed run leaves a staging folder: the next run removes it and redoes nothing done.
    (jobs.parent / "staging" / "killed-job" / "evaluations").mkdir(parents=True)
    assert main(base) == 0
    assert not (jobs.parent / "staging" / "killed-job").exists()
    keys = [json.loads((d / "job.json").read_text())["key"] for d in jobs.iterdir()]
    assert len(keys) == 4 == len(set(keys))
    assert main(base) == 0  # nothing left: no new job folder
    assert len(list(jobs.iterdir())) == 4

    tables = tmp_path / "tables"
    first = release(jobs.parent, tables)
    assert first["evaluations"] == 4 and first["curves"] == 8 and first["runs"] == 4
    assert first["tasks"] == 1 and first["architectures"] == 2
    assert sum(release(jobs.parent, tables).values()) == 0  # idempotent
    report = validate(tables)
    assert report.ok, report.problems
    with medbench.open(tables) as store:
        rows = store.query(task="hippocampus", limit=0).rows()
        assert len(rows) == 2 and all(r[4] == 2 for r in rows)  # two seeds each
        ev = store.sql("SELECT val_dice, val_dice_per_class, test_hd95_mm, train_seconds, "
                       "epochs FROM evaluations").fetchall()
        for val, per_class, hd, seconds, epochs in ev:
            assert 0.0 <= val <= 1.0 and len(per_class) == 2
            assert val == pytest.approx(sum(per_class) / 2)
            assert hd >= 0 and seconds > 0 and epochs == 2
        runs = store.sql("SELECT status, builder, git_commit, seed FROM runs").fetchall()
        assert {r[0] for r in runs} == {"ok"} and {r[3] for r in runs} == {0, 1}
        task = store.sql("SELECT n_train, n_val, n_test, split_sha256, class_names "
                         "FROM tasks").fetchall()[0]
        assert task[:3] == (6, 2, 2) and task[4] == ["background", "Anterior", "Posterior"]
    assert duckdb.sql(f"SELECT count(*) FROM read_parquet('{tables}/curves/**/*.parquet', "
                      "hive_partitioning=false)").fetchall()[0][0] == 8

    # A fresh checkout has no work folder: the released results are what is done.
    fresh = [*base[:base.index("--work")], "--work", str(tmp_path / "fresh"),
             *base[base.index("--work") + 2:]]
    assert main([*fresh, "--tables", str(tables)]) == 0
    assert not list((tmp_path / "fresh").rglob("job.json"))
    assert main([*fresh, "--tables", str(tables), "--epochs", "1", "--limit-jobs", "1"]) == 0
    assert len(list((tmp_path / "fresh").rglob("job.json"))) == 1  # another recipe: not done


def test_same_seed_gives_the_same_curve(tiny_msd, tmp_path):
    from builders.data.msd import load_task
    from builders.unet3d import Recipe, train_and_evaluate

    task = load_task("msd/hippocampus", tiny_msd, splits_dir=tmp_path / "s")
    recipe = Recipe(epochs=2, spatial_size=(16, 16, 16))
    torch.set_num_threads(1)
    runs = [train_and_evaluate(task, "unet3d", "s1|c4-8-16|k3-3-3|b1-1-1|r0-0-0", 3, recipe,
                               "cpu", "r", {}) for _ in range(2)]
    losses = [[c["train_loss"] for c in r["curves"]] for r in runs]
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)


class Killed(Exception):
    pass


def test_a_killed_job_goes_on_from_its_last_epoch_with_the_same_numbers(tiny_msd, tmp_path,
                                                                         monkeypatch):
    from builders import unet3d
    from builders.unet3d import Recipe, train_and_evaluate

    task = load_task("msd/hippocampus", tiny_msd, splits_dir=tmp_path / "s")
    recipe = Recipe(epochs=3, spatial_size=(16, 16, 16))
    torch.set_num_threads(1)
    arch = "s1|c4-8-16|k3-3-3|b1-1-1|r1-0-0"
    whole = train_and_evaluate(task, "unet3d", arch, 3, recipe, "cpu", "r1", {})

    real = unet3d.save_checkpoint

    def kill_after_epoch_two(path, state):
        real(path, state)
        if state["epoch"] == 2:
            raise Killed

    ckpt = tmp_path / "work" / "resume" / "job.pt"
    monkeypatch.setattr(unet3d, "save_checkpoint", kill_after_epoch_two)
    with pytest.raises(Killed):
        train_and_evaluate(task, "unet3d", arch, 3, recipe, "cpu", "r2", {}, checkpoint=ckpt)
    monkeypatch.undo()
    assert ckpt.is_file() and not list(ckpt.parent.glob("*.tmp"))
    other = {}  # another job's checkpoint (here: another seed) is not taken for this one
    train_and_evaluate(task, "unet3d", arch, 4, Recipe(epochs=1, spatial_size=(16, 16, 16)),
                       "cpu", "r3", {}, checkpoint=tmp_path / "other.pt", notes=other)
    assert other == {}
    notes = {}
    resumed = train_and_evaluate(task, "unet3d", arch, 3, recipe, "cpu", "r4", {},
                                 checkpoint=ckpt, notes=notes)
    assert notes["resumed_from_epoch"] == 2 and notes["prior_seconds"] > 0
    # each attempt's machine, threads, epochs and seconds, summing to the job's seconds
    here = {"device": unet3d.device_name("cpu"), "threads": 1}
    assert [{k: p[k] for k in ("device", "threads", "epochs")} for p in notes["parts"]] == \
        [{**here, "epochs": [1, 2]}, {**here, "epochs": [3, 3]}]
    assert notes["parts"][0]["seconds"] == pytest.approx(notes["prior_seconds"])
    assert notes["parts"][1]["seconds"] > 0
    drop = ("run_id", "elapsed_seconds")
    assert [{k: v for k, v in c.items() if k not in drop} for c in resumed["curves"]] == \
        [{k: v for k, v in c.items() if k not in drop} for c in whole["curves"]]
    assert {c["run_id"] for c in resumed["curves"]} == {"r4"}
    for k in ("val_dice", "test_dice", "test_jaccard", "test_hd95_mm", "test_dice_per_class"):
        assert resumed["evaluations"][0][k] == whole["evaluations"][0][k], k
    # a checkpoint saved before parts were recorded (here: the last epoch's, parts removed)
    # gives its epochs an unknown device; an attempt that only evaluates trains no epoch
    state = torch.load(ckpt, weights_only=False)
    del state["parts"]
    torch.save(state, ckpt)
    notes = {}
    train_and_evaluate(task, "unet3d", arch, 3, recipe, "cpu", "r5", {}, checkpoint=ckpt,
                       notes=notes)
    assert [{k: p[k] for k in ("device", "threads", "epochs")} for p in notes["parts"]] == \
        [{"device": None, "threads": None, "epochs": [1, 3]}, {**here, "epochs": []}]


def test_run_jobs_counts_checkpointed_seconds_and_drops_the_checkpoint(tmp_path):
    from builders.jobs import Job, WorkDir, run_jobs, save_checkpoint

    work = WorkDir(tmp_path / "work")

    def run(job, run_id):
        if job.args["seed"] == 0:
            save_checkpoint(work.checkpoint(job.key), {"epoch": 1})
            job.args["prior_seconds"] = 100.0
            return {}
        raise RuntimeError("diverged")

    jobs = [Job("a-s0", {"seed": 0}), Job("a-s1", {"seed": 1})]
    save_checkpoint(work.checkpoint("a-s1"), {"epoch": 3})
    counts = run_jobs(work, jobs, run, builder="tests", version="0", device="test")
    assert counts["ok"] == 1 and counts["failed"] == 1 and counts["seconds"] >= 100
    assert not work.checkpoint("a-s0").exists()  # committed: its state is no longer needed
    assert work.checkpoint("a-s1").exists()  # failed: kept for the next attempt
    import pyarrow.parquet as pq

    runs = {r["seed"]: r for f in work.jobs.rglob("runs/**/*.parquet")
            for r in pq.read_table(f).to_pylist()}
    assert runs[0]["seconds"] >= 100 and json.loads(runs[0]["args"])["prior_seconds"] == 100
    assert runs[1]["seconds"] < 100 and runs[1]["status"] == "failed"


def test_releases_within_one_second_keep_every_row(tmp_path, monkeypatch):
    """Two releases stamped with the same second once shared a file name, and the second
    overwrote the first's runs file: released rows vanished. Names are unique now."""
    import sys
    from datetime import datetime as real_datetime

    import builders.release as rel
    from builders.jobs import Job, WorkDir, run_jobs
    from medbench.validate import validate

    sys.path.insert(0, str(Path(__file__).parent))
    from kill_target import run

    class FrozenClock(real_datetime):
        @classmethod
        def now(cls, tz=None):
            return real_datetime(2026, 1, 1, 12, 0, 0, tzinfo=tz)

    monkeypatch.setattr(rel, "datetime", FrozenClock)
    work, tables = WorkDir(tmp_path / "work"), tmp_path / "tables"
    jobs = [Job(f"{i}-s0", {"arch": f"a{i}", "index": i, "seed": 0}) for i in range(3)]
    for n in (1, 2, 3):  # each round finishes one more job and releases at the same "second"
        run_jobs(work, jobs[:n], run, builder="tests.kill_target", version="0", device="test")
        rel.release(work.root, tables)
        report = validate(tables)
        assert report.ok, report.problems
    stems = sorted(p.stem for p in (tables / "runs").rglob("*.parquet"))
    assert stems == ["release-20260101T120000", "release-20260101T120000-2",
                     "release-20260101T120000-3"]
    import medbench

    with medbench.open(tables) as store:
        assert store.sql("SELECT count(*) FROM runs").fetchall()[0][0] == 3
        assert store.sql("SELECT count(*) FROM evaluations").fetchall()[0][0] == 3


def test_builds_started_in_one_second_get_distinct_run_ids(tmp_path, monkeypatch):
    """Two builds of one builder (two tasks) started in the same second once gave their
    jobs of equal keys one run id, and the release credited one task's rows to the other's
    runs row. Run ids carry a random token now, and the release refuses a clash."""
    import json
    import sys

    import pyarrow as pa
    import pyarrow.parquet as pq

    import builders.jobs as jobs_mod
    import builders.release as rel
    from builders.jobs import Job, WorkDir, run_jobs
    from medbench.errors import MedbenchError

    sys.path.insert(0, str(Path(__file__).parent))
    from kill_target import run

    real_now = jobs_mod._now
    monkeypatch.setattr(jobs_mod, "_now", lambda: real_now().replace(year=2026, month=1,
                                                                      day=1, hour=12, minute=0,
                                                                      second=0))
    jobs = [Job(f"{i}-s0", {"arch": f"a{i}", "index": i, "seed": 0}) for i in range(2)]
    works = [WorkDir(tmp_path / name) for name in ("task-a", "task-b")]
    for work in works:
        run_jobs(work, jobs, run, builder="tests.kill_target", version="0", device="test")
    ids = [{json.loads((d / "job.json").read_text())["run_id"] for d in w.jobs.iterdir()}
           for w in works]
    assert len(ids[0] | ids[1]) == 4  # same keys, same second, four run ids
    tables = tmp_path / "tables"
    rel.release(works[0].root, tables)
    rel.release(works[1].root, tables)
    rel.release(works[1].root, tables)  # the same jobs again: no clash, nothing added
    # a work folder whose run id names a released job of another build is refused
    clash = next(works[1].jobs.iterdir())
    released_id = sorted(ids[0])[0]
    meta = json.loads((clash / "job.json").read_text())
    for f in clash.rglob("*.parquet"):
        t = pq.read_table(f)
        i = t.schema.get_field_index("run_id")
        pq.write_table(t.set_column(i, t.schema.field(i), pa.array([released_id] * len(t))), f)
    meta["run_id"] = released_id
    (clash / "job.json").write_text(json.dumps(meta))
    with pytest.raises(MedbenchError, match="name another job too"):
        rel.release(works[1].root, tables)


def test_write_rows_never_overwrites_by_default(tmp_path):
    from medbench.release import write_rows

    row = {"run_id": "r", "builder": "b", "builder_version": "0", "status": "ok"}
    write_rows(tmp_path, "runs", [row], "same")
    with pytest.raises(MedbenchError, match="never overwritten"):
        write_rows(tmp_path, "runs", [{**row, "run_id": "s"}], "same")
    assert not [p for p in (tmp_path / "runs").iterdir() if p.suffix == ".tmp"]
    write_rows(tmp_path, "runs", [{**row, "run_id": "s"}], "same", replace=True)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["local", "ray"])
def test_parallel_backends_build_the_same_rows(backend, tiny_msd, tmp_path):
    """Two jobs at once, in a local process pool or as Ray tasks on a local Ray instance:
    every job committed once by the driver, a rerun skips them all, the release is valid.
    (The rerun that finishes the build runs in this process: starting Ray takes most of
    this test's time, so it is started once.)"""
    if backend == "ray":
        pytest.importorskip("ray")
    import medbench
    from builders.release import release
    from builders.unet3d import VERSION, main
    from medbench.validate import validate

    work = tmp_path / "work"
    base = ["--data-root", str(tiny_msd), "--archs", "2", "--seeds", "0", "1", "--epochs", "1",
            "--spatial", "32", "32", "32", "--work", str(work), "--splits-dir",
            str(tmp_path / "splits")]
    jobs = work / "msd_hippocampus" / f"v{VERSION}-e1-32x32x32" / "jobs"
    assert main([*base, "--backend", backend, "--workers", "2", "--limit-jobs", "3"]) == 0
    assert len(list(jobs.iterdir())) == 3
    assert main(base) == 0  # the fourth only
    keys = [json.loads((d / "job.json").read_text()) for d in jobs.iterdir()]
    assert sorted(k["key"] for k in keys) == sorted({k["key"] for k in keys})
    assert len(keys) == 4 and {k["status"] for k in keys} == {"ok"}
    assert main(base) == 0 and len(list(jobs.iterdir())) == 4  # all done: nothing runs
    tables = tmp_path / "tables"
    added = release(jobs.parent, tables)
    assert added["evaluations"] == 4 and added["runs"] == 4
    assert validate(tables).ok
    with medbench.open(tables) as store:
        pids = store.sql("SELECT count(DISTINCT run_id) FROM evaluations").fetchall()[0][0]
    assert pids == 4


def test_unknown_backend_and_bad_workers_are_one_line(tiny_msd, tmp_path, capsys):
    from builders.unet3d import main

    base = ["--data-root", str(tiny_msd), "--archs", "1", "--seeds", "0", "--epochs", "1",
            "--spatial", "16", "16", "16", "--work", str(tmp_path / "w"), "--splits-dir",
            str(tmp_path / "splits")]
    with pytest.raises(SystemExit) as stop:  # refused where parsed, as a usage error
        main([*base, "--workers", "0"])
    err = capsys.readouterr().err.strip().splitlines()
    assert stop.value.code == 2 and "argument --workers: must be a finite number >= 1" in err[-1]


BUILDER_ARGV = {  # the arguments each builder with --device needs to get as far as the device
    "proxies": ["--task", "breastmnist", "--space", "mstf", "--sample", "1"],
    "medmnist_train": ["--task", "breastmnist", "--space", "mstf", "--archs", "1"],
    "mednns_supernet": ["train", "--task", "breastmnist"],
    "unet3d": ["--task", "hippocampus"],
    "supernet": ["train", "--task", "hippocampus"],
}


@pytest.mark.parametrize("builder", sorted(BUILDER_ARGV))
@pytest.mark.parametrize("device, message", [("tpu", "--device must be cpu or cuda"),
                                             ("cuda", "no CUDA device")])
def test_builders_refuse_a_device_they_cannot_use(builder, device, message, tmp_path, capsys):
    """Before any data is read: one line on stderr, exit 2."""
    import importlib

    torch = pytest.importorskip("torch")
    if device == "cuda" and torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    main = importlib.import_module(f"builders.{builder}").main
    argv = [*BUILDER_ARGV[builder], "--data-root", str(tmp_path / "no-data"), "--work",
            str(tmp_path / "work"), "--device", device]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
    assert not (tmp_path / "work").exists()
