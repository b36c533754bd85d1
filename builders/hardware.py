"""Measure latency (and energy where the machine can) of architectures on this device.

    python -m builders.hardware --task hippocampus [--tables tables] [--plan 60]
        [--device-name rpi4] [--runtimes onnxruntime torch] [--threads 1 0] [--repeats 30]

Run it on the device to measure (a Raspberry Pi, a Jetson, a laptop, a GPU server): it
probes the device into a ``devices`` row, then measures every architecture with results in
``--tables`` (plus the ``unet3d`` standalone plan with ``--plan``) at the task's input shape,
batch 1: 48x64x48 U-Nets for MSD hippocampus, the ``tasks`` row's image size and classes for
a MedMNIST set (``--task breastmnist``). Architectures ``--tables`` already holds measured on
this device in every runtime and thread setting asked for are skipped, so a rerun after a
release measures only what is new. Release the work folder into tables with ``python -m
builders.release runs/hardware/<device>/<task>`` (or send that folder to the maintainers):
that is the bring-your-own-device path, the same for every device.

Protocol: each network is exported once to ONNX (opset 17) and also run in PyTorch eager
mode. For every (runtime, threads) setting, each network is warmed up (5 runs), then timed
over ``--repeats`` rounds; within a round the networks of a chunk and a fixed control
network are run one after another (interleaved), so slow drift of a shared machine spreads
over all networks instead of biasing some, and the control's spread measures that drift.
Reported: median, p10 and p90 of the per-round times.

Energy, per batch, by the first method the machine supports: NVML energy counter on a CUDA
GPU (``nvml``, measured over a window of inferences), RAPL package energy from
``/sys/class/powercap`` (``rapl``, idle baseline subtracted), else ``--tdp-watts`` x latency
x (threads / cores) (``estimated``), else NULL. Nothing is estimated from a made-up power.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import statistics
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from builders.jobs import Job, WorkDir, add_backend_args, at_least, run_jobs
from medbench.catalog import resolve_space, resolve_task
from medbench.errors import MedbenchError

__all__ = ["probe_device", "cpu_identity", "check_same_device", "rapl_zone", "rapl_energy_mj",
           "energy_method", "measure_chunk", "main"]

VERSION = "1.1"  # 1.0: p10/p90 by exclusive quantiles (could extrapolate)
BUILDER = "builders.hardware"
CONTROL = "s2|c8-16-32|k3-3-3|b1-1-1|r0-0-0"
RAPL_ROOT = "/sys/class/powercap"


# -- the device ------------------------------------------------------------------------------

def _read(path: str) -> str | None:
    try:
        return Path(path).read_text()
    except OSError:
        return None


#: Vector instruction sets that decide convolution speed, fastest first: the first one the CPU
#: reports names its level in the device id (x86 flags, then ARM features).
ISA_LEVELS = ("amx_tile", "avx512f", "avx2", "avx", "sse4_2", "sve2", "sve", "asimd", "neon")


def cpu_identity(cpuinfo: str) -> dict:
    """What identifies a CPU beyond its model name, from the first processor of ``cpuinfo``.

    Cloud machines report the same model name ("AMD EPYC") for CPUs of different generations,
    and hypervisors hide instruction sets, so two machines of one name can differ in 3D
    convolution speed (two "AMD EPYC" machines ran the same U-Nets 1.46x apart, median).
    Returns ``cpu_signature`` (x86 family/model/stepping, or the ARM implementer/part/
    variant/revision), ``cpu_isa`` (the :data:`ISA_LEVELS` the CPU reports), ``cache_kb``
    and ``tag``, the short form used in device ids (e.g. ``f25m17-avx2``); each None where
    the system does not say.
    """
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        if not line.strip():
            if fields:  # the end of the first processor's block
                break
            continue
        key, _, value = line.partition(":")
        fields.setdefault(key.strip().lower(), value.strip())
    flags = set((fields.get("flags") or fields.get("features") or "").split())
    isa = [f for f in ISA_LEVELS if f in flags]
    sig = tag = None
    if "cpu family" in fields and "model" in fields:
        sig = (f"family {fields['cpu family']} model {fields['model']} "
               f"stepping {fields.get('stepping', '?')}")
        tag = f"f{fields['cpu family']}m{fields['model']}"
    elif "cpu part" in fields:
        sig = " ".join(f"{k.split()[-1]} {fields[k]}" for k in
                       ("cpu implementer", "cpu part", "cpu variant", "cpu revision")
                       if k in fields)
        tag = f"p{fields['cpu part'].removeprefix('0x')}"
    if isa:
        tag = f"{tag}-{isa[0].split('_')[0]}" if tag else isa[0].split("_")[0]
    cache = re.match(r"(\d+)\s*KB", fields.get("cache size", ""), re.I)
    return {"cpu_signature": sig, "cpu_isa": " ".join(isa) or None,
            "cache_kb": int(cache.group(1)) if cache else None, "tag": tag}


def probe_device(name: str | None = None, cuda: bool = False, run_id: str = "",
                 cpuinfo: str | None = None) -> dict:
    """A ``devices`` row read from this system (nothing typed in by hand).

    The default id is the CPU (or GPU) model, the CPU's :func:`cpu_identity` tag and the
    core count, e.g. ``amd-epyc-f25m17-avx2-2c``. ``cpuinfo`` replaces ``/proc/cpuinfo``
    (tests).
    """
    if cpuinfo is None:
        cpuinfo = _read("/proc/cpuinfo") or ""
    cpu = platform.processor() or platform.machine()
    for line in cpuinfo.splitlines():
        if line.startswith(("model name", "Model")):
            cpu = line.split(":", 1)[1].strip()
            break
    ident = cpu_identity(cpuinfo)
    mem_gb = None
    for line in (_read("/proc/meminfo") or "").splitlines():
        if line.startswith("MemTotal:"):
            mem_gb = round(int(line.split()[1]) / 1024 ** 2, 1)
    cores = os.cpu_count() or 1
    gpu = None
    import torch

    if cuda and torch.cuda.is_available():
        gpu = torch.cuda.get_device_name(0)
    try:
        import onnxruntime

        ort_version = onnxruntime.__version__
    except ImportError:
        ort_version = None
    slug = "-".join((gpu or cpu).lower().replace("(r)", "").replace("(tm)", "").split())
    if not gpu and ident["tag"]:
        slug = f"{slug}-{ident['tag']}"
    return {
        "device": name or f"{slug}-{cores}c",
        "kind": "gpu" if gpu else ("edge" if platform.machine().startswith(("arm", "aarch"))
                                   else "cpu"),
        "cpu_model": cpu, "cpu_cores": cores, "memory_gb": mem_gb, "gpu_model": gpu,
        "cpu_signature": ident["cpu_signature"], "cpu_isa": ident["cpu_isa"],
        "cache_kb": ident["cache_kb"],
        "os": f"{platform.system()} {platform.release()}",
        "python_version": platform.python_version(), "torch_version": torch.__version__,
        "onnxruntime_version": ort_version,
        "probed_at": datetime.now(timezone.utc).replace(tzinfo=None), "run_id": run_id,
    }


#: ``devices`` columns that identify the hardware: a device id already in the tables must
#: match this machine on each of them that both record.
IDENTITY = ("kind", "cpu_model", "cpu_cores", "gpu_model", "cpu_signature", "cpu_isa",
            "cache_kb")


def check_same_device(tables: str | None, row: dict) -> None:
    """Refuse to add measurements under a device id whose recorded hardware differs from
    this machine's (say, ``--device-name`` reused on another machine)."""
    if not tables or not Path(tables).is_dir():
        return
    import medbench

    cols = ("device",) + IDENTITY
    with medbench.open(tables) as store:
        held = [dict(zip(cols, r)) for r in store.fetchall(
            f'SELECT {", ".join(cols)} FROM "{store.view("devices")}" WHERE device = ?',
            [row["device"]])]
    for old in held:
        differ = [c for c in IDENTITY if old.get(c) is not None and row.get(c) is not None
                  and old[c] != row[c]]
        if differ:
            what = "; ".join(f"{c} {old[c]!r} there, {row[c]!r} here" for c in differ)
            raise MedbenchError(f"device {row['device']!r} in {tables} is other hardware "
                                f"({what}); measure this machine under another --device-name")


