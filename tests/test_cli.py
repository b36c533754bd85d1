"""Every command of the CLI, its output formats, and bad input: one line on stderr, exit 2."""

from __future__ import annotations

import csv
import io
import json
from contextlib import redirect_stdout
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import one_line_error

from medbench import __version__
from medbench.errors import MedbenchError
from medbench.manifest import sha256_file

BUNDLED = Path(__file__).resolve().parent.parent / "tables"


def tree_digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): sha256_file(p) for p in sorted(root.rglob("*"))
            if p.is_file()}


def test_version(cli):
    r = cli(None, "--version")
    assert r.code == 0 and __version__ in r.out and "schema" in r.out


def test_no_arguments_prints_help(cli):
    r = cli(None)
    assert r.code == 0 and "query" in r.out and "validate" in r.out


def test_query_table_states_device_and_metric(cli, release):
    r = cli(release, "query", "--task", "hippocampus", "--max-latency", "4ms")
    assert r.code == 0, r.err
    assert "b-mid" in r.out and "c-large" not in r.out
    assert "device dev-a" in r.out and "onnxruntime" in r.out
    assert "0.81 ± 0.01414" in r.out  # mean ± std over the two seeds


def test_query_json_csv_parquet(cli, release, tmp_path):
    r = cli(release, "query", "--task", "hippocampus", "--format", "json", "--limit", "0",
            "--method", "all")
    rows = json.loads(r.out)
    assert r.code == 0 and len(rows) == 6 and rows[0]["device"] == "dev-a"
    r = cli(release, "query", "--task", "hippocampus", "--format", "csv", "--pareto")
    got = list(csv.DictReader(io.StringIO(r.out)))
    assert {row["arch_id"] for row in got} == {"e-oneseed", "b-mid", "c-large"}
    out = tmp_path / "q.parquet"
    r = cli(release, "query", "--task", "hippocampus", "--format", "parquet", "--output",
            str(out), "--device", "dev-b")
    assert r.code == 0 and pq.read_table(out).num_rows == 5  # standalone rows by default


def test_query_energy_params_method_sort(cli, release):
    r = cli(release, "query", "--task", "hippocampus", "--max-energy", "5mJ", "--format",
            "json")
    assert {x["arch_id"] for x in json.loads(r.out)} == {"a-small", "e-oneseed"}
    r = cli(release, "query", "--task", "hippocampus", "--max-params", "0.1M", "--method",
            "standalone", "--sort", "latency_ms", "--format", "json")
    assert [x["arch_id"] for x in json.loads(r.out)] == ["e-oneseed", "a-small"]
    r = cli(release, "query", "--task", "hippocampus", "--method", "supernet", "--min-dice",
            "0.7", "--format", "json")
    assert [x["arch_id"] for x in json.loads(r.out)] == ["b-mid"]


def test_query_with_no_match_says_so(cli, release):
    r = cli(release, "query", "--task", "hippocampus", "--max-latency", "10us")
    assert r.code == 0 and "passes these filters" in r.err


def test_empty_query_names_the_nearest_miss_of_each_limit(cli, release):
    import medbench

    with medbench.open(release) as store:
        res = store.query(task="hippocampus")
        device = res.device
        fastest = store.sql(f"SELECT arch_id, latency_ms FROM hardware WHERE device = '{device}' "
                            "AND runtime = 'onnxruntime' AND threads = 1 AND batch = 1 "
                            "ORDER BY latency_ms LIMIT 1").fetchall()[0]
        smallest = store.sql("SELECT arch_id, params FROM costs ORDER BY params LIMIT 1"
                             ).fetchall()[0]
    r = cli(release, "query", "--task", "hippocampus", "--max-latency", "10us",
            "--max-params", "10")
    notes = r.err.splitlines()
    assert f"medbench: --max-latency 0.01 ms: the lowest of any architecture with results " \
           f"on {device} is {fastest[1]:.4g} ms ({fastest[0]})" in notes
    assert f"medbench: --max-params 10: the lowest of any architecture with results is " \
           f"{smallest[1]:,} ({smallest[0]})" in notes
    # a limit that some architecture meets is not what emptied the answer
    r = cli(release, "query", "--task", "hippocampus", "--max-latency", "1s", "--max-params", "10")
    assert not any("max-latency" in n for n in r.err.splitlines())


def test_query_on_bundled_tables(cli):
    """The README's main job runs on the shipped tables; a task without results says so."""
    r = cli(BUNDLED, "query", "--task", "hippocampus", "--format", "json", "--limit", "0")
    assert r.code == 0, r.err
    rows = json.loads(r.out)
    assert rows and all(x["task"] == "msd/hippocampus" for x in rows)
    r = cli(BUNDLED, "query", "--task", "hippocampus", "--max-latency", "4ms")
    assert r.code == 0, r.err
    r = cli(BUNDLED, "query", "--task", "vesselmnist3d")
    assert r.code == 0 and "no results for medmnist/vesselmnist3d" in r.err
    # the zoo issue's command: subnets of at most 1 M parameters, best test accuracy first
    r = cli(BUNDLED, "query", "--task", "pneumoniamnist", "--sort", "test_acc", "--max-params",
            "1M", "--format", "json")
    rows = json.loads(r.out)
    assert r.code == 0 and rows and all(x["params"] <= 1_000_000 for x in rows)
    tests = [x["test_acc"] for x in rows]
    assert tests == sorted(tests, reverse=True)


