"""Measure latency (and energy where the machine can) of architectures on this device.

    python -m builders.hardware --task hippocampus [--tables tables] [--plan 60]
        [--method standalone]
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
``/sys/class/powercap`` (``rapl``, idle baseline subtracted), else the TDP share of the cores
used x latency (``tdp_model``; the TDP from ``--tdp-watts`` or the CPU generation's reference
part, stated in the ``devices`` row): see :mod:`builders.measure.energy`. Each row carries
the power behind its energy (``power_w``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from medbench.catalog import resolve_space, resolve_task
from medbench.errors import MedbenchError

from builders.jobs import Job, WorkDir, add_backend_args, at_least, finish, run_jobs
from builders.measure.device import check_same_device, cpu_identity, probe_device
from builders.measure.energy import (
    RAPL_ROOT,
    cpu_tdp,
    model_power_w,
    nvml_available,
    nvml_energy_mj,
    rapl_energy_mj,
    rapl_zone,
)
from builders.plans import architectures_to_measure

__all__ = ["probe_device", "cpu_identity", "check_same_device", "energy_method",
           "measure_chunk", "main"]

# 1.0: p10/p90 by exclusive quantiles (could extrapolate); 1.1: energy only with --tdp-watts
VERSION = "1.2"
BUILDER = "builders.hardware"
CONTROL = "s2|c8-16-32|k3-3-3|b1-1-1|r0-0-0"


# -- energy ------------------------------------------------------------------------------------

def energy_method(cuda: bool, rapl_root: str = RAPL_ROOT) -> str:
    """The first energy method this machine supports: nvml (CUDA), rapl, else tdp_model
    (:mod:`builders.measure.energy`)."""
    if cuda and nvml_available():
        return "nvml"
    if rapl_zone(rapl_root) is not None:
        return "rapl"
    return "tdp_model"


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
        from builders.data.msd import SPATIAL

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
    from medbench.spaces.nets import build_network

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
    from builders.measure.costs import activation_mb, count_macs

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
                  threads: list[int], repeats: int, device: str, method: str,
                  tdp: dict | None = None, rapl_root: str = RAPL_ROOT,
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
            window = max(20, int(1000 / max(median, 1e-3)))  # about a second of inferences
            if method == "tdp_model":
                power = model_power_w(tdp or {}, t, cores)
                energy = None if power is None else power * median  # W x ms = mJ
            else:
                energy = (rapl_energy_mj(rapl_zone(rapl_root), net.run[setting], window)
                          if method == "rapl" else nvml_energy_mj(net.run[setting], window))
                power = energy / median if median > 0 else None
            results.append({"space": net.space, "arch_id": net.arch_id, "runtime": runtime,
                            "threads": t, "latency_ms": median, "latency_p10_ms": q[0],
                            "latency_p90_ms": q[-1], "n_repeats": repeats,
                            "energy_mj": energy, "power_w": power,
                            "energy_method": method if energy is not None else None})
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
    from medbench.spaces.nets.unet3d import block_module

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

    import medbench
    from medbench.latency import predict
    from medbench.spaces import get_space
    from scipy.stats import kendalltau

    in_channels = task_io(tables, task)[0][0]
    lut_rows, hw_rows, summary = [], [], []
    with medbench.open(tables) as store:
        lut_view, hw_view = store.view("latency_lut", task), store.view("hardware", task)
        settings = store.fetchall(f'SELECT DISTINCT space, device, runtime, threads FROM '
                                  f'"{lut_view}" WHERE task = ? ORDER BY ALL', [task])
        for space, device, runtime, threads in settings:
            module = get_space(space)
            with_results = {a for (a,) in store.fetchall(
                f'SELECT DISTINCT arch_id FROM "{store.view("evaluations", task)}" WHERE '
                "task = ? AND space = ?", [task, space])}
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
                    keys = module.blocks(module.from_id(arch_id), in_channels)
                except MedbenchError:  # not an id of this space's grammar: nothing to predict
                    continue
                if all(k in lut for k in keys):
                    sums[arch_id] = predict(lut, keys, overhead=False)
            pairs = [(measured[a], sums[a]) for a in measured if a in sums]
            fitted = store.fetchone(
                f'SELECT latency_ms FROM "{lut_view}" WHERE task = ? AND space = ? AND '
                "device = ? AND runtime = ? AND threads = ? AND block = 'overhead'",
                [task, space, device, runtime, threads])
            if fitted:  # fitted already: kept as released; only new architectures predicted
                overhead = fitted[0]
                summary.append({"space": space, "task": task, "device": device,
                                "runtime": runtime, "threads": threads, "already_fitted": True})
            elif pairs:
                gaps = [m - p for m, p in pairs]
                overhead = st.median(gaps)
                lut_rows.append({"space": space, "task": task, "device": device,
                                 "runtime": runtime, "threads": threads, "block": "overhead",
                                 "latency_ms": overhead, "n_repeats": len(pairs),
                                 "run_id": run_id})
                # the error of each network's prediction with the overhead fitted on the
                # others (leave-one-out), so the reported accuracy is not measured on the
                # fit's own data
                pred = [p + (st.median(gaps[:i] + gaps[i + 1:]) if len(gaps) > 1 else overhead)
                        for i, (_, p) in enumerate(pairs)]
                meas = [m for m, _ in pairs]
                mape = 100 * sum(abs(p - m) / m for p, m in zip(pred, meas)) / len(meas)
                tau = kendalltau(pred, meas).statistic if len(meas) > 1 else None
                summary.append({"space": space, "task": task, "device": device,
                                "runtime": runtime, "threads": threads, "n": len(pairs),
                                "overhead_ms": overhead, "mape_pct": mape, "kendall_tau": tau})
            else:
                continue
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
                         threads: list[int], space: str = "unet3d") -> set[str]:
    """Blocks of ``space`` whose ONNX Runtime time ``tables`` holds for ``device`` at every
    thread setting in ``threads``."""
    if not tables or not Path(tables).is_dir():
        return set()
    import medbench

    with medbench.open(tables) as store:
        return {b for (b,) in store.fetchall(
            f'SELECT block FROM "{store.view("latency_lut", task)}" WHERE task = ? AND '
            "space = ? AND device = ? AND runtime = 'onnxruntime' AND "
            "list_contains(?, threads) GROUP BY block HAVING count(DISTINCT threads) = ?",
            [task, space, device, sorted(set(threads)), len(set(threads))])}


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
    ap.add_argument("--method", choices=("standalone", "supernet"), default=None,
                    help="only architectures with results of this training method (default: "
                         "any; a supernet's thousands of subnets get LUT latency instead)")
    ap.add_argument("--device-name", default=None, help="device id (default: from the CPU/GPU)")
    ap.add_argument("--device", default="cpu", help="cpu or cuda (torch runtime only)")
    ap.add_argument("--runtimes", nargs="+", default=["onnxruntime", "torch"])
    ap.add_argument("--threads", type=at_least(0), nargs="+", default=[1, 0],
                    help="intra-op threads to measure (0 = all cores)")
    ap.add_argument("--repeats", type=at_least(3), default=30)
    ap.add_argument("--chunk", type=at_least(1), default=8, help="architectures per job")
    ap.add_argument("--max-gmacs", type=at_least(0, float), default=0,
                    help="only unet3d architectures up to this many GMACs (0 = all)")
    ap.add_argument("--tdp-watts", type=at_least(0, float), default=None,
                    help="the CPU package's TDP for the tdp_model (default: its generation's "
                         "reference part)")
    ap.add_argument("--tdp-cores", type=at_least(1), default=None,
                    help="the cores --tdp-watts is shared among (default: all this machine "
                         "shows)")
    ap.add_argument("--spatial", type=int, nargs=3, default=None,
                    help="input size (default: the task's, 48 64 48 for MSD hippocampus)")
    ap.add_argument("--work", default="runs/hardware")
    ap.add_argument("--rapl-root", default=RAPL_ROOT, help=argparse.SUPPRESS)
    ap.add_argument("--lut", action="store_true", help="measure the unet3d (or --space "
                    "unet3d-v2) blocks alone for the latency lookup table (ONNX Runtime) "
                    "instead of whole networks")
    ap.add_argument("--cmax", type=int, nargs="+", default=None, help="with --lut --space "
                    "unet3d-v2: the blocks of its stride-2 subspace up to these channels per "
                    "level (the edge supernet's, e.g. 8 16 64)")
    ap.add_argument("--lut-only-needed", action="store_true", help="with --lut: only the "
                    "blocks of the architectures that would be measured")
    ap.add_argument("--fit-lut", action="store_true", help="fit the table's overhead on the "
                    "measured networks in --tables and predict the unmeasured ones, into a "
                    "work folder to release")
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
            architectures_to_measure(args.tables, task, args.plan, space, args.method)
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
        method = energy_method(cuda, args.rapl_root)
        tdp = cpu_tdp(device_row, args.tdp_watts, args.tdp_cores)
        device_row.update(tdp)
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
        work = WorkDir(Path(args.work) / device_row["device"] / task.replace("/", "_"))
        settings = {"runtimes": args.runtimes, "threads": args.threads, "repeats": args.repeats,
                    "shape": shape, "energy_method": method, "tdp_w": tdp["tdp_w"],
                    "tdp_cores": tdp["tdp_cores"]}
        if args.lut:
            from medbench.spaces import unet3d

            lut_space = space or "unet3d"
            if lut_space not in ("unet3d", "unet3d-v2"):
                raise MedbenchError(f"--lut is for unet3d or unet3d-v2, not {lut_space}")
            version = 2 if lut_space == "unet3d-v2" else 1
            if args.lut_only_needed:
                keys = sorted({k for sp, a in archs if sp == lut_space
                               for k in unet3d.blocks(unet3d.from_id(a, version), shape[0])})
            elif args.cmax:
                if version != 2 or not 3 <= len(args.cmax) <= 4 or any(
                        c not in unet3d.level_channels(level)
                        for level, c in enumerate(args.cmax)):
                    raise MedbenchError(f"--cmax {args.cmax}: with --space unet3d-v2, 3 or 4 "
                                        "levels, each one of its level's widths")
                keys = unet3d.Subspace(2, 2, tuple(args.cmax)).blocks(shape[0])
            elif version == 2:
                raise MedbenchError("--lut --space unet3d-v2 needs --cmax or "
                                    "--lut-only-needed (the whole space has millions of blocks)")
            else:
                keys = unet3d.all_blocks(shape[0])
            # blocks released for this device at every thread setting asked are not timed
            # again, so the whole table (hours) can be built over several sessions
            held = lut_blocks_in_tables(args.tables, task, device_row["device"], args.threads,
                                        lut_space)
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
                return {"latency_lut": [{**r, "space": lut_space, "task": task,
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
                args.repeats, args.device, method, tdp, args.rapl_root,
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
    """``--fit-lut``: a job in ``--work``/lut-fit/<task> whose rows (``lut`` predictions in
    ``hardware``, the fit's summary in ``runs.args``) ``builders.release`` puts in the tables,
    as every build's."""

    def build() -> dict:
        task = resolve_task(args.task)
        rows, summary = fit_lut(args.tables, task, "")
        if not summary:
            raise MedbenchError(f"no latency table with measured networks for {task} in "
                                f"{args.tables}")
        work = WorkDir(Path(args.work) / "lut-fit" / task.replace("/", "_"))
        if not any(rows.values()):
            return {"fit_lut": summary, "work": str(work.root), "rows": 0}
        digest = hashlib.sha256(json.dumps([rows, summary], sort_keys=True, default=str)
                                .encode()).hexdigest()[:10]

        def run(job: Job, run_id: str) -> dict[str, list[dict]]:
            return fit_lut(args.tables, task, run_id)[0]

        counts = run_jobs(work, [Job(f"fit-{digest}", {"fit_lut": summary})], run,
                          builder=BUILDER, version=VERSION, device=probe_device()["device"])
        return {**counts, "fit_lut": summary, "work": str(work.root),
                "rows": sum(len(v) for v in rows.values())}

    return finish("builders.hardware", build)


if __name__ == "__main__":
    sys.exit(main())