# -- energy ------------------------------------------------------------------------------------

def rapl_zone(root: str = RAPL_ROOT) -> Path | None:
    """The package-0 RAPL zone if its counter is readable (needs root since kernel 5.10)."""
    zone = Path(root) / "intel-rapl:0"
    try:
        int((zone / "energy_uj").read_text())
        return zone
    except (OSError, ValueError):
        return None


def _rapl_uj(zone: Path) -> int:
    return int((zone / "energy_uj").read_text())


def rapl_energy_mj(zone: Path, fn, n: int, idle_seconds: float = 1.0) -> float:
    """Energy of one call of ``fn`` in mJ: package energy over ``n`` calls minus the idle
    power measured just before, divided by ``n``; handles the counter's wrap-around."""
    wrap = int((zone / "max_energy_range_uj").read_text()) \
        if (zone / "max_energy_range_uj").exists() else 2 ** 32
    delta = lambda a, b: (b - a) % wrap  # noqa: E731
    e0, t0 = _rapl_uj(zone), time.perf_counter()
    time.sleep(idle_seconds)
    e1, t1 = _rapl_uj(zone), time.perf_counter()
    idle_w = delta(e0, e1) / 1e6 / (t1 - t0)
    for _ in range(n):
        fn()
    e2, t2 = _rapl_uj(zone), time.perf_counter()
    busy_j = delta(e1, e2) / 1e6 - idle_w * (t2 - t1)
    return max(busy_j, 0.0) / n * 1e3


