"""The hardware builder: device probing, the energy fallback chain, a tiny measurement."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("monai")
pytest.importorskip("onnxruntime")

from builders import hardware  # noqa: E402
from builders.measure import energy  # noqa: E402
from medbench.spaces.nets import build  # noqa: E402

# the slow tier: it exports and times networks
pytestmark = pytest.mark.slow


def write_task(root, task: str, input_shape: list[int], n_classes: int) -> None:
    """A release holding one task's ``tasks`` row: what the hardware builder reads."""
    from medbench.release import write_manifest, write_rows

    collection, name = task.split("/")
    write_rows(root, "tasks", [{"task": task, "collection": collection, "name": name,
                                "dims": len(input_shape) - 1, "n_classes": n_classes,
                                "input_shape": input_shape,
                                "metric": "dice" if collection == "msd" else "acc",
                                "label_kind": "segmentation" if collection == "msd"
                                else "ordinal-regression", "run_id": "r"}], "t")
    write_manifest(root)


def test_probe_reads_the_system():
    row = hardware.probe_device(run_id="r")
    assert row["cpu_cores"] >= 1 and row["memory_gb"] > 0
    assert row["torch_version"] == torch.__version__ and row["os"]
    assert row["device"].endswith(f"-{row['cpu_cores']}c") and row["kind"] in ("cpu", "edge")
    ident = hardware.cpu_identity(Path("/proc/cpuinfo").read_text()) \
        if Path("/proc/cpuinfo").exists() else None
    if ident and ident["tag"]:  # Linux: the CPU's family/model and ISA are in the id
        assert ident["tag"] in row["device"] and row["cpu_signature"] == ident["cpu_signature"]
    assert hardware.probe_device("rpi4")["device"] == "rpi4"


X86 = """processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 25
model\t\t: 17
model name\t: AMD EPYC
stepping\t: 1
cache size\t: 1024 KB
flags\t\t: fpu sse4_2 avx fma avx2 bmi2

processor\t: 1
cpu family\t: 99
model name\t: AMD EPYC
flags\t\t: avx512f
"""

PI4 = """processor\t: 0
BogoMIPS\t: 108.00
Features\t: fp asimd evtstrm crc32 cpuid
CPU implementer\t: 0x41
CPU architecture: 8
CPU variant\t: 0x0
CPU part\t: 0xd08
CPU revision\t: 3

Hardware\t: BCM2835
Model\t\t: Raspberry Pi 4 Model B Rev 1.4
"""


def test_cpu_identity_reads_x86_and_arm():
    assert hardware.cpu_identity(X86) == {
        "cpu_signature": "family 25 model 17 stepping 1", "cpu_isa": "avx2 avx sse4_2",
        "cache_kb": 1024, "tag": "f25m17-avx2"}  # the first processor only
    assert hardware.cpu_identity(PI4) == {
        "cpu_signature": "implementer 0x41 part 0xd08 variant 0x0 revision 3",
        "cpu_isa": "asimd", "cache_kb": None, "tag": "pd08-asimd"}
    assert hardware.cpu_identity("") == {"cpu_signature": None, "cpu_isa": None,
                                         "cache_kb": None, "tag": None}


def test_one_model_name_on_other_hardware_is_another_device():
    """Cloud CPUs share a model name ("AMD EPYC") across generations and hidden instruction
    sets; the default id tells them apart."""
    a = hardware.probe_device(cpuinfo=X86)
    b = hardware.probe_device(cpuinfo=X86.replace("model\t\t: 17", "model\t\t: 1", 1))
    c = hardware.probe_device(cpuinfo=X86.replace(" avx2", " avx512f avx2", 1))
    assert a["device"] == f"amd-epyc-f25m17-avx2-{a['cpu_cores']}c"
    assert b["device"].startswith("amd-epyc-f25m1-avx2-") and c["device"].startswith(
        "amd-epyc-f25m17-avx512f-")
    assert a["cpu_signature"] == "family 25 model 17 stepping 1" and a["cache_kb"] == 1024
    pi = hardware.probe_device(cpuinfo=PI4)
    assert pi["cpu_model"] == "Raspberry Pi 4 Model B Rev 1.4"
    assert pi["device"].startswith("raspberry-pi-4-model-b-rev-1.4-pd08-asimd-")


