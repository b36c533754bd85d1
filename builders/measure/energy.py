"""Energy of one inference: the device's energy counter where it has one, else a TDP model.

Methods, the first that applies (``hardware.energy_method``):

* ``nvml``: a CUDA GPU's total-energy counter, read over a window of inferences.
* ``rapl``: the CPU package's RAPL counter (``/sys/class/powercap/intel-rapl:0``), with the
  idle power measured just before subtracted.
* ``tdp_model``: no counter is readable (cloud machines; RAPL needs root since Linux 5.10).
  The model of Green Algorithms (Lannelongue, Grealey and Inouye, Adv. Sci. 2021), which
  CodeCarbon and Eco2AI also fall back on: power = TDP / package cores x cores used x usage,
  with usage 1 because the timed loop keeps its cores busy; energy = power x latency.

The TDP comes from ``--tdp-watts`` (and ``--tdp-cores``) when given, else from
:data:`REFERENCE_CPUS`: the CPU's generation, read from its x86 signature (family and model),
names a reference part and its vendor specification. Cloud machines report only "AMD EPYC" or
"Intel Xeon Processor", never the part, so the reference is the generation's flagship; a CPU
whose signature was not recorded gets the median per-core TDP of its vendor's references.
Every ``devices`` row says which (``tdp_source``).

Limits of the model: TDP is a design figure, not measured draw (a busy core can draw more
while boosting, or less); DRAM, uncore and idle power are left out; a vCPU counts as a whole
core, so where two vCPUs are SMT siblings of one core the all-core figure is up to 2x high.
Read energies of one device against each other; across devices only as a rough guide.
"""

from __future__ import annotations

import re
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ReferenceCPU", "REFERENCE_CPUS", "cpu_tdp", "model_power_w", "rapl_zone",
           "rapl_energy_mj", "nvml_available", "nvml_energy_mj", "RAPL_ROOT"]

RAPL_ROOT = "/sys/class/powercap"


@dataclass(frozen=True)
class ReferenceCPU:
    """A server CPU generation and the part whose TDP stands for it."""

    vendor: str        # "AMD" or "Intel", as the model name begins
    family: int        # x86 family
    models: range      # x86 models of the generation
    generation: str
    part: str
    tdp_w: float       # the vendor's default TDP of the part
    cores: int         # its physical cores

    @property
    def source(self) -> str:
        return (f"{self.vendor} {self.part} ({self.generation}, x86 family {self.family} "
                f"models {self.models.start}-{self.models.stop - 1}): {self.tdp_w:g} W over "
                f"{self.cores} cores, the vendor's specification; the generation's flagship, "
                "as the machine does not report its part")


#: Server generations and their flagship parts (default TDP and core count from AMD's and
#: Intel's product specifications).
REFERENCE_CPUS = (
    ReferenceCPU("AMD", 23, range(0x30, 0x40), "Zen 2 Rome", "EPYC 7742", 225, 64),
    ReferenceCPU("AMD", 25, range(0x00, 0x10), "Zen 3 Milan", "EPYC 7763", 280, 64),
    ReferenceCPU("AMD", 25, range(0x10, 0x20), "Zen 4 Genoa", "EPYC 9654", 360, 96),
    ReferenceCPU("AMD", 25, range(0xA0, 0xB0), "Zen 4c Bergamo", "EPYC 9754", 360, 128),
    ReferenceCPU("AMD", 26, range(0x00, 0x10), "Zen 5 Turin", "EPYC 9755", 500, 128),
    ReferenceCPU("AMD", 26, range(0x10, 0x20), "Zen 5c Turin Dense", "EPYC 9965", 500, 192),
    ReferenceCPU("Intel", 6, range(85, 86), "Cascade Lake-SP", "Xeon Platinum 8280", 205, 28),
    ReferenceCPU("Intel", 6, range(106, 107), "Ice Lake-SP", "Xeon Platinum 8380", 270, 40),
    ReferenceCPU("Intel", 6, range(143, 144), "Sapphire Rapids", "Xeon Platinum 8480+",
                 350, 56),
    ReferenceCPU("Intel", 6, range(207, 208), "Emerald Rapids", "Xeon Platinum 8592+",
                 350, 64),
)