def energy_method(cuda: bool, tdp_watts: float | None, rapl_root: str = RAPL_ROOT) -> str | None:
    """The first energy method this machine supports: nvml, rapl, estimated, or None."""
    if cuda:
        try:
            import pynvml

            pynvml.nvmlInit()
            handle = pynvml.nvmlDeviceGetHandleByIndex(0)
            pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)
            return "nvml"
        except Exception:  # noqa: BLE001 - no NVML or no energy counter: fall through
            pass
    if rapl_zone(rapl_root) is not None:
        return "rapl"
    if tdp_watts:
        return "estimated"
    return None


def _nvml_energy_mj(fn, n: int) -> float:
    import pynvml
    import torch

    handle = pynvml.nvmlDeviceGetHandleByIndex(0)
    torch.cuda.synchronize()
    e0 = pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)  # mJ
    for _ in range(n):
        fn()
    torch.cuda.synchronize()
    return (pynvml.nvmlDeviceGetTotalEnergyConsumption(handle) - e0) / n


# -- measuring -----------------------------------------------------------------------------------

@dataclass
class Net:
    space: str
    arch_id: str
    run: dict  # (runtime, threads) -> callable running one inference


def task_io(tables: str | None, task: str, spatial: list[int] | None = None
            ) -> tuple[list[int], int, tuple[str, str]]:
    """(input shape without the batch, output channels, control network) of a task.

    Both come from the task's row in the ``tasks`` table (its builders write it). MSD tasks:
    the row's input channels at ``spatial`` (default the ``unet3d`` builder's 48x64x48) and
    :data:`CONTROL`. MedMNIST tasks: the row's input shape, and the smallest ``mednns``
    network as the control.
    """
    row = None
    if tables and Path(tables).is_dir():
        import medbench

        with medbench.open(tables) as store:
            row = store.fetchone(f'SELECT input_shape, n_classes FROM "{store.view("tasks")}" '
                                 "WHERE task = ?", [task])
    if not row or not row[0] or not row[1]:
        raise MedbenchError(f"no input shape for {task} in {tables}: release its results "
                            "(its builders write the tasks row) first")
    shape, n_classes = list(row[0]), int(row[1])
    if task.startswith("msd/"):
        from builders.unet3d import SPATIAL

        return [shape[0], *(spatial or SPATIAL)], n_classes, ("unet3d", CONTROL)
    if spatial:
        raise MedbenchError("--spatial is for MSD tasks; a MedMNIST task has its own size")
    from medbench.spaces import mednns

    return shape, n_classes, ("mednns", mednns.smallest().arch_id)


def _networks(space: str, arch_id: str, shape: list[int], runtimes, threads, device: str,
              n_out: int = 3):
    import io

    import numpy as np
    import torch

    from medbench.spaces import build_network

    net, arch_index, config = build_network(space, arch_id, shape[0], n_out,
                                            dims=len(shape) - 1)
    net = net.eval().to(device)
    x = torch.zeros(1, *shape, device=device)
    runs = {}
    if "torch" in runtimes:
        def run_torch(net=net, x=x):
            with torch.no_grad():
                net(x)
            if device.startswith("cuda"):
                torch.cuda.synchronize()
        for t in threads:
            runs[("torch", t)] = run_torch
    if "onnxruntime" in runtimes:
        import onnxruntime as ort

        buf = io.BytesIO()
        torch.onnx.export(net.cpu(), (x.cpu(),), buf, dynamo=False, opset_version=17,
                          input_names=["x"], output_names=["y"])
        net.to(device)
        xn = np.zeros((1, *shape), np.float32)
        for t in threads:
            so = ort.SessionOptions()
            so.intra_op_num_threads, so.inter_op_num_threads = t, 1
            sess = ort.InferenceSession(buf.getvalue(), so, providers=["CPUExecutionProvider"])
            runs[("onnxruntime", t)] = lambda sess=sess, xn=xn: sess.run(None, {"x": xn})
    from builders.unet3d import count_macs, activation_mb

    params = sum(p.numel() for p in net.parameters())
    macs = count_macs(net, shape[0], tuple(shape[1:]), device)
    act = activation_mb(net, shape[0], tuple(shape[1:]), device)
    return Net(space, arch_id, runs), arch_index, config, params, macs, act


