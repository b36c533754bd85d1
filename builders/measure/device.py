"""The device a builder measures on: its ``devices`` row, read from the system, and its id.

The id (``amd-epyc-f26m2-avx512f-2c``) is the one vocabulary for devices in every table:
``devices.device``, ``hardware.device`` and ``runs.device`` of the jobs that measure.
"""

from __future__ import annotations

import os
import platform
import re
from datetime import datetime, timezone
from pathlib import Path

from medbench.errors import MedbenchError

__all__ = ["ISA_LEVELS", "IDENTITY", "cpu_identity", "probe_device", "check_same_device"]


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
    gpu = torch_version = None
    try:
        import torch

        torch_version = torch.__version__
        if cuda and torch.cuda.is_available():
            gpu = torch.cuda.get_device_name(0)
    except ImportError:  # the energy model reads devices without the build extra
        pass
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
        "python_version": platform.python_version(), "torch_version": torch_version,
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