_SIGNATURE = re.compile(r"family (\d+) model (\d+)")


def cpu_tdp(device: Mapping, tdp_watts: float | None = None,
            tdp_cores: int | None = None) -> dict:
    """The ``devices`` columns ``tdp_w``, ``tdp_cores``, ``tdp_source`` for a devices row.

    ``tdp_watts`` overrides the reference (shared among ``tdp_cores``, default: the cores the
    machine shows). All three are None for a GPU (its energy is NVML's or none) and for a CPU
    that no reference part covers: such a device's rows get no ``tdp_model`` energy until
    someone who knows its TDP fills it in (``builders.energy --tdp-watts``).
    """
    if tdp_watts is not None:
        cores = tdp_cores or device.get("cpu_cores") or 1
        return {"tdp_w": float(tdp_watts), "tdp_cores": int(cores),
                "tdp_source": f"--tdp-watts {tdp_watts:g} over {cores} cores, given by the "
                              "person who measured"}
    none = {"tdp_w": None, "tdp_cores": None, "tdp_source": None}
    model = device.get("cpu_model") or ""
    vendor = "AMD" if "AMD" in model else "Intel" if "Intel" in model else None
    refs = [r for r in REFERENCE_CPUS if r.vendor == vendor]
    if device.get("kind") == "gpu" or not refs:
        return none
    match = _SIGNATURE.match(device.get("cpu_signature") or "")
    if match:
        family, number = int(match.group(1)), int(match.group(2))
        for r in refs:
            if r.family == family and number in r.models:
                return {"tdp_w": float(r.tdp_w), "tdp_cores": r.cores, "tdp_source": r.source}
        return none
    if device.get("cpu_signature") is None:
        per_core = statistics.median(r.tdp_w / r.cores for r in refs)
        parts = ", ".join(r.part for r in refs)
        return {"tdp_w": round(per_core, 3), "tdp_cores": 1,
                "tdp_source": f"{vendor}, generation not recorded (before schema 1.3): one "
                              f"core's share, the median per-core TDP of {parts}"}
    return none


def model_power_w(tdp: Mapping, threads: int, cpu_cores: int) -> float | None:
    """The tdp_model's power while ``threads`` intra-op threads (0 = all cores) run."""
    if tdp.get("tdp_w") is None:
        return None
    used = min(threads or cpu_cores, cpu_cores)
    return tdp["tdp_w"] / tdp["tdp_cores"] * used


# -- counters ---------------------------------------------------------------------------------

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


def rapl_energy_mj(zone: Path, fn: Callable[[], object], n: int,
                   idle_seconds: float = 1.0) -> float:
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


def nvml_available() -> bool:
    """Whether GPU 0 has an NVML total-energy counter (Volta and later)."""
    try:
        import pynvml

        pynvml.nvmlInit()
        pynvml.nvmlDeviceGetTotalEnergyConsumption(pynvml.nvmlDeviceGetHandleByIndex(0))
        return True
    except Exception:  # noqa: BLE001 - no pynvml, no driver or no counter
        return False


def nvml_energy_mj(fn: Callable[[], object], n: int) -> float:
    """Energy of one call of ``fn`` in mJ from GPU 0's NVML counter over ``n`` calls."""
    import pynvml
    import torch

    handle = pynvml.nvmlDeviceGetHandleByIndex(0)
    torch.cuda.synchronize()
    e0 = pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)  # mJ
    for _ in range(n):
        fn()
    torch.cuda.synchronize()
    return (pynvml.nvmlDeviceGetTotalEnergyConsumption(handle) - e0) / n