def _set_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(threads or os.cpu_count() or 1)


def _deciles(times: list[float]) -> list[float]:
    """The 9 deciles of the times, interpolated between measured values (statistics'
    default method extrapolates beyond them: a p10 below the fastest run, even below 0 ms,
    with few repeats)."""
    return statistics.quantiles(times, n=10, method="inclusive")


def measure_chunk(archs: list[tuple[str, str]], shape: list[int], runtimes: list[str],
                  threads: list[int], repeats: int, device: str, method: str | None,
                  tdp_watts: float | None, rapl_root: str = RAPL_ROOT,
                  warmup: int = 5, n_out: int = 3,
                  control_net: tuple[str, str] = ("unet3d", CONTROL)
                  ) -> tuple[list[dict], dict, dict]:
    """Measure a chunk of (space, arch_id) plus the control, interleaved (input ``shape``
    without the batch, ``n_out`` output channels).

    Returns:
        (one result dict per (arch, runtime, threads), {(space, arch_id): (arch_index,
        config, params, macs)}, the control's per-setting statistics).
    """
    nets, meta = [], {}
    for space, arch_id in [*archs, control_net]:
        net, *facts = _networks(space, arch_id, shape, runtimes, threads, device, n_out)
        nets.append(net)
        meta[(space, arch_id)] = tuple(facts)  # arch_index, config, params, macs, act
    cores = os.cpu_count() or 1
    results, control = [], {}
    for setting in nets[0].run:
        runtime, t = setting
        _set_threads(t)
        for net in nets:
            for _ in range(warmup):
                net.run[setting]()
        times: list[list[float]] = [[] for _ in nets]
        for _ in range(repeats):
            for i, net in enumerate(nets):
                t0 = time.perf_counter()
                net.run[setting]()
                times[i].append((time.perf_counter() - t0) * 1e3)
        for net, ts in zip(nets[:-1], times[:-1]):
            q = _deciles(ts)
            median = statistics.median(ts)
            energy = None
            if method == "estimated":
                energy = median * tdp_watts * (min(t or cores, cores) / cores)  # ms x W = mJ
            elif method == "rapl":
                energy = rapl_energy_mj(rapl_zone(rapl_root), net.run[setting],
                                        max(20, int(1000 / max(median, 1e-3))))
            elif method == "nvml":
                energy = _nvml_energy_mj(net.run[setting], max(20, int(1000 / max(median,
                                                                                   1e-3))))
            results.append({"space": net.space, "arch_id": net.arch_id, "runtime": runtime,
                            "threads": t, "latency_ms": median, "latency_p10_ms": q[0],
                            "latency_p90_ms": q[-1], "n_repeats": repeats,
                            "energy_mj": energy, "energy_method": method if energy is not None
                            else None})
        c = times[-1]
        control[f"{runtime}/{t}"] = {"median_ms": statistics.median(c),
                                     "p10_ms": _deciles(c)[0], "p90_ms": _deciles(c)[-1]}
    _set_threads(0)
    return results, meta, control


def measure_blocks(keys: list[str], shape: list[int], threads: list[int], repeats: int,
                   warmup: int = 3, out_channels: int = 3) -> list[dict]:
    """Median ONNX Runtime latency of each ``unet3d`` block alone, per thread count."""
    import io

    import numpy as np
    import onnxruntime as ort
    import torch

    from medbench.spaces._unet3d_torch import block_module

    rows = []
    for key in keys:
        module, shapes = block_module(key, tuple(shape[1:]), out_channels)
        module.eval()
        inputs = tuple(torch.zeros(sh) for sh in shapes)
        names = [f"x{i}" for i in range(len(inputs))]
        buf = io.BytesIO()
        torch.onnx.export(module, inputs, buf, dynamo=False, opset_version=17,
                          input_names=names, output_names=["y"])
        feed = {n: np.zeros(sh, np.float32) for n, sh in zip(names, shapes)}
        for t in threads:
            so = ort.SessionOptions()
            so.intra_op_num_threads, so.inter_op_num_threads = t, 1
            sess = ort.InferenceSession(buf.getvalue(), so, providers=["CPUExecutionProvider"])
            for _ in range(warmup):
                sess.run(None, feed)
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                sess.run(None, feed)
                times.append((time.perf_counter() - t0) * 1e3)
            rows.append({"block": key, "threads": t, "latency_ms": statistics.median(times),
                         "n_repeats": repeats})
    return rows


