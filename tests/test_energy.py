"""Energy: the TDP model, and filling it into released rows that lack it (no torch needed).

The devices and latencies below are made up to test code paths, never benchmark content.
"""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from builders import energy as energy_builder
from builders.measure.energy import REFERENCE_CPUS, cpu_tdp, model_power_w
from builders.release import FILLING, release, released_rows
from medbench.manifest import load_manifest
from medbench.release import write_manifest, write_rows
from medbench.validate import validate

TURIN = {"device": "turin-2c", "kind": "cpu", "cpu_model": "AMD EPYC", "cpu_cores": 2,
         "cpu_signature": "family 26 model 2 stepping 1", "run_id": "r"}


def test_reference_parts_by_generation():
    tdp = cpu_tdp(TURIN)
    assert (tdp["tdp_w"], tdp["tdp_cores"]) == (500, 128) and "EPYC 9755" in tdp["tdp_source"]
    genoa = cpu_tdp({**TURIN, "cpu_signature": "family 25 model 17 stepping 1"})
    assert (genoa["tdp_w"], genoa["tdp_cores"]) == (360, 96)
    icelake = cpu_tdp({**TURIN, "cpu_model": "Intel(R) Xeon(R) Processor",
                       "cpu_signature": "family 6 model 106 stepping 6"})
    assert (icelake["tdp_w"], icelake["tdp_cores"]) == (270, 40)
    # one busy core of the Turin part: 500 W / 128 cores; all cores of a 2-vCPU machine: 2x
    assert model_power_w(tdp, 1, 2) == pytest.approx(500 / 128)
    assert model_power_w(tdp, 0, 2) == pytest.approx(2 * 500 / 128)
    assert model_power_w(tdp, 8, 2) == pytest.approx(2 * 500 / 128)  # capped at the machine


def test_unknown_generations_and_overrides():
    old = cpu_tdp({**TURIN, "cpu_signature": None})  # recorded before schema 1.3
    amd = [r.tdp_w / r.cores for r in REFERENCE_CPUS if r.vendor == "AMD"]
    assert old["tdp_cores"] == 1 and min(amd) <= old["tdp_w"] <= max(amd)
    assert "generation not recorded" in old["tdp_source"]
    desktop = cpu_tdp({**TURIN, "cpu_model": "AMD Ryzen 9 9950X",
                       "cpu_signature": "family 26 model 68 stepping 0"})
    assert desktop == {"tdp_w": None, "tdp_cores": None, "tdp_source": None}
    assert model_power_w(desktop, 1, 2) is None
    pi = {**TURIN, "cpu_model": "Cortex-A72", "kind": "edge",
          "cpu_signature": "implementer 0x41 part 0xd08"}
    arm = cpu_tdp(pi)
    assert arm["tdp_w"] is None and arm["tdp_source"] is None
    assert cpu_tdp({**TURIN, "kind": "gpu"})["tdp_w"] is None
    given = cpu_tdp(pi, tdp_watts=6.4)  # a Raspberry Pi 4's TDP, shared by its 2 cores here
    assert (given["tdp_w"], given["tdp_cores"]) == (6.4, 2) and "--tdp-watts" in \
        given["tdp_source"]
    assert cpu_tdp(TURIN, 100, 10)["tdp_w"] / cpu_tdp(TURIN, 100, 10)["tdp_cores"] == 10


def _hardware(device: str, latency: float, threads: int, arch: str = "a") -> dict:
    return {"space": "unet3d", "arch_id": arch, "task": "msd/hippocampus", "device": device,
            "runtime": "onnxruntime", "threads": threads, "batch": 1, "latency_ms": latency,
            "latency_p10_ms": latency * 0.9, "latency_p90_ms": latency * 1.1, "n_repeats": 30,
            "latency_method": "measured", "run_id": "r"}