def test_tasks_spaces_devices(cli, release):
    r = cli(release, "tasks", "--format", "json")
    tasks = {t["task"]: t for t in json.loads(r.out)}
    assert tasks["msd/hippocampus"]["n_evaluations"] == 10
    assert tasks["msd/hippocampus"]["n_train"] == 156
    assert tasks["medmnist/pneumoniamnist"]["n_evaluations"] == 0
    r = cli(release, "spaces", "--format", "json")
    spaces = {s["space"]: s for s in json.loads(r.out)}
    assert spaces["unet3d"]["n_archs_with_results"] == 5 and "mednns" in spaces
    r = cli(release, "devices", "--format", "json")
    assert [(d["device"], d["n_measurements"]) for d in json.loads(r.out)] == [
        ("dev-a", 5), ("dev-b", 2)]
    r = cli(release, "devices")
    assert r.code == 0 and "dev-a" in r.out


def test_info_shows_every_fact_of_one_architecture(cli, release):
    r = cli(release, "info", "unet3d", "b-mid", "--format", "json")
    facts = json.loads(r.out)
    assert set(facts) == {"architectures", "evaluations", "costs", "hardware"}
    assert len(facts["evaluations"]) == 3 and len(facts["hardware"]) == 2
    r = cli(release, "info", "unet3d", "2")  # by arch_index
    assert r.code == 0 and "c-large" in r.out and "evaluations" in r.out


def test_sql_reads_views(cli, release):
    r = cli(release, "sql", "SELECT arch_id, avg(val_dice) AS v FROM evaluations "
            "WHERE method = 'standalone' GROUP BY ALL ORDER BY v DESC LIMIT 1", "-f", "json")
    assert r.code == 0 and json.loads(r.out)[0]["arch_id"] == "c-large"
    r = cli(release, "sql", "DESCRIBE hardware", "-f", "csv")
    assert r.code == 0 and "latency_ms" in r.out


@pytest.mark.parametrize("statement", [
    "INSERT INTO runs (run_id) VALUES ('x')",
    "CREATE TABLE t AS SELECT 1",
    "DROP VIEW evaluations",
    "COPY evaluations TO '/tmp/medbench-leak.csv'",
    "ATTACH '/tmp/medbench-other.duckdb'",
    "INSTALL httpfs",
    "LOAD httpfs",
    "SET enable_external_access = true",
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT * FROM read_text('/etc/hostname')",
    "SELECT * FROM glob('/*')",
    "SELECT 1; SELECT 2",
    "SELEC 1",
    "SELECT * FROM no_such_table",
])
def test_sql_refuses_writes_files_and_malformed(cli, release, statement):
    before = tree_digest(release)
    r = cli(release, "sql", statement)
    assert one_line_error(r), (r.code, r.err)
    assert tree_digest(release) == before
    assert not Path("/tmp/medbench-leak.csv").exists()


def test_sql_cannot_read_outside_tables_by_relative_path(cli, release):
    evaluation_file = next((release / "evaluations").rglob("*.parquet"))
    r = cli(release, "sql", f"SELECT count(*) FROM '{evaluation_file}'")
    assert r.code == 0  # inside the tables folder: allowed
    r = cli(release, "sql", f"SELECT * FROM read_parquet('{release}/../outside.parquet')")
    assert one_line_error(r)


@pytest.mark.parametrize("args", [
    ("query", "--task", "nowhere"),
    ("query", "--task", "hippocampus", "--max-latency", "4 parsecs"),
    ("query", "--task", "hippocampus", "--max-latency", "-4ms"),
    ("query", "--task", "hippocampus", "--max-energy", "lots"),
    ("query", "--task", "hippocampus", "--max-params", "-3"),
    ("query", "--task", "hippocampus", "--limit", "-1"),
    ("query", "--task", "hippocampus", "--space", "nope"),
    ("query", "--task", "hippocampus", "--device", "toaster"),
    ("query", "--task", "hippocampus", "--method", "magic"),
    ("query", "--task", "hippocampus", "--sort", "colour"),
    ("query", "--task", "hippocampus", "--format", "xml"),
    ("query", "--task", "hippocampus", "--min-dice", "abc"),
    ("query", "--bogus"),
    ("info", "unet3d", "no-such-arch"),
    ("info", "nope", "a-small"),
    ("frobnicate",),
])
def test_bad_input_is_one_line_and_exit_2(cli, release, args):
    before = tree_digest(release)
    r = cli(release, *args)
    assert one_line_error(r), (args, r.code, r.err)
    assert tree_digest(release) == before


def test_unknown_task_error_lists_known_tasks(cli, release):
    r = cli(release, "query", "--task", "nowhere")
    assert "known tasks:" in r.err and "msd/hippocampus" in r.err