def fit_lut(tables: str, task: str, run_id: str) -> tuple[dict[str, list[dict]], list[dict]]:
    """Fit the per-network overhead of every latency table in ``tables`` on the networks
    measured with the same device, runtime and threads; predict (``latency_method = 'lut'``)
    the architectures with results that were not measured.

    Returns:
        (rows per table, one accuracy summary per setting: n, and the MAPE and Kendall tau
        of leave-one-out predictions against the measurements).
    """
    import statistics as st

    from scipy.stats import kendalltau

    import medbench
    from medbench.latency import predict
    from medbench.spaces import unet3d

    in_channels = task_io(tables, task)[0][0]
    lut_rows, hw_rows, summary = [], [], []
    with medbench.open(tables) as store:
        lut_view, hw_view = store.view("latency_lut", task), store.view("hardware", task)
        settings = store.fetchall(f'SELECT DISTINCT space, device, runtime, threads FROM '
                                  f'"{lut_view}" WHERE task = ? AND space = ? ORDER BY ALL',
                                  [task, "unet3d"])
        with_results = {a for (a,) in store.fetchall(
            f'SELECT DISTINCT arch_id FROM "{store.view("evaluations", task)}" WHERE task = ? '
            "AND space = 'unet3d'", [task])}
        for space, device, runtime, threads in settings:
            lut = dict(store.fetchall(
                f'SELECT block, latency_ms FROM "{lut_view}" WHERE task = ? AND space = ? AND '
                "device = ? AND runtime = ? AND threads = ? AND block <> 'overhead'",
                [task, space, device, runtime, threads]))
            measured = dict(store.fetchall(
                f'SELECT arch_id, latency_ms FROM "{hw_view}" WHERE task = ? AND space = ? AND '
                "device = ? AND runtime = ? AND threads = ? AND batch = 1 AND "
                "latency_method = 'measured'", [task, space, device, runtime, threads]))
            sums = {}
            for arch_id in set(measured) | with_results:
                try:
                    keys = unet3d.blocks(unet3d.from_id(arch_id), in_channels)
                except MedbenchError:  # not an id of this space's grammar: nothing to predict
                    continue
                if all(k in lut for k in keys):
                    sums[arch_id] = predict(lut, keys, overhead=False)
            pairs = [(measured[a], sums[a]) for a in measured if a in sums]
            fitted = store.fetchall(
                f'SELECT 1 FROM "{lut_view}" WHERE task = ? AND space = ? AND device = ? AND '
                "runtime = ? AND threads = ? AND block = 'overhead'",
                [task, space, device, runtime, threads])
            if fitted:  # fitted already: a rerun changes nothing
                summary.append({"task": task, "device": device, "runtime": runtime,
                                "threads": threads, "already_fitted": True})
                continue
            if not pairs:
                continue
            gaps = [m - p for m, p in pairs]
            overhead = st.median(gaps)
            lut_rows.append({"space": space, "task": task, "device": device,
                             "runtime": runtime, "threads": threads, "block": "overhead",
                             "latency_ms": overhead, "n_repeats": len(pairs),
                             "run_id": run_id})
            # the error of each network's prediction with the overhead fitted on the others
            # (leave-one-out), so the reported accuracy is not measured on the fit's own data
            pred = [p + (st.median(gaps[:i] + gaps[i + 1:]) if len(gaps) > 1 else overhead)
                    for i, (_, p) in enumerate(pairs)]
            meas = [m for m, _ in pairs]
            mape = 100 * sum(abs(p - m) / m for p, m in zip(pred, meas)) / len(meas)
            tau = kendalltau(pred, meas).statistic if len(meas) > 1 else None
            summary.append({"task": task, "device": device, "runtime": runtime,
                            "threads": threads, "n": len(pairs), "overhead_ms": overhead,
                            "mape_pct": mape, "kendall_tau": tau})
            predicted = {a for (a,) in store.fetchall(
                f'SELECT arch_id FROM "{hw_view}" WHERE task = ? AND space = ? AND device = ? '
                "AND runtime = ? AND threads = ? AND batch = 1",
                [task, space, device, runtime, threads])}
            for arch_id in sorted(with_results - predicted):
                if arch_id in sums:
                    hw_rows.append({"space": space, "arch_id": arch_id, "task": task,
                                    "device": device, "runtime": runtime, "threads": threads,
                                    "batch": 1, "latency_ms": sums[arch_id] + overhead,
                                    "latency_method": "lut", "run_id": run_id})
    return {"latency_lut": lut_rows, "hardware": hw_rows}, summary


