"""The query side stays light: no torch, MONAI, medmnist or pandas, in a fresh interpreter."""

from __future__ import annotations

import subprocess
import sys

from conftest import build_release

HEAVY = ("torch", "monai", "medmnist", "pandas")

PROBE = """
import sys
import medbench, medbench.cli
from medbench.cli import main
for args in ({queries}):
    try:
        main(list(args))
    except SystemExit:
        pass
print("HEAVY=" + ",".join(m for m in {heavy!r} if m in sys.modules))
print("PYARROW=" + str("pyarrow" in sys.modules))
print("TYPER=" + str("typer" in sys.modules))
print("RICH=" + str("rich" in sys.modules))
"""


def probe(tables, queries):
    code = PROBE.format(queries=queries, heavy=HEAVY)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={"MEDBENCH_TABLES": str(tables), "PATH": ""}, check=True).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def test_import_medbench_alone_loads_nothing_heavy():
    out = subprocess.run([sys.executable, "-c", "import sys, medbench; print(sorted(m for m in "
                          f"{HEAVY + ('duckdb', 'pyarrow', 'numpy')!r} if m in sys.modules))"],
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_query_path_loads_no_torch_and_no_pyarrow(tmp_path):
    tables = build_release(tmp_path / "tables")
    got = probe(tables, "('query', '--task', 'hippocampus', '--max-latency', '4ms'), "
                        "('query', '--task', 'hippocampus', '--pareto', '--format', 'json'), "
                        "('tasks',), ('spaces',), ('devices',), ('info', 'unet3d', 'b-mid'), "
                        "('sql', 'SELECT 1'),")
    assert got["HEAVY"] == ""
    assert got["PYARROW"] == "False"  # the query path reads through DuckDB only


def test_query_is_parsed_without_typer(tmp_path):
    """medbench query starts light: argparse, not typer; rich only for a terminal's table."""
    tables = build_release(tmp_path / "tables")
    got = probe(tables, "('query', '--task', 'hippocampus', '--max-latency', '4ms'), "
                        "('--tables', " + repr(str(tables)) + ", 'query', '--format', 'csv'), "
                        "('query', '--bogus'),")
    assert got["TYPER"] == "False" and got["RICH"] == "False"
    assert probe(tables, "('tasks',),")["TYPER"] == "True"  # the other commands use typer


def test_validate_loads_no_torch(tmp_path):
    tables = build_release(tmp_path / "tables")
    assert probe(tables, "('validate',),")["HEAVY"] == ""


def test_recommend_for_a_known_task_loads_no_torch(tmp_path):
    """Only embedding a new data set needs torch; a task id is answered from the tables."""
    tables = build_release(tmp_path / "tables")
    got = probe(tables, "('recommend', '--dataset', 'breastmnist'), "
                        "('recommend', '--dataset', 'hippocampus', '--max-latency', '4ms'),")
    assert got["HEAVY"] == ""
