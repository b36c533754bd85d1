"""Shared fixtures: a tiny synthetic release in the real format, and a CLI runner.

The numbers below are made up to test code paths; they are never benchmark content.
"""

from __future__ import annotations

import io
import sys
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import pytest

from medbench.release import write_manifest, write_rows

TASK = "msd/hippocampus"
RUN = "run-test"

# arch -> (val_dice per seed, test_dice per seed, params, latency_ms on dev-a, energy_mj)
ARCHS = {
    "a-small": ([0.70, 0.72], [0.69, 0.71], 10_000, 2.0, 4.0),
    "b-mid": ([0.80, 0.82], [0.79, 0.80], 200_000, 3.5, 9.0),
    "c-large": ([0.85, 0.87], [0.84, 0.86], 3_000_000, 12.0, 30.0),
    "d-bad": ([0.60, 0.62], [0.58, 0.60], 500_000, 5.0, 12.0),  # dominated by b-mid
    "e-oneseed": ([0.78], [0.77], 50_000, 1.0, 2.5),
}


def build_release(root: Path) -> Path:
    """Write the tiny release under ``root`` and its manifest; returns ``root``."""
    write_rows(root, "runs", [
        {"run_id": RUN, "builder": "tests", "builder_version": "0", "status": "ok",
         "seconds": 1.0, "rows_written": 10},
    ], "test")
    write_rows(root, "tasks", [
        {"task": TASK, "collection": "msd", "name": "hippocampus", "dims": 3,
         "label_kind": "segmentation", "n_classes": 3,
         "class_names": ["background", "anterior", "posterior"], "input_shape": [1, 48, 64, 48],
         "n_train": 156, "n_val": 52, "n_test": 52, "metric": "dice", "run_id": RUN},
    ], "test")
    write_rows(root, "devices", [
        {"device": "dev-a", "kind": "cpu", "cpu_model": "test cpu", "cpu_cores": 2,
         "run_id": RUN},
        {"device": "dev-b", "kind": "cpu", "cpu_model": "other cpu", "cpu_cores": 4,
         "run_id": RUN},
    ], "test")
    archs, evals, costs, hw = [], [], [], []
    for i, (arch, (val, test, params, lat, energy)) in enumerate(ARCHS.items()):
        archs.append({"space": "unet3d", "arch_id": arch, "arch_index": i,
                      "config": f'{{"name": "{arch}"}}', "run_id": RUN})
        for seed, (v, t) in enumerate(zip(val, test)):
            evals.append({"space": "unet3d", "arch_id": arch, "task": TASK,
                          "method": "standalone", "seed": seed, "epochs": 2, "val_dice": v,
                          "test_dice": t, "val_dice_per_class": [v, v],
                          "train_seconds": 10.0 + i, "device": "dev-a", "run_id": RUN})
        costs.append({"space": "unet3d", "arch_id": arch, "task": TASK, "params": params,
                      "macs": params * 100, "input_shape": [1, 48, 64, 48], "run_id": RUN})
        hw.append({"space": "unet3d", "arch_id": arch, "task": TASK, "device": "dev-a",
                   "runtime": "onnxruntime", "threads": 1, "batch": 1, "latency_ms": lat,
                   "latency_p10_ms": lat * 0.9, "latency_p90_ms": lat * 1.1, "n_repeats": 30,
                   "latency_method": "measured", "energy_mj": energy,
                   "energy_method": "tdp_model", "power_w": energy / lat, "run_id": RUN})
    # dev-b has fewer rows (so dev-a is the default) and is ten times slower.
    for row in hw[:2]:
        hw.append({**row, "device": "dev-b", "latency_ms": row["latency_ms"] * 10,
                   "energy_mj": None, "energy_method": None})
    evals.append({"space": "unet3d", "arch_id": "b-mid", "task": TASK, "method": "supernet",
                  "seed": 0, "epochs": 5, "val_dice": 0.75, "test_dice": 0.74, "run_id": RUN})
    write_rows(root, "architectures", archs, "test")
    write_rows(root, "evaluations", evals, "test")
    write_rows(root, "costs", costs, "test")
    write_rows(root, "hardware", hw, "test")
    write_manifest(root)
    return root


@pytest.fixture
def release(tmp_path: Path) -> Path:
    return build_release(tmp_path / "tables")


@dataclass
class CliResult:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(monkeypatch):
    """Run ``medbench`` in-process: ``cli(tables, *args)`` -> CliResult."""
    from medbench.cli import main

    def run(tables: Path | str | None, *args: str) -> CliResult:
        if tables is not None:
            monkeypatch.setenv("MEDBENCH_TABLES", str(tables))
        out, err = io.StringIO(), io.StringIO()
        code = 0
        with redirect_stdout(out), redirect_stderr(err):
            try:
                main(list(args))
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        return CliResult(code, out.getvalue(), err.getvalue())

    return run


def one_line_error(result: CliResult) -> bool:
    """True when the command failed with exit 2 and exactly one line on stderr, no traceback."""
    lines = [ln for ln in result.err.splitlines() if ln.strip()]
    return (result.code == 2 and len(lines) == 1 and "Traceback" not in result.err
            and lines[0].startswith("medbench: error:"))


if str(Path(__file__).parent) not in sys.path:  # let test modules import conftest helpers
    sys.path.insert(0, str(Path(__file__).parent))