def architectures_to_measure(tables: str | None, task: str, plan_archs: int,
                             space: str | None = None) -> list[tuple]:
    """(space, arch_id) with results for ``task`` in ``tables``, plus the standalone plan of
    ``space`` (``unet3d-v2`` unless ``unet3d`` is asked for); only ``space``'s if given."""
    out = set()
    if tables and Path(tables).is_dir():
        import medbench

        with medbench.open(tables) as store:
            out |= set(store.fetchall(
                f'SELECT DISTINCT space, arch_id FROM "{store.view("evaluations", task)}" '
                "WHERE task = ?", [task]))
    if plan_archs:
        from builders.unet3d import plan, plan_v2

        make = plan if space == "unet3d" else plan_v2
        out |= {(j.args["space"], j.args["arch_id"]) for j in make(plan_archs, [0], True)}
    return sorted(a for a in out if space is None or a[0] == space)


def measured_in_tables(tables: str | None, task: str, device: str, runtimes: list[str],
                       threads: list[int]) -> set[tuple[str, str]]:
    """(space, arch_id) that ``tables`` already holds measured at batch 1 on ``device`` for
    every (runtime, threads) asked for: a rerun after a release skips them."""
    if not tables or not Path(tables).is_dir():
        return set()
    import medbench

    wanted = sorted({f"{r}/{t}" for r in runtimes for t in threads})
    with medbench.open(tables) as store:
        return set(store.fetchall(
            f'SELECT space, arch_id FROM "{store.view("hardware", task)}" WHERE task = ? AND '
            "device = ? AND batch = 1 AND latency_method = 'measured' AND list_contains(?, "
            "runtime || '/' || threads) GROUP BY ALL HAVING count(DISTINCT runtime || '/' || "
            "threads) = ?", [task, device, wanted, len(wanted)]))


