"""Hostile input, first the SQL and release classes: every case must end with exit code 2 (or
130), one line on stderr, no traceback, and the tables' bytes unchanged.

The tables are the tiny synthetic release of conftest (made-up numbers)."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest
from conftest import one_line_error


def snapshot(root: Path) -> dict[str, str]:
    """Every file under ``root`` with its sha256: what must not change."""
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


WRITES = [
    "COPY (SELECT 1 AS a) TO '{t}/evil.csv'",
    "COPY evaluations TO '{t}/evaluations/evil.parquet' (FORMAT parquet)",
    "ATTACH '{t}/evil.db' AS x",
    "INSTALL httpfs",
    "LOAD httpfs",
    "SET enable_external_access = true",
    "CREATE TABLE x AS SELECT 1",
    "CREATE OR REPLACE VIEW evaluations AS SELECT 1 AS a",
    "DROP VIEW evaluations",
    "INSERT INTO evaluations SELECT * FROM evaluations",
    "DELETE FROM evaluations",
    "UPDATE evaluations SET val_dice = 1",
    "EXPORT DATABASE '{t}/dump'",
    "PRAGMA enable_profiling",
    "CALL pragma_version()",
    "CHECKPOINT",
    "VACUUM",
    "PREPARE p AS COPY (SELECT 1) TO '{t}/p.csv'",
    "DETACH memory",
    "USE memory",
]
WRAPPERS = [
    "EXPLAIN {s}",
    "EXPLAIN ANALYZE {s}",
    "explain analyse {s}",
    "EXPLAIN (ANALYZE) {s}",
    "EXPLAIN (ANALYZE, FORMAT json) {s}",
    "/* hidden */ EXPLAIN ANALYZE {s}",
    "EXPLAIN -- a comment\n ANALYZE {s}",
    "EXPLAIN /* a */ ANALYZE /* b */ {s}",
    "{s}",
]


@pytest.mark.parametrize("statement", WRITES)
@pytest.mark.parametrize("wrapper", WRAPPERS)
def test_no_statement_that_writes_runs_in_any_wrapper(release, cli, statement, wrapper):
    before = snapshot(release)
    r = cli(release, "sql", wrapper.format(s=statement.format(t=release)))
    assert one_line_error(r), (r.code, r.err, r.out)
    assert snapshot(release) == before


@pytest.mark.parametrize("statement", [
    "SELECT * FROM read_csv('.tmp/x.csv')",
    "SELECT * FROM read_text('.tmp/x.csv')",
    "SELECT * FROM read_parquet('../outside/*.parquet')",
    "SELECT * FROM read_text('/etc/hostname')",
    "SELECT * FROM glob('/*')",
    "SELECT * FROM read_blob('{t}/../secret.txt')",
])
def test_nothing_outside_the_tables_can_be_read(release, cli, tmp_path, monkeypatch,
                                                statement):
    (tmp_path / ".tmp").mkdir()
    (tmp_path / ".tmp" / "x.csv").write_text("a,b\n1,2\n")  # DuckDB's default spill folder
    (tmp_path / "secret.txt").write_text("secret")
    monkeypatch.chdir(tmp_path)
    before = snapshot(release)
    r = cli(release, "sql", statement.format(t=release))
    assert one_line_error(r), (r.code, r.err, r.out)
    assert "secret" not in r.out and "1,2" not in r.out
    assert snapshot(release) == before


def test_explain_analyze_of_a_read_still_answers(release, cli):
    r = cli(release, "sql", "EXPLAIN ANALYZE SELECT count(*) FROM evaluations")
    assert r.code == 0 and "Traceback" not in r.err


@pytest.mark.parametrize("args, message", [
    (["--timeout", "1", "SELECT count(*) FROM range(1000000000000)"], "--timeout"),
    (["--memory-limit", "20MB", "SELECT list(range) FROM range(200000000)"], "memory"),
    (["--memory-limit", "lots", "SELECT 1"], "--memory-limit"),
    (["--memory-limit", "-5GB", "SELECT 1"], "--memory-limit"),
    (["--timeout", "-1", "SELECT 1"], "--timeout"),
    (["--timeout", "nan", "SELECT 1"], "--timeout"),
    (["--timeout", "1e999", "SELECT 1"], "--timeout"),
    (["SELECT 1; SELECT 2"], "exactly one"),
    (["SELEC 1"], "malformed"),
    ([""], "exactly one"),
])
def test_runaway_and_malformed_queries_end_in_one_line(release, cli, args, message):
    before = snapshot(release)
    r = cli(release, "sql", *args)
    assert one_line_error(r) and message in r.err, (r.code, r.err)
    assert snapshot(release) == before


# -- the release writer ---------------------------------------------------------------------

def _one_job(work: Path, key: str, arch: str, val_dice: float = 0.5, status: str = "ok",
             seed: int = 0) -> Path:
    """A finished job folder in the real format (made-up numbers)."""
    from conftest import TASK

    from medbench.release import write_rows

    job = work / "jobs" / key
    write_rows(job, "runs", [{"run_id": key, "builder": "tests", "builder_version": "0",
                              "status": status, "seconds": 1.0, "rows_written": 1}], key)
    write_rows(job, "architectures", [{"space": "unet3d", "arch_id": arch, "arch_index": 99,
                                       "config": "{}", "run_id": key}], key)
    write_rows(job, "evaluations", [{"space": "unet3d", "arch_id": arch, "task": TASK,
                                     "method": "standalone", "seed": seed,
                                     "val_dice": val_dice, "run_id": key}], key)
    (job / "job.json").write_text('{"key": "%s", "run_id": "%s", "status": "ok"}' % (key, key))
    return work


@pytest.mark.parametrize("damage", ["stray", "stray-colliding", "no-manifest", "truncated",
                                    "missing"])
def test_release_refuses_a_tables_folder_that_is_not_its_manifest(release, tmp_path, damage,
                                                                  capsys):
    from builders.release import main

    work = _one_job(tmp_path / "work", "job-1", "f-new")
    evals = sorted((release / "evaluations").rglob("*.parquet"))[0]
    if damage == "stray":
        shutil.copy(evals, evals.with_name("stray.parquet"))
    elif damage == "stray-colliding":  # holds the very keys the job brings
        _one_job(tmp_path / "other", "job-x", "f-new")
        src = next((tmp_path / "other" / "jobs" / "job-x" / "evaluations").rglob("*.parquet"))
        shutil.copy(src, evals.with_name("adopt-me.parquet"))
    elif damage == "no-manifest":
        os.remove(release / "MANIFEST.json")
    elif damage == "truncated":
        evals.write_bytes(evals.read_bytes()[:-10])
    else:
        evals.unlink()
    before = snapshot(release)
    assert main([str(work), "--tables", str(release)]) == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1 and err[0].startswith("builders.release: error:"), err
    assert "nothing released" in err[0]
    assert snapshot(release) == before


def test_release_of_a_clean_folder_still_adds_the_rows(release, tmp_path):
    from builders.release import release as do_release
    from medbench.validate import validate

    work = _one_job(tmp_path / "work", "job-1", "f-new")
    assert do_release(work, release)["evaluations"] == 1
    assert validate(release).ok


# -- limits, names and outputs of the query commands ----------------------------------------

@pytest.mark.parametrize("args, message", [
    (["--max-params", "1e999"], "too large"),
    (["--max-params", "1e30"], "too large"),
    (["--max-params", "nan"], "cannot read"),
    (["--max-params", "-1"], "negative"),
    (["--max-latency", "1e999ms"], "too large"),
    (["--max-latency", "inf"], "cannot read"),
    (["--max-latency", "4 parsecs"], "unknown"),
    (["--max-energy", "1e999J"], "too large"),
    (["--max-energy=-5mJ"], "negative"),
    (["--max-energy", "-5mJ"], "expected one argument"),
    (["--runtime", "foo"], "unknown runtime"),
    (["--runtime", ""], "unknown runtime"),
    (["--device", "nowhere"], "unknown device"),
    (["--space", "unet4d"], "unknown space"),
    (["--sort", "val_dice;DROP TABLE x"], "unknown sort column"),
    (["--limit", "-1"], "negative"),
    (["--threads", "-2"], "negative"),
    (["--batch", "0"], "at least 1"),
    (["--min-dice", "2"], "[0, 1]"),
    (["--format", "parquet", "--output", "/nonexistent/dir/x.parquet"], "no folder"),
    (["--format", "parquet", "--output", "/dev/full"], "not a regular file"),
    (["--format", "parquet", "--output", "{tmp}"], "not a regular file"),
])
def test_bad_query_options_are_one_line(release, cli, tmp_path, args, message):
    before = snapshot(release)
    r = cli(release, "query", "--task", "hippocampus",
            *[a.format(tmp=tmp_path) for a in args])
    assert one_line_error(r) and message in r.err, (r.code, r.err)
    assert snapshot(release) == before
    assert Path("/dev/full").is_char_device()


def test_a_failed_output_leaves_the_old_file(release, cli, tmp_path, monkeypatch):
    target = tmp_path / "old.parquet"
    target.write_bytes(b"what was there")
    import medbench.manifest as manifest

    def full_disk(path, data, replace=True):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(manifest, "atomic_write_bytes", full_disk)
    r = cli(release, "query", "--task", "hippocampus", "--format", "parquet", "--output",
            str(target))
    assert one_line_error(r) and "No space left" in r.err
    assert target.read_bytes() == b"what was there"


@pytest.mark.parametrize("tables", ["", "   "])
@pytest.mark.parametrize("command", [["tasks"], ["query", "--task", "hippocampus"],
                                     ["sql", "SELECT 1"], ["validate"]])
def test_an_empty_tables_path_is_refused_not_the_working_folder(cli, tmp_path, monkeypatch,
                                                                tables, command):
    monkeypatch.chdir(tmp_path)
    r = cli(None, "--tables", tables, *command)
    assert one_line_error(r) and "empty" in r.err, (r.code, r.err)


@pytest.mark.parametrize("bad", [{"val_dice": 5.0}, {"val_dice": float("nan")},
                                 {"val_dice": -0.1}, {"status": "weird"}, {"seed": -3}])
def test_release_refuses_rows_that_validate_would_reject(release, tmp_path, bad, capsys):
    from builders.release import main

    work = _one_job(tmp_path / "work", "job-1", "f-new", **bad)
    before = snapshot(release)
    assert main([str(work), "--tables", str(release)]) == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1 and "nothing released" in err[0], err
    assert snapshot(release) == before


def test_a_second_release_into_the_same_folder_waits_its_turn(release, tmp_path, capsys):
    import fcntl

    from builders.release import main

    work = _one_job(tmp_path / "work", "job-1", "f-new")
    before = snapshot(release)
    fd = os.open(release, os.O_RDONLY)  # a release in flight holds this lock
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        assert main([str(work), "--tables", str(release)]) == 2
    finally:
        os.close(fd)
    err = capsys.readouterr().err
    assert "another release" in err and err.count("\n") == 1
    assert snapshot(release) == before
    assert main([str(work), "--tables", str(release)]) == 0  # once it is done


def test_a_build_whose_every_job_fails_is_an_error_with_its_failures_kept(tmp_path):
    from builders.jobs import Job, WorkDir, run_jobs
    from medbench.errors import MedbenchError

    def broken(job, run_id):
        raise ValueError(f"no data for {job.key}")

    work = WorkDir(tmp_path / "w")
    jobs = [Job(f"j{i}", {"seed": i}) for i in range(3)]
    with pytest.raises(MedbenchError, match="all 3 job.s. failed, e.g. ValueError: no data"):
        run_jobs(work, jobs, broken, builder="tests", version="0", device="cpu")
    assert work.finished() == {"j0": "failed", "j1": "failed", "j2": "failed"}
    half = run_jobs(work, jobs[:1] + [Job("ok", {})], lambda j, r: {}, builder="tests",
                    version="0", device="cpu")
    assert half["ok"] == 2  # a failed job is retried; one success is no error


# -- a tables folder that is not what its manifest lists -------------------------------------

def _damage(release: Path, how: str) -> None:
    import json

    manifest = json.loads((release / "MANIFEST.json").read_text())
    files = sorted((release / "evaluations").rglob("*.parquet")) + \
        sorted((release / "hardware").rglob("*.parquet"))
    if how == "duplicated-entry":
        manifest["files"].append(manifest["files"][0])
    elif how == "dropped-entry":
        manifest["files"] = [e for e in manifest["files"] if e["table"] != "hardware"]
    elif how == "swapped-files":
        a, b = files[0], files[-1]
        data_a, data_b = a.read_bytes(), b.read_bytes()
        a.write_bytes(data_b)
        b.write_bytes(data_a)
    elif how == "stray-file":
        shutil.copy(files[0], files[0].with_name("stray.parquet"))
    elif how == "emptied-file":
        files[0].write_bytes(b"")
    elif how == "not-json":
        (release / "MANIFEST.json").write_text("{not json")
        return
    elif how == "no-files-list":
        manifest = {"created": "x"}
    elif how == "path-outside":
        manifest["files"][0]["path"] = "../../etc/hostname"
    elif how == "unknown-table":
        manifest["files"][0]["table"] = "secrets"
    (release / "MANIFEST.json").write_text(json.dumps(manifest))


@pytest.mark.parametrize("how", ["duplicated-entry", "dropped-entry", "swapped-files",
                                 "stray-file", "emptied-file", "not-json", "no-files-list",
                                 "path-outside", "unknown-table"])
@pytest.mark.parametrize("command", [["query", "--task", "hippocampus"],
                                     ["sql", "SELECT count(*) FROM evaluations"], ["tasks"],
                                     ["info", "unet3d", "a-small"], ["validate"]])
def test_a_folder_unlike_its_manifest_gives_no_answer(release, cli, how, command):
    _damage(release, how)
    before = snapshot(release)
    r = cli(release, *command)
    assert r.code == 2 and "Traceback" not in r.err, (r.code, r.err)
    if command != ["validate"]:  # validate lists every problem it finds
        assert one_line_error(r), r.err
    assert snapshot(release) == before


@pytest.mark.parametrize("builder, args", [
    ("unet3d", ["--archs", "-5"]), ("unet3d", ["--archs", "0"]), ("unet3d", ["--seeds", "-1"]),
    ("unet3d", ["--epochs", "0"]), ("unet3d", ["--limit-jobs", "-3"]),
    ("unet3d", ["--max-gmacs", "nan"]), ("unet3d", ["--workers", "0"]),
    ("unet3d", ["--threads", "-1"]), ("unet3d", ["--archs", "ten"]),
    ("unet3d", ["--space", "unet4d"]), ("hardware", ["--repeats", "2"]),
    ("hardware", ["--chunk", "0"]), ("medmnist_train", ["--archs", "-1"]),
    ("proxies", ["--sample", "-10"]), ("supernet", ["evaluate", "--archs", "-1"]),
])
def test_builder_options_out_of_range_are_usage_errors(builder, args, capsys):
    import importlib

    main = importlib.import_module(f"builders.{builder}").main
    with pytest.raises(SystemExit) as stop:
        main([*args, "--dry-run"] if builder == "unet3d" else args)
    err = capsys.readouterr().err
    assert stop.value.code == 2 and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith(f"python -m builders.{builder}: error:"), err


@pytest.mark.parametrize("damage", ["truncated-parquet", "empty-parquet", "broken-job-json",
                                    "job-json-list", "job-json-bad-status"])
def test_release_of_damaged_job_folders_is_one_line(release, tmp_path, damage, capsys):
    from builders.release import main

    work = _one_job(tmp_path / "work", "job-1", "f-new")
    job = work / "jobs" / "job-1"
    parquet = next((job / "evaluations").rglob("*.parquet"))
    if damage == "truncated-parquet":
        parquet.write_bytes(parquet.read_bytes()[:100])
    elif damage == "empty-parquet":
        parquet.write_bytes(b"")
    elif damage == "broken-job-json":
        (job / "job.json").write_text("{")
    elif damage == "job-json-list":
        (job / "job.json").write_text("[1, 2]")
    else:
        (job / "job.json").write_text('{"key": "job-1", "status": "weird"}')
    before = snapshot(release)
    assert main([str(work), "--tables", str(release)]) == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1 and err[0].startswith("builders.release: error:"), err
    assert snapshot(release) == before


def test_validate_reports_a_corrupted_file_and_nothing_it_did_not_find(release, cli):
    """A corrupted architectures file is set aside; the rows that point at its rows must not
    then be reported as dangling references (nor missing seeds as gaps)."""
    target = sorted((release / "architectures").rglob("*.parquet"))[0]
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    r = cli(release, "validate")
    problems = [ln for ln in r.err.splitlines() if ln.strip()]
    assert r.code == 2 and len(problems) == 1 and "sha256" in problems[0], problems


def test_a_new_data_set_of_large_images_is_brought_to_medmnist_size_after_sampling():
    """recommend --dataset big.npz (200 x 512 x 512) once took 14 GB: only the sampled images
    are converted, at 28 x 28; a 3D set of another size is refused in one line."""
    np = pytest.importorskip("numpy")
    pytest.importorskip("PIL")
    from builders.task_distances import _medmnist_size
    from medbench.errors import MedbenchError

    big = np.random.default_rng(0).integers(0, 255, (3, 512, 512), dtype=np.uint8)
    small = _medmnist_size(big, 2)
    assert small.shape == (3, 28, 28) and small.dtype == np.uint8
    rgb = np.zeros((2, 64, 64, 3), np.uint8)
    assert _medmnist_size(rgb, 2).shape == (2, 28, 28, 3)
    for kept in (np.zeros((2, 28, 28), np.uint8), np.zeros((2, 8, 8), np.uint8),
                 np.zeros((2, 28, 28, 28), np.uint8)):
        assert _medmnist_size(kept, kept.ndim - 1) is kept
    with pytest.raises(MedbenchError, match="28x28x28"):
        _medmnist_size(np.zeros((2, 64, 64, 64), np.uint8), 3)


@pytest.mark.parametrize("command", [
    ["query", "--task", "hippocampus"], ["query", "--task", "hippocampus", "--format", "json"],
    ["sql", "SELECT * FROM evaluations"], ["tasks"], ["info", "unet3d", "a-small"],
    ["simulate", "--task", "hippocampus", "--repeats", "1", "--out", "{tmp}/sim"],
    ["export", "--task", "hippocampus", "--to", "naslib", "--out", "{tmp}/nb.json"],
])
def test_a_file_damaged_at_its_listed_size_is_one_line_in_every_command(release, cli, tmp_path,
                                                                         command):
    """Same size, other bytes: only validate's checksums see it before a read; the command
    reading it must still end in one line."""
    target = sorted((release / "evaluations").rglob("*.parquet"))[0]
    data = bytearray(target.read_bytes())
    for i in range(len(data) // 3, len(data) // 3 + 200):
        data[i] ^= 0xFF
    target.write_bytes(bytes(data))
    before = snapshot(release)
    r = cli(release, *[a.format(tmp=tmp_path) for a in command])
    assert one_line_error(r), (r.code, r.err)
    assert snapshot(release) == before


def test_a_generic_duckdb_error_while_fetching_is_one_line(release, cli, monkeypatch):
    """DuckDB raises its base Error for some damaged files (e.g. 'TProtocolException:
    Negative size' on the real tables) when the rows are fetched, outside medbench's own
    translation: the command line must still print one line."""
    import duckdb

    from medbench.store import Store

    def damaged(self):
        raise duckdb.Error("TProtocolException: Negative size")

    monkeypatch.setattr(Store, "tasks", damaged)
    r = cli(release, "tasks")
    assert one_line_error(r) and "Negative size" in r.err, (r.code, r.err)


SIM = ["simulate", "--task", "hippocampus", "--repeats", "1", "--budget", "1m"]


@pytest.mark.parametrize("args", [
    [*SIM, "--budget", "-5h", "--out", "{tmp}/s"], [*SIM, "--budget", "1e999h", "--out", "{tmp}/s"],
    [*SIM, "--workers", "0", "--out", "{tmp}/s"],
    [*SIM, "--workers", "100000000", "--out", "{tmp}/s"],
    [*SIM, "--repeats", "0", "--out", "{tmp}/s"], [*SIM, "--algorithms", "foo", "--out", "{tmp}/s"],
    [*SIM, "--algorithms", " , ", "--out", "{tmp}/s"], [*SIM, "--seed", "-1", "--out", "{tmp}/s"],
    [*SIM, "--seed-mode", "foo", "--out", "{tmp}/s"],
    [*SIM, "--objective", "foo", "--out", "{tmp}/s"],
    [*SIM, "--out", "/dev/full"], [*SIM, "--out", "/proc/nowhere/s"],
    ["simulate", "--task", "nowhere", "--out", "{tmp}/s"],
    ["export", "--task", "hippocampus", "--to", "foo", "--out", "{tmp}/x"],
    ["export", "--task", "hippocampus", "--to", "naslib", "--out", "/proc/nowhere/x.json"],
    ["export", "--task", "hippocampus", "--to", "naslib", "--out", "/dev/full"],
    ["report", "validation", "--out", "/proc/nowhere"], ["report", "foo"],
    ["recommend", "--dataset", "nowhere"], ["recommend", "--dataset", "hippocampus",
                                           "--max-params", "1e999"],
    ["tasks", "--format", "foo"], ["validate", "extra"], ["info", "unet3d", "-1"],
    ["info", "unet3d", "99999999999999999999999"],
])
def test_bad_arguments_of_the_other_commands_are_one_line(release, cli, tmp_path, args):
    before = snapshot(release)
    r = cli(release, *[a.format(tmp=tmp_path) for a in args])
    assert one_line_error(r), (r.code, r.err[-500:])
    assert snapshot(release) == before


@pytest.mark.parametrize("delay", [0.3, 0.6, 0.9, 1.5])
def test_ctrl_c_stops_a_long_query_with_exit_130(release, delay):
    """Whenever Ctrl-C lands (before, as or after the query starts), the command ends at
    once with exit code 130, no traceback, and the tables unchanged."""
    import signal
    import subprocess
    import sys
    import time

    before = snapshot(release)
    p = subprocess.Popen(
        [sys.executable, "-m", "medbench", "--tables", str(release), "sql", "--timeout", "0",
         "SELECT count(*) FROM range(10000000000000) a"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    time.sleep(delay)
    p.send_signal(signal.SIGINT)
    try:
        _, err = p.communicate(timeout=30)
    finally:
        p.kill()
    assert p.returncode == 130 and "Traceback" not in err, (p.returncode, err[-500:])
    assert snapshot(release) == before