def test_a_device_id_is_never_reused_for_other_hardware(tmp_path, capsys, monkeypatch):
    from medbench.release import write_manifest, write_rows

    tables = tmp_path / "t"
    write_task(tables, "msd/hippocampus", [1, 48, 64, 48], 3)
    held = hardware.probe_device("box", cpuinfo=X86, run_id="r")
    write_rows(tables, "devices", [held], "d")
    write_manifest(tables)
    hardware.check_same_device(str(tables), held)  # the same hardware: fine
    # before schema 1.3 the signature was not recorded: nothing to compare it with
    hardware.check_same_device(str(tables), {**held, "cpu_signature": None})
    other = hardware.probe_device("box", cpuinfo=X86.replace(" avx2", "", 1))
    with pytest.raises(hardware.MedbenchError, match="other hardware .*cpu_isa"):
        hardware.check_same_device(str(tables), other)
    monkeypatch.setattr(hardware, "probe_device", lambda *a, **k: other)
    code = hardware.main(["--tables", str(tables), "--only", "unet3d:" + hardware.CONTROL,
                          "--device-name", "box", "--work", str(tmp_path / "w")])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "device 'box'" in err and "another --device-name" in err
    assert not (tmp_path / "w").exists()


def fake_rapl(root: Path, uj: int, wrap: int = 2**32) -> Path:
    zone = root / "intel-rapl:0"
    zone.mkdir(parents=True, exist_ok=True)
    (zone / "energy_uj").write_text(str(uj))
    (zone / "max_energy_range_uj").write_text(str(wrap))
    return zone


def test_energy_fallback_chain(tmp_path):
    assert hardware.energy_method(False, str(tmp_path)) == "tdp_model"
    fake_rapl(tmp_path, 123)
    assert hardware.energy_method(False, str(tmp_path)) == "rapl"
    (tmp_path / "intel-rapl:0" / "energy_uj").write_text("permission denied")
    assert hardware.energy_method(False, str(tmp_path)) == "tdp_model"
    # no NVML on a CPU machine: a CUDA request falls through to the next method
    assert hardware.energy_method(True, str(tmp_path / "none")) == "tdp_model"


def test_rapl_energy_subtracts_idle_and_handles_wrap(tmp_path, monkeypatch):
    zone = fake_rapl(tmp_path, 0, wrap=1_000_000)
    # counter readings: start, after idle (1 s), after the calls; the last one wrapped
    readings = iter([990_000, 991_000, 11_000])
    monkeypatch.setattr(energy, "_rapl_uj", lambda z: next(readings))
    clock = iter([0.0, 1.0, 3.0])
    monkeypatch.setattr(energy.time, "perf_counter", lambda: next(clock))
    monkeypatch.setattr(energy.time, "sleep", lambda s: None)
    calls = []
    mj = energy.rapl_energy_mj(zone, lambda: calls.append(1), n=10, idle_seconds=1.0)
    # idle: 1,000 uJ over 1 s = 1 mW; busy: 20,000 uJ over 2 s, minus 2 s x 1 mW = 18 mJ
    assert len(calls) == 10 and mj == pytest.approx(1.8)