def lut_blocks_in_tables(tables: str | None, task: str, device: str,
                         threads: list[int]) -> set[str]:
    """``unet3d`` blocks whose ONNX Runtime time ``tables`` holds for ``device`` at every
    thread setting in ``threads``."""
    if not tables or not Path(tables).is_dir():
        return set()
    import medbench

    with medbench.open(tables) as store:
        return {b for (b,) in store.fetchall(
            f'SELECT block FROM "{store.view("latency_lut", task)}" WHERE task = ? AND '
            "space = 'unet3d' AND device = ? AND runtime = 'onnxruntime' AND "
            "list_contains(?, threads) GROUP BY block HAVING count(DISTINCT threads) = ?",
            [task, device, sorted(set(threads)), len(set(threads))])}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m builders.hardware",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--task", default="msd/hippocampus")
    ap.add_argument("--tables", default="tables", help="measure the architectures with "
                    "results here")
    ap.add_argument("--plan", type=int, default=0, help="also the unet3d-v2 (or --space's) "
                    "standalone plan of this many architectures (and the DynUNet reference)")
    ap.add_argument("--space", default=None, help="only architectures of this space")
    ap.add_argument("--only", nargs="*", default=None, help="measure these space:arch_id")
    ap.add_argument("--device-name", default=None, help="device id (default: from the CPU/GPU)")
    ap.add_argument("--device", default="cpu", help="cpu or cuda (torch runtime only)")
    ap.add_argument("--runtimes", nargs="+", default=["onnxruntime", "torch"])
    ap.add_argument("--threads", type=at_least(0), nargs="+", default=[1, 0],
                    help="intra-op threads to measure (0 = all cores)")
    ap.add_argument("--repeats", type=at_least(3), default=30)
    ap.add_argument("--chunk", type=at_least(1), default=8, help="architectures per job")
    ap.add_argument("--max-gmacs", type=at_least(0, float), default=0,
                    help="only unet3d architectures up to this many GMACs (0 = all)")
    ap.add_argument("--tdp-watts", type=float, default=None,
                    help="the CPU's TDP, for estimated energy where no counter is readable")
    ap.add_argument("--spatial", type=int, nargs=3, default=None,
                    help="input size (default: the task's, 48 64 48 for MSD hippocampus)")
    ap.add_argument("--work", default="runs/hardware")
    ap.add_argument("--rapl-root", default=RAPL_ROOT, help=argparse.SUPPRESS)
    ap.add_argument("--lut", action="store_true", help="measure the unet3d blocks alone for "
                    "the latency lookup table (ONNX Runtime) instead of whole networks")
    ap.add_argument("--lut-only-needed", action="store_true", help="with --lut: only the "
                    "blocks of the architectures that would be measured")
    ap.add_argument("--fit-lut", action="store_true", help="fit the table's overhead on the "
                    "measured networks in --tables and predict the unmeasured ones")
    add_backend_args(ap)
    args = ap.parse_args(argv)
    if args.fit_lut:
        return _fit_main(args)
    try:
        task = resolve_task(args.task)
        if args.repeats < 3:
            raise MedbenchError("--repeats must be at least 3")
        if not task.startswith("msd/") and (args.lut or args.plan or args.max_gmacs):
            raise MedbenchError("--lut, --plan and --max-gmacs are for unet3d on MSD tasks")
        shape, n_out, control_net = task_io(args.tables, task, args.spatial)
        space = resolve_space(args.space) if args.space else None
        archs = [tuple(a.split(":", 1)) for a in args.only] if args.only else \
            architectures_to_measure(args.tables, task, args.plan, space)
        if args.max_gmacs:
            from medbench.spaces import get_space

            def gmacs(a: tuple) -> float:
                m = get_space(a[0])
                return m.macs(m.from_id(a[1]), shape[0], n_out, tuple(shape[1:])) / 1e9

            archs = [a for a in archs if a[0].startswith("unet3d")
                     and gmacs(a) <= args.max_gmacs]
        if not archs:
            raise MedbenchError(f"no architecture to measure for {task}: none has results in "
                                f"{args.tables}; use --plan or --only")
        cuda = args.device.startswith("cuda")
        device_row = probe_device(args.device_name, cuda)
        check_same_device(args.tables, device_row)
        # Timings taken side by side would slow each other: on this machine one job at a
        # time; on Ray each task holds a whole node (``--workers`` nodes of this kind at once).
        if args.backend == "local" and args.workers != 1:
            raise MedbenchError("latency is measured one job at a time on a machine: "
                                "--workers > 1 needs --backend ray (one job per node)")
        placement = {"backend": args.backend, "workers": args.workers,
                     "cpus_per_job": os.cpu_count() or 1}
        if not args.lut:
            done = measured_in_tables(args.tables, task, device_row["device"], args.runtimes,
                                      args.threads)
            archs = [a for a in archs if tuple(a) not in done]
        method = energy_method(cuda, args.tdp_watts, args.rapl_root)
        work = WorkDir(Path(args.work) / device_row["device"] / task.replace("/", "_"))
        settings = {"runtimes": args.runtimes, "threads": args.threads, "repeats": args.repeats,
                    "shape": shape, "energy_method": method, "tdp_watts": args.tdp_watts}
        if args.lut:
            from medbench.spaces import unet3d

            keys = sorted({k for _, a in archs if _ == "unet3d"
                           for k in unet3d.blocks(unet3d.from_id(a), shape[0])}) \
                if args.lut_only_needed else unet3d.all_blocks(shape[0])
            # blocks released for this device at every thread setting asked are not timed
            # again, so the whole table (hours) can be built over several sessions
            held = lut_blocks_in_tables(args.tables, task, device_row["device"], args.threads)
            keys = [k for k in keys if k not in held]
            if not keys:
                raise MedbenchError(f"every block asked for is in {args.tables} for "
                                    f"{device_row['device']} already")
            lut_settings = {"threads": args.threads, "repeats": args.repeats, "shape": shape}
            jobs = [Job(f"lut{i // 64:03d}-" + hashlib.sha256(json.dumps(
                [keys[i:i + 64], lut_settings]).encode()).hexdigest()[:10],
                {"blocks": keys[i:i + 64], **lut_settings}) for i in range(0, len(keys), 64)]

            def run_lut(job: Job, run_id: str) -> dict[str, list[dict]]:
                here = probe_device(args.device_name, cuda)["device"]
                if here != device_row["device"]:
                    raise MedbenchError(f"job ran on {here}, this build measures "
                                        f"{device_row['device']}")
                rows = measure_blocks(job.args["blocks"], shape, args.threads, args.repeats,
                                      out_channels=n_out)
                return {"latency_lut": [{**r, "space": "unet3d", "task": task,
                                         "device": device_row["device"],
                                         "runtime": "onnxruntime", "run_id": run_id}
                                        for r in rows],
                        "devices": [{**device_row, "run_id": run_id}]}

            counts = run_jobs(WorkDir(Path(args.work) / device_row["device"] /
                                      (task.replace("/", "_") + "-lut")), jobs, run_lut,
                              builder=BUILDER, version=VERSION, device=device_row["device"],
                              describe=lambda j: f"{len(j.args['blocks'])} blocks", **placement)
            print(json.dumps({**counts, "blocks": len(keys), "device": device_row["device"]}))
            return 0
        jobs = []
        for i in range(0, len(archs), args.chunk):
            chunk = archs[i:i + args.chunk]
            digest = hashlib.sha256(json.dumps([chunk, settings]).encode()).hexdigest()[:10]
            jobs.append(Job(f"chunk{i // args.chunk:03d}-{digest}",
                            {"archs": chunk, **settings}))

        def run(job: Job, run_id: str) -> dict[str, list[dict]]:
            here = probe_device(args.device_name, cuda)["device"]
            if here != device_row["device"]:  # a Ray task placed on another kind of node
                raise MedbenchError(f"job ran on {here}, this build measures "
                                    f"{device_row['device']}")
            results, meta, control = measure_chunk(
                [tuple(a) for a in job.args["archs"]], shape, args.runtimes, args.threads,
                args.repeats, args.device, method, args.tdp_watts, args.rapl_root,
                n_out=n_out, control_net=control_net)
            job.args["control"] = {"arch_id": control_net[1], **control}  # drift, in runs.args
            dev = {**device_row, "run_id": run_id}
            hw = [{**r, "task": task, "device": dev["device"], "batch": 1,
                   "latency_method": "measured", "run_id": run_id} for r in results]
            measured = {(r["space"], r["arch_id"]) for r in results}
            archs_rows = [{"space": s, "arch_id": a, "arch_index": meta[(s, a)][0],
                           "config": meta[(s, a)][1], "run_id": run_id} for s, a in measured]
            costs = [{"space": s, "arch_id": a, "task": task, "params": meta[(s, a)][2],
                      "macs": meta[(s, a)][3], "activation_mb": meta[(s, a)][4],
                      "input_shape": shape, "run_id": run_id}
                     for s, a in measured]
            return {"hardware": hw, "devices": [dev], "architectures": archs_rows,
                    "costs": costs}

        counts = run_jobs(work, jobs, run, builder=BUILDER, version=VERSION,
                          device=device_row["device"],
                          describe=lambda j: f"{len(j.args['archs'])} archs", **placement)
    except MedbenchError as e:
        print(f"builders.hardware: error: {e}", file=sys.stderr)
        return 2
    print(json.dumps({**counts, "device": device_row["device"], "energy_method": method,
                      "work": str(work.root)}))
    return 0


def _fit_main(args) -> int:
    from datetime import datetime, timezone

    from builders.jobs import git_commit
    from medbench.release import write_rows
    from medbench.manifest import write_manifest

    try:
        task = resolve_task(args.task)
        run_id = f"hardware-fit-lut-{datetime.now(timezone.utc):%Y%m%dT%H%M%S}"
        rows, summary = fit_lut(args.tables, task, run_id)
        if not summary:
            raise MedbenchError(f"no latency table with measured networks for {task} in "
                                f"{args.tables}")
        if not any(rows.values()):
            print(json.dumps(summary))
            return 0
        t0 = datetime.now(timezone.utc).replace(tzinfo=None)
        for table, table_rows in rows.items():
            if table_rows:
                write_rows(args.tables, table, table_rows, run_id)
        write_rows(args.tables, "runs", [{
            "run_id": run_id, "builder": BUILDER, "builder_version": VERSION,
            "git_commit": git_commit(), "args": json.dumps({"fit_lut": summary}),
            "status": "ok", "started_at": t0, "finished_at": t0, "seconds": 0.0,
            "rows_written": sum(len(v) for v in rows.values())}], run_id)
        write_manifest(args.tables)
    except MedbenchError as e:
        print(f"builders.hardware: error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