@pytest.fixture
def measured(tmp_path):
    """Tables with rows measured before energy was modelled: two devices, no energy."""
    root = tmp_path / "tables"
    write_rows(root, "runs", [{"run_id": "r", "builder": "tests", "builder_version": "0",
                               "status": "ok"}], "r")
    write_rows(root, "architectures", [{"space": "unet3d", "arch_id": a, "arch_index": i,
                                        "config": "{}", "run_id": "r"}
                                       for i, a in enumerate("ab")], "r")
    write_rows(root, "tasks", [{"task": "msd/hippocampus", "collection": "msd",
                                "name": "hippocampus", "dims": 3, "n_classes": 3,
                                "metric": "dice", "label_kind": "segmentation", "run_id": "r"}],
               "r")
    arm = {**TURIN, "device": "pi", "cpu_model": "Cortex-A72", "kind": "edge",
           "cpu_signature": "implementer 0x41 part 0xd08"}
    write_rows(root, "devices", [TURIN, arm], "r")
    write_rows(root, "hardware", [_hardware("turin-2c", 4.0, 1), _hardware("turin-2c", 3.0, 0),
                                  _hardware("turin-2c", 8.0, 1, "b"), _hardware("pi", 50.0, 1)],
               "r")
    write_manifest(root)
    return root


def _rows(root, table):
    return {tuple(r[k] for k in ("device", "arch_id", "threads")) if table == "hardware"
            else r["device"]: r for r in released_rows(root, table).to_pylist()}