def test_measure_and_release_a_tiny_chunk(tmp_path, release):
    from builders.release import release as do_release
    from medbench.validate import validate

    work = tmp_path / "hw"
    code = hardware.main(["--only", "unet3d:s2|c4-8-16|k3-3-3|b1-1-1|r0-0-0", "--repeats", "3",
                          "--threads", "1", "--spatial", "16", "16", "16", "--work", str(work),
                          "--device-name", "test-box", "--tdp-watts", "20", "--rapl-root",
                          str(tmp_path / "no-rapl")])
    assert code == 0
    folder = work / "test-box" / "msd_hippocampus"
    do_release(folder, release)
    report = validate(release)
    assert report.ok, report.problems
    import medbench

    with medbench.open(release) as store:
        rows = store.sql("SELECT runtime, threads, latency_ms, latency_p10_ms, latency_p90_ms, "
                         "n_repeats, energy_mj, energy_method, latency_method FROM hardware "
                         "WHERE device = 'test-box' ORDER BY runtime").fetchall()
        assert [r[:2] for r in rows] == [("onnxruntime", 1), ("torch", 1)]
        for _, _, med, p10, p90, n, energy, method, how in rows:
            assert 0 < p10 <= med <= p90 and n == 3 and how == "measured"
            cores = store.sql("SELECT cpu_cores FROM devices WHERE device = 'test-box'"
                              ).fetchall()[0][0]
            # --tdp-watts 20 over the machine's cores, one of them busy
            assert method == "tdp_model" and energy == pytest.approx(med * 20 / cores)
        args = json.loads(store.sql("SELECT args FROM runs WHERE builder = "
                                    "'builders.hardware'").fetchall()[0][0])
        assert args["control"]["arch_id"] == hardware.CONTROL
        assert args["control"]["onnxruntime/1"]["median_ms"] > 0
        res = store.query(task="hippocampus", device="test-box", limit=0)
        assert res.device == "test-box"
        act = store.sql("SELECT activation_mb FROM costs WHERE arch_id = "
                        "'s2|c4-8-16|k3-3-3|b1-1-1|r0-0-0'").fetchall()
        assert len(act) == 1 and act[0][0] > 0
        from medbench.datasheet import generate

        section = generate(store)
        assert "- latency builder on test-box: 1 architectures in" in section
        assert "noise on test-box" in section and "onnxruntime/1 median" in section