def test_missing_tables_folder(cli, tmp_path):
    r = cli(tmp_path / "absent", "query", "--task", "hippocampus")
    assert one_line_error(r) and "no tables folder" in r.err


def test_file_listed_in_manifest_but_missing(cli, release):
    next((release / "hardware").rglob("*.parquet")).unlink()
    r = cli(release, "query", "--task", "hippocampus")
    assert one_line_error(r) and "missing" in r.err


def test_corrupted_parquet_file_is_one_line(cli, release):
    path = next((release / "evaluations").rglob("*.parquet"))
    data = bytearray(path.read_bytes())
    data[-12:-8] = b"\xff\xff\xff\x7f"  # corrupt the footer length
    path.write_bytes(bytes(data))
    r = cli(release, "query", "--task", "hippocampus")
    assert one_line_error(r), r.err
    r = cli(release, "sql", "SELECT count(*) FROM evaluations")
    assert one_line_error(r), r.err


def test_query_commands_change_nothing_on_disk(cli, release, tmp_path):
    before = tree_digest(release)
    for args in (("query", "--task", "hippocampus", "--pareto"), ("tasks",), ("spaces",),
                 ("devices",), ("info", "unet3d", "a-small"), ("validate",),
                 ("sql", "SELECT * FROM runs")):
        assert cli(release, *args).code == 0, args
    assert tree_digest(release) == before


def test_validate_passes_and_fails(cli, release):
    r = cli(release, "validate")
    assert r.code == 0 and ": ok;" in r.out
    path = next((release / "costs").rglob("*.parquet"))
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    r = cli(release, "validate")
    assert r.code == 2 and "sha256 differs" in r.err and "Traceback" not in r.err


def test_bundled_tables_validate(cli):
    r = cli(BUNDLED, "validate")
    assert r.code == 0, r.err


def test_one_command_app_is_built_for_the_command_run(cli, release):
    from medbench.commands import _app_for, app

    def names(a):
        return [c.name or c.callback.__name__ for c in a.registered_commands]

    assert names(_app_for(["--tables", str(release), "sql", "SELECT 1"])) == ["sql"]
    assert names(_app_for(["--tables=t", "tasks"])) == ["tasks"]
    for args in (["--help"], ["report", "proxies"], ["no-such-command"], ["--version"],
                 ["--tables"]):
        assert _app_for(args) is app
    # the cut-down app parses root options as the whole app does
    r = cli(None, "--tables", str(release), "sql", "SELECT 1 AS one", "--format", "csv")
    assert r.code == 0 and r.out == "one\n1\n"


def test_query_root_options_before_the_command(cli, release, tmp_path):
    r = cli(tmp_path / "elsewhere", "--tables", str(release), "query", "--format", "csv",
            "--limit", "1")
    assert r.code == 0 and r.out.startswith("space,arch_id,task") and len(r.out.splitlines()) == 2
    r = cli(None, f"--tables={tmp_path / 'absent'}", "query")
    assert one_line_error(r) and "no tables folder" in r.err


def test_query_help_lists_every_option(cli):
    r = cli(None, "query", "--help")
    assert r.code == 0 and r.out.startswith("usage: medbench query")
    for option in ("--task", "--space", "--device", "--runtime", "--threads", "--batch",
                   "--max-latency", "--max-energy", "--max-params", "--min-dice", "--min-metric",
                   "--method", "--sort", "--limit", "--pareto", "--format", "--output"):
        assert option in r.out, option
    assert "query" in cli(None, "--help").out  # the typer app lists it with the others


def test_query_through_the_typer_app_gets_the_same_rows(cli, release):
    """``medbench.commands.app`` hands query's arguments to the one query parser."""
    from medbench.commands import run_app

    direct = cli(release, "query", "--format", "csv", "--pareto")
    out = io.StringIO()
    with redirect_stdout(out):
        assert run_app(["--tables", str(release), "query", "--format", "csv", "--pareto"]) == 0
    assert out.getvalue() == direct.out and direct.code == 0
    with pytest.raises(MedbenchError, match="unrecognized arguments: --bogus"):
        run_app(["query", "--bogus"])


@pytest.mark.parametrize("args, code, out_lines", [
    (("query", "--task", "hippocampus", "--format", "csv", "--limit", "0"), 0, 6),
    (("query", "--task", "hippocampus", "--max-latency", "4 parsecs"), 2, 0),
    (("tasks", "--format", "csv"), 0, None),
])
def test_program_process_flushes_output_and_exit_code(release, args, code, out_lines):
    """The program ends a query process with os._exit: its output and code must survive."""
    import os
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "medbench", *args], capture_output=True,
                       text=True, env={**os.environ, "MEDBENCH_TABLES": str(release)})
    assert r.returncode == code, r.stderr
    if code == 0:
        assert r.stdout.endswith("\n") and "Traceback" not in r.stderr
        if out_lines is not None:
            assert len(r.stdout.splitlines()) == out_lines
    else:
        assert r.stdout == "" and r.stderr.startswith("medbench: error:") \
            and len(r.stderr.splitlines()) == 1