def test_fill_energy_into_released_rows(measured, tmp_path, capsys):
    before = _rows(measured, "hardware")
    work = tmp_path / "energy"
    assert energy_builder.main(["--tables", str(measured), "--work", str(work)]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["devices"] == ["pi", "turin-2c"]
    added = release(work, measured)
    assert added["hardware (filled)"] == 3 and added["devices (filled)"] == 1
    assert validate(measured).ok
    after = _rows(measured, "hardware")
    per_core = 500 / 128
    for key, row in after.items():
        old = before[key]
        fill = {"energy_mj", "energy_method", "power_w", "energy_run_id"}
        assert {k: v for k, v in row.items() if k not in fill} == \
            {k: v for k, v in old.items() if k not in fill}  # nothing else changed
        if key[0] == "pi":  # no reference part: no energy (until someone gives its TDP)
            assert row["energy_mj"] is None
            continue
        cores = 1 if key[2] == 1 else 2
        assert row["power_w"] == pytest.approx(per_core * cores)
        assert row["energy_mj"] == pytest.approx(per_core * cores * row["latency_ms"])
        assert row["energy_method"] == "tdp_model" and row["energy_run_id"].startswith("energy-")
    devices = _rows(measured, "devices")
    assert devices["turin-2c"]["tdp_w"] == 500 and devices["pi"]["tdp_w"] is None
    assert devices["pi"]["tdp_source"] is None
    # the person who knows the board's TDP fills it in later
    assert energy_builder.main(["--tables", str(measured), "--work", str(tmp_path / "pi"),
                                "--device", "pi", "--tdp-watts", "6.4"]) == 0
    release(tmp_path / "pi", measured)
    pi = _rows(measured, "hardware")[("pi", "a", 1)]
    assert pi["energy_mj"] == pytest.approx(50.0 * 6.4 / 2) and pi["power_w"] == 3.2
    assert "--tdp-watts 6.4" in _rows(measured, "devices")["pi"]["tdp_source"]
    capsys.readouterr()
    runs = {r["run_id"]: r for r in released_rows(measured, "runs").to_pylist()}
    assert runs[after[("turin-2c", "a", 1)]["energy_run_id"]]["builder"] == "builders.energy"
    # a second round finds nothing to model for the Turin rows and fills nothing new
    manifest = load_manifest(measured)
    assert energy_builder.main(["--tables", str(measured), "--work", str(tmp_path / "e2"),
                                "--device", "turin-2c"]) == 2
    assert "every hardware row" in capsys.readouterr().err
    assert load_manifest(measured)["files"] == manifest["files"]


def test_fill_never_overwrites_and_needs_every_other_value_equal(measured, tmp_path):
    work = tmp_path / "energy"
    assert energy_builder.main(["--tables", str(measured), "--work", str(work)]) == 0
    job = next(p for p in (work / "jobs").iterdir() if "turin" in p.name)
    # the job's row for arch b claims another latency: it is not the released row, no fill
    path = next((job / "hardware").rglob("*.parquet"))
    data = pq.read_table(path).to_pylist()
    for r in data:
        if r["arch_id"] == "b":
            r["latency_ms"] = 1.0
    write_rows(job, "hardware", data, path.stem, replace=True)
    release(work, measured)
    after = _rows(measured, "hardware")
    assert after[("turin-2c", "b", 1)]["energy_mj"] is None
    assert after[("turin-2c", "a", 1)]["energy_mj"] == pytest.approx(4.0 * 500 / 128)
    # a device whose TDP is recorded keeps it: no second, different model for its rows
    assert energy_builder.main(["--tables", str(measured), "--work", str(tmp_path / "x"),
                                "--device", "turin-2c", "--tdp-watts", "1000"]) == 2
    # a later job fills row b with the recorded TDP, and a filled row is never overwritten
    work2 = tmp_path / "again"
    assert energy_builder.main(["--tables", str(measured), "--work", str(work2)]) == 0
    turin = next(p for p in (work2 / "jobs").iterdir() if "turin" in p.name)
    path = next((turin / "hardware").rglob("*.parquet"))
    data = pq.read_table(path).to_pylist() + [{**after[("turin-2c", "a", 1)],
                                               "energy_mj": 99.0, "power_w": 99.0}]
    write_rows(turin, "hardware", data, path.stem, replace=True)
    release(work2, measured)
    now = _rows(measured, "hardware")
    assert now[("turin-2c", "a", 1)]["energy_mj"] == after[("turin-2c", "a", 1)]["energy_mj"]
    assert now[("turin-2c", "b", 1)]["energy_mj"] == pytest.approx(8.0 * 500 / 128)
    assert validate(measured).ok


def test_older_schema_files_are_upgraded_and_an_interrupted_fill_recovers(measured, tmp_path):
    # a hardware file written before energy_run_id and power_w existed
    path = next((measured / "hardware").rglob("*.parquet"))
    old = pq.read_table(path).drop_columns(["power_w", "energy_run_id"])
    pq.write_table(old, path)
    write_manifest(measured)
    work = tmp_path / "energy"
    assert energy_builder.main(["--tables", str(measured), "--work", str(work)]) == 0
    # a release that stopped after rewriting files and before the manifest: sizes differ
    (measured / FILLING).touch()
    pq.write_table(old, path, compression="none")  # same rows, another size
    import medbench
    from medbench.errors import TableError

    with pytest.raises(TableError, match="bytes"):
        medbench.open(measured).sql("SELECT 1 FROM hardware")
    release(work, measured)
    assert not (measured / FILLING).exists() and validate(measured).ok
    assert pq.read_schema(path).names[-2:] == ["run_id", "energy_run_id"]
    with medbench.open(measured) as store:
        n = store.sql("SELECT count(energy_mj) FROM hardware").fetchall()[0][0]
    assert n == 3


def test_bad_input_is_one_line(measured, tmp_path, capsys):
    for argv, words in ((["--device", "nope"], "no device 'nope'"),
                        (["--tdp-watts", "50"], "one --device"),
                        (["--tables", str(tmp_path / "none")], "no tables folder")):
        code = energy_builder.main(["--tables", str(measured), "--work", str(tmp_path / "w"),
                                    *argv])
        err = capsys.readouterr().err.strip()
        assert code == 2 and len(err.splitlines()) == 1 and words in err