def test_measure_classification_networks_at_the_tasks_size(tmp_path, release, capsys):
    """A MedMNIST task: networks built at the tasks row's shape and classes, a mednns
    control; bad combinations are one line."""
    import numpy as np

    import medbench
    from builders.release import release as do_release
    from medbench.spaces import mednns, mstf

    write_task(release, "medmnist/retinamnist", [3, 28, 28], 5)
    small = mednns.smallest().arch_id
    cell = mstf.sample(1, np.random.default_rng(0))[0]
    work = tmp_path / "hw"
    args = ["--task", "retinamnist", "--tables", str(release), "--repeats", "3",
            "--threads", "1", "--runtimes", "onnxruntime", "--work", str(work),
            "--device-name", "test-box"]
    assert hardware.main([*args, "--only", f"mstf:{cell.arch_id}"]) == 0
    do_release(work / "test-box" / "medmnist_retinamnist", release)
    with medbench.open(release) as store:
        lat = store.sql("SELECT arch_id, latency_ms FROM hardware WHERE task = "
                        "'medmnist/retinamnist'").fetchall()
        assert [a for a, _ in lat] == [cell.arch_id] and lat[0][1] > 0
        params = store.sql("SELECT params FROM costs WHERE space = 'mstf'").fetchall()
        control = json.loads(store.sql("SELECT args FROM runs WHERE builder = "
                                       "'builders.hardware'").fetchall()[0][0])["control"]
    net = build("mstf", cell, 3, 5)
    assert params == [(sum(p.numel() for p in net.parameters()),)]
    assert control["arch_id"] == small and control["onnxruntime/1"]["median_ms"] > 0
    # released: a rerun measures nothing; a setting not measured yet is measured
    capsys.readouterr()
    assert hardware.main([*args, "--only", f"mstf:{cell.arch_id}"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["ran"] == 0
    assert hardware.main([*args[:-4], "--work", str(tmp_path / "hw2"), "--device-name",
                          "test-box", "--threads", "1", "2", "--repeats", "3",
                          "--only", f"mstf:{cell.arch_id}"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["ran"] == 1
    assert hardware.main([*args, "--only", f"mstf:{cell.arch_id}", "--spatial", "8", "8",
                          "8"]) == 2
    assert "--spatial is for MSD tasks" in capsys.readouterr().err
    assert hardware.main([*args, "--lut"]) == 2
    assert "for unet3d on MSD tasks" in capsys.readouterr().err
    assert hardware.main([args[0], "pneumoniamnist", *args[2:]]) == 2
    assert "no input shape for medmnist/pneumoniamnist" in capsys.readouterr().err


def test_msd_task_io_reads_channels_and_classes_from_the_tasks_row(tmp_path):
    """A multi-modal MSD task (e.g. BrainTumour: 4 input channels, 4 classes) is measured at
    its own channels and classes, at the unet3d builder's size unless --spatial says;
    without its tasks row, one clear error."""
    from builders.data.msd import SPATIAL
    from medbench.errors import MedbenchError

    root = tmp_path / "t"
    write_task(root, "msd/braintumour", [4, 128, 128, 128], 4)
    shape, n_out, control = hardware.task_io(str(root), "msd/braintumour")
    assert shape == [4, *SPATIAL] and n_out == 4 and control == ("unet3d", hardware.CONTROL)
    shape, _, _ = hardware.task_io(str(root), "msd/braintumour", [16, 16, 16])
    assert shape == [4, 16, 16, 16]
    with pytest.raises(MedbenchError, match="no input shape for msd/prostate"):
        hardware.task_io(str(root), "msd/prostate")


def test_nothing_to_measure_is_one_line(tmp_path, capsys):
    args = ["--tables", str(tmp_path / "t"), "--work", str(tmp_path / "w")]
    assert hardware.main(args) == 2
    assert "no input shape for msd/hippocampus" in capsys.readouterr().err
    write_task(tmp_path / "t", "msd/hippocampus", [1, 48, 64, 48], 3)
    assert hardware.main(args) == 2
    assert "no architecture to measure" in capsys.readouterr().err


def test_block_decomposition_is_exact():
    """The blocks of an architecture, built alone, hold exactly the network's parameters."""
    import numpy as np

    from medbench.spaces import unet3d
    from medbench.spaces.nets.unet3d import block_module

    # unet3d's whole table, and unet3d-v2's blocks (affine norms, one or two convolutions)
    # over the edge subspace
    sub = unet3d.Subspace(2, 2, (8, 16, 64))
    for space, keys, size, archs in (
            ("unet3d", unet3d.all_blocks(1), 1864, unet3d.sample(20, np.random.default_rng(5))),
            ("unet3d-v2", sub.blocks(1), 354, sub.sample(20, np.random.default_rng(6)))):
        assert len(set(keys)) == size
        for arch in archs:
            blocks = unet3d.blocks(arch, 1)
            assert set(blocks) <= set(keys)
            n = sum(sum(p.numel() for p in block_module(b, (16, 16, 16), 3)[0].parameters())
                    for b in blocks)
            assert n == sum(p.numel() for p in build(space, arch, 1, 3).parameters())


def test_block_inputs_chain_through_a_network():
    from medbench.spaces import unet3d
    from medbench.spaces.nets.unet3d import block_module

    arch = unet3d.from_id("s2|c8-16-32-64|k3-5-3-3|b1-2-1-1|r0-1-0-1")
    outputs = {}
    for key in unet3d.blocks(arch, 1):
        module, shapes = block_module(key, (16, 32, 16), 3)
        y = module(*[torch.zeros(s) for s in shapes])
        outputs[key] = tuple(y.shape)
    assert outputs["head|s2|c8"] == (1, 3, 16, 32, 16)
    assert outputs["enc|l3|s2|i32|c64|k3|b1|r1"] == (1, 64, 1, 2, 1)


def test_measure_blocks_and_fit_the_table(release, tmp_path, capsys):
    import medbench
    from medbench.datasheet import generate
    from medbench.latency import load_lut, predict
    from medbench.release import write_manifest, write_rows
    from medbench.spaces import unet3d

    rows = hardware.measure_blocks(["head|s1|c4", "enc|l0|s1|i1|c4|k3|b1|r0"], [1, 8, 8, 8],
                                   [1], repeats=3)
    assert [r["block"] for r in rows] == ["head|s1|c4", "enc|l0|s1|i1|c4|k3|b1|r0"]
    assert all(r["latency_ms"] > 0 and r["n_repeats"] == 3 for r in rows)

    # a synthetic table: two measured networks and one with results but no measurement
    a1, a2, a3 = (unet3d.from_id(a) for a in ("s2|c4-8-16|k3-3-3|b1-1-1|r0-0-0",
                                               "s2|c8-16-32|k3-3-3|b1-1-1|r0-0-0",
                                               "s2|c4-8-32|k3-3-3|b1-1-1|r0-0-0"))
    blocks = sorted(set(unet3d.blocks(a1, 1)) | set(unet3d.blocks(a2, 1))
                    | set(unet3d.blocks(a3, 1)))
    lut = {b: 1.0 + i for i, b in enumerate(blocks)}
    common = {"space": "unet3d", "task": "msd/hippocampus", "device": "dev-a",
              "runtime": "onnxruntime", "threads": 1, "run_id": "run-test"}
    write_rows(release, "latency_lut", [{**common, "block": b, "latency_ms": v,
                                         "n_repeats": 3} for b, v in lut.items()], "lut")
    sums = {a.arch_id: predict(lut, unet3d.blocks(a, 1), overhead=False) for a in (a1, a2, a3)}
    hw = [{**common, "arch_id": a.arch_id, "batch": 1, "latency_ms": sums[a.arch_id] + extra,
           "latency_method": "measured"} for a, extra in ((a1, 2.0), (a2, 4.0))]
    hw = [{k: v for k, v in r.items() if k != "task"} | {"task": "msd/hippocampus"} for r in hw]
    write_rows(release, "hardware", hw, "hw")
    archs = [{"space": "unet3d", "arch_id": a.arch_id, "arch_index": a.arch_index,
              "config": a.config_json(), "run_id": "run-test"} for a in (a1, a2, a3)]
    write_rows(release, "architectures", archs, "more")
    write_rows(release, "evaluations", [{"space": "unet3d", "arch_id": a3.arch_id,
                                         "task": "msd/hippocampus", "method": "standalone",
                                         "seed": 0, "val_dice": 0.5, "run_id": "run-test"}],
               "a3")
    write_manifest(release)
    capsys.readouterr()
    work = tmp_path / "hw"
    fit_args = ["--fit-lut", "--tables", str(release), "--work", str(work)]
    assert hardware.main(fit_args) == 0
    out = json.loads(capsys.readouterr().out.splitlines()[-1])
    (fit,) = out["fit_lut"]
    # nothing goes into the tables but through a release of the work folder
    with medbench.open(release) as store:
        assert store.sql("SELECT count(*) FROM hardware WHERE latency_method = 'lut'"
                         ).fetchall() == [(0,)]
    from builders.release import release as do_release

    assert do_release(out["work"], release)["hardware"] == 1
    # leave-one-out: each network is predicted with the other's gap (4 for a1, 2 for a2)
    m1, m2 = sums[a1.arch_id] + 2.0, sums[a2.arch_id] + 4.0
    assert fit["n"] == 2 and fit["overhead_ms"] == pytest.approx(3.0)
    assert fit["mape_pct"] == pytest.approx(100 * (2.0 / m1 + 2.0 / m2) / 2)
    assert hardware.main(fit_args) == 0  # idempotent: nothing left to predict
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["rows"] == 0
    # an architecture with results added later is predicted with the released overhead
    a4 = unet3d.from_id("s2|c8-16-16|k3-3-3|b1-1-1|r0-0-0")
    lut.update({b: 0.5 for b in unet3d.blocks(a4, 1) if b not in lut})
    write_rows(release, "latency_lut", [{**common, "block": b, "latency_ms": 0.5,
                                         "n_repeats": 3} for b in unet3d.blocks(a4, 1)
                                        if b not in blocks], "lut-a4")
    write_rows(release, "evaluations", [{"space": "unet3d", "arch_id": a4.arch_id,
                                         "task": "msd/hippocampus", "method": "supernet",
                                         "seed": 0, "val_dice": 0.5, "run_id": "run-test"}],
               "a4")
    write_rows(release, "architectures", [{"space": "unet3d", "arch_id": a4.arch_id,
                                           "arch_index": a4.arch_index,
                                           "config": a4.config_json(), "run_id": "run-test"}],
               "a4")
    write_manifest(release)
    assert hardware.main(fit_args) == 0
    out = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert out["rows"] == 1 and out["fit_lut"][0]["already_fitted"]
    assert do_release(out["work"], release)["hardware"] == 1
    from medbench.validate import validate

    assert validate(release).ok, validate(release).problems
    with medbench.open(release) as store:
        table = load_lut(store, space="unet3d", task="msd/hippocampus", device="dev-a",
                         runtime="onnxruntime", threads=1)
        assert table["overhead"] == pytest.approx(3.0)  # median of the gaps 2 and 4
        got = store.sql("SELECT latency_ms, latency_method FROM hardware WHERE arch_id = "
                        f"'{a3.arch_id}'").fetchall()
        assert got == [(pytest.approx(sums[a3.arch_id] + 3.0), "lut")]
        got = store.sql("SELECT latency_ms FROM hardware WHERE arch_id = "
                        f"'{a4.arch_id}'").fetchall()
        assert got == [(pytest.approx(predict(lut, unet3d.blocks(a4, 1), overhead=False) + 3),)]

    # a second task with results: the fit belongs to hippocampus's section only
    write_rows(release, "evaluations", [{"space": "unet3d", "arch_id": a3.arch_id,
                                         "task": "medmnist/breastmnist", "method": "standalone",
                                         "seed": 0, "val_acc": 0.5, "run_id": "run-test"}],
               "other-task")
    write_manifest(release)
    with medbench.open(release) as store:
        section = generate(store)  # the fit's accuracy, once, in its task's section
        assert section.count("- latency lookup table of unet3d on dev-a (onnxruntime, "
                             "1 thread(s)): MAPE") == 1
    with pytest.raises(medbench.MedbenchError, match="lacks"):
        predict(lut, ["enc|l9|s1|i1|c4|k3|b1|r0"])


def test_lut_build_skips_blocks_already_released(tmp_path, capsys):
    """The whole table takes hours: a later session times only the blocks not yet released
    for this device at every thread setting asked."""
    import pyarrow.parquet as pq

    from medbench.release import write_manifest, write_rows
    from medbench.spaces import unet3d

    tables = tmp_path / "t"
    write_task(tables, "msd/hippocampus", [1, 48, 64, 48], 3)
    arch = "s2|c4-8-16|k3-3-3|b1-1-1|r0-0-0"
    needed = sorted(unet3d.blocks(unet3d.from_id(arch), 1))
    common = {"space": "unet3d", "task": "msd/hippocampus", "runtime": "onnxruntime",
              "latency_ms": 1.0, "n_repeats": 3, "run_id": "r"}
    write_rows(tables, "latency_lut", [
        {**common, "device": "box", "block": needed[0], "threads": 1},
        {**common, "device": "box", "block": needed[1], "threads": 1},
        {**common, "device": "box", "block": needed[1], "threads": 0},
        {**common, "device": "other", "block": needed[2], "threads": 1}], "held")
    write_manifest(tables)
    assert hardware.lut_blocks_in_tables(str(tables), "msd/hippocampus", "box", [1]) == \
        set(needed[:2])
    assert hardware.lut_blocks_in_tables(str(tables), "msd/hippocampus", "box", [1, 0]) == \
        {needed[1]}
    args = ["--tables", str(tables), "--lut", "--lut-only-needed", "--only", f"unet3d:{arch}",
            "--device-name", "box", "--threads", "1", "--repeats", "3", "--spatial", "16",
            "16", "16", "--work", str(tmp_path / "w")]
    capsys.readouterr()
    assert hardware.main(args) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["blocks"] == len(needed) - 2 and out["ok"] == 1
    timed = {b for f in (tmp_path / "w").rglob("latency_lut/**/*.parquet")
             for b in pq.read_table(f, columns=["block"]).column("block").to_pylist()}
    assert timed == set(needed[2:])
    write_rows(tables, "latency_lut", [{**common, "device": "box", "block": b, "threads": 1}
                                       for b in needed[2:]], "rest")
    write_manifest(tables)
    assert hardware.main(args) == 2
    assert "every block asked for is in" in capsys.readouterr().err


def test_lut_of_the_v2_edge_subspace(tmp_path, capsys):
    """``--lut --space unet3d-v2 --cmax``: the subspace's blocks, in the v2 space's table."""
    import pyarrow.parquet as pq

    from medbench.release import write_manifest
    from medbench.spaces import unet3d

    tables = tmp_path / "t"
    write_task(tables, "msd/hippocampus", [1, 48, 64, 48], 3)
    write_manifest(tables)
    base = ["--tables", str(tables), "--lut", "--space", "unet3d-v2", "--device-name", "box",
            "--threads", "1", "--repeats", "3", "--spatial", "16", "16", "16", "--work",
            str(tmp_path / "w"), "--only", "unet3d-v2:s2|c4-8-16|k3-3-3|b1-1-1|r0-0-0|n1-1-1"]
    assert hardware.main(base) == 2                       # the whole v2 space: refused
    assert "needs --cmax" in capsys.readouterr().err
    assert hardware.main([*base, "--cmax", "4", "8", "17"]) == 2
    assert hardware.main([*base, "--cmax", "4", "8", "16"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["blocks"] == len(unet3d.Subspace(2, 2, (4, 8, 16)).blocks(1)) == 81
    rows = [r for f in (tmp_path / "w").rglob("latency_lut/**/*.parquet")
            for r in pq.read_table(f, columns=["space", "block"]).to_pylist()]
    assert len(rows) == 81 and {r["space"] for r in rows} == {"unet3d-v2"}
    assert all(r["block"].startswith("head") or "|n" in r["block"] for r in rows)


def test_activation_memory_counts_live_tensors():
    import torch

    from builders.measure.costs import activation_mb
    from medbench.spaces import unet3d

    # conv1 out (2 x 64 floats) dies once ReLU has run; at the peak, ReLU's output (512 B)
    # and conv2's output (4 x 64 x 4 B = 1,024 B) are alive: 1,536 bytes.
    net = torch.nn.Sequential(torch.nn.Conv3d(1, 2, 3, padding=1), torch.nn.ReLU(),
                              torch.nn.Conv3d(2, 4, 3, padding=1))
    assert activation_mb(net, 1, (4, 4, 4), "cpu") == pytest.approx(1536 / 1e6)
    small = build("unet3d", unet3d.from_id("s2|c8-16-32|k3-3-3|b1-1-1|r0-0-0"), 1, 3)
    large = build("unet3d", unet3d.from_id("s2|c16-32-64|k3-3-3|b1-1-1|r0-0-0"), 1, 3)
    a, b = (activation_mb(n, 1, (16, 16, 16), "cpu") for n in (small, large))
    assert 0 < a < b


def test_architectures_to_measure_by_training_method(release):
    from conftest import ARCHS, TASK

    from builders.plans import architectures_to_measure

    assert architectures_to_measure(str(release), TASK, 0, method="supernet") == [
        ("unet3d", "b-mid")]
    standalone = architectures_to_measure(str(release), TASK, 0, method="standalone")
    assert standalone == sorted(("unet3d", a) for a in ARCHS)
    assert architectures_to_measure(str(release), TASK, 0) == standalone  # b-mid in both
