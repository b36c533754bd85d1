"""Model the energy of released hardware rows that have none (``tdp_model``).

    python -m builders.energy [--tables tables] [--work runs/energy] [--device ID ...]
        [--tdp-watts W [--tdp-cores N]]
    python -m builders.release runs/energy

Rows measured where no energy counter was readable (RAPL needs root; cloud machines have
none) have a latency but no energy. For each device with such rows, one job reads the
device's ``devices`` row and its rows without energy, and gives:

* the ``devices`` row its ``tdp_w``, ``tdp_cores`` and ``tdp_source``
  (:func:`builders.measure.energy.cpu_tdp`: the CPU generation's reference part, or
  ``--tdp-watts``);
* each row ``power_w`` = tdp_w / tdp_cores x the cores its threads used, ``energy_mj`` =
  power_w x latency_ms, ``energy_method = 'tdp_model'`` and ``energy_run_id``, the job's run.

``builders.release`` then fills these into the released rows (only where NULL; nothing else
of a released row changes). A device that no reference part covers (a GPU, an ARM board) keeps NULL
energy until someone who knows its TDP runs this with ``--tdp-watts``; the datasheet lists
such devices. New measurements get the same model from ``builders.hardware``
directly; this builder is for rows measured before it did, on machines that are gone.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from builders.jobs import Job, WorkDir, at_least, finish, run_jobs
from builders.measure.device import probe_device
from builders.measure.energy import cpu_tdp, model_power_w
from builders.release import released_rows
from medbench.errors import MedbenchError

__all__ = ["device_tdp", "model_rows", "main"]

VERSION = "1.0"
BUILDER = "builders.energy"


def device_tdp(device: dict, tdp_watts: float | None = None,
               tdp_cores: int | None = None) -> dict:
    """The TDP columns a device's rows are modelled with: those its ``devices`` row records,
    else :func:`~builders.measure.energy.cpu_tdp`. ``tdp_watts`` is for a device without."""
    if device.get("tdp_w") is None:
        return cpu_tdp(device, tdp_watts, tdp_cores)
    if tdp_watts is not None:
        raise MedbenchError(f"device {device['device']!r} has a TDP already "
                            f"({device['tdp_source']}); --tdp-watts is for one without")
    return {k: device[k] for k in ("tdp_w", "tdp_cores", "tdp_source")}


def model_rows(device: dict, hardware: list[dict], run_id: str, tdp: dict
               ) -> dict[str, list[dict]]:
    """The filled ``devices`` row and ``hardware`` rows of one device (rows without energy
    in, those the model gives energy out) under ``tdp`` (:func:`device_tdp`)."""
    rows = []
    for row in hardware:
        power = model_power_w(tdp, row["threads"], device["cpu_cores"])
        if power is None or row["latency_ms"] is None or row["energy_mj"] is not None:
            continue
        rows.append({**row, "power_w": power, "energy_mj": power * row["latency_ms"],
                     "energy_method": "tdp_model", "energy_run_id": run_id})
    return {"devices": [{**device, **tdp}], "hardware": rows}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m builders.energy",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--tables", default="tables")
    ap.add_argument("--work", default="runs/energy")
    ap.add_argument("--device", nargs="*", default=None,
                    help="only these device ids (default: every device with rows lacking "
                         "energy)")
    ap.add_argument("--tdp-watts", type=at_least(0, float), default=None,
                    help="the CPU package's TDP (default: its generation's reference part); "
                         "needs one --device")
    ap.add_argument("--tdp-cores", type=at_least(1), default=None,
                    help="the cores --tdp-watts is shared among (default: the device's)")
    args = ap.parse_args(argv)

    def build() -> dict:
        if args.tdp_watts is not None and len(args.device or []) != 1:
            raise MedbenchError("--tdp-watts is one device's: name it with one --device")
        if not Path(args.tables).is_dir():
            raise MedbenchError(f"no tables folder {args.tables}")
        devices = {d["device"]: d for d in released_rows(args.tables, "devices").to_pylist()}
        hardware = [r for r in released_rows(args.tables, "hardware").to_pylist()
                    if r["energy_mj"] is None]
        unknown = sorted(set(args.device or []) - set(devices))
        if unknown:
            raise MedbenchError(f"no device {unknown[0]!r} in {args.tables} (devices: "
                                f"{', '.join(sorted(devices))})")
        wanted = sorted({r["device"] for r in hardware} & set(args.device or devices))
        settings = {"tdp_watts": args.tdp_watts, "tdp_cores": args.tdp_cores}
        jobs = [Job(f"{d}-{sum(r['device'] == d for r in hardware)}rows", {"device": d,
                                                                          **settings})
                for d in wanted]
        if not jobs:
            raise MedbenchError(f"every hardware row in {args.tables} has energy, or its "
                                "device none to model")

        # a device's model, chosen before any job runs (a refusal is one line, not a failed run)
        tdps = {d: device_tdp(devices[d], args.tdp_watts, args.tdp_cores) for d in wanted}

        def run(job: Job, run_id: str) -> dict[str, list[dict]]:
            d = job.args["device"]
            return model_rows(devices[d], [r for r in hardware if r["device"] == d], run_id,
                              tdps[d])

        counts = run_jobs(WorkDir(args.work), jobs, run, builder=BUILDER, version=VERSION,
                          device=probe_device()["device"], describe=lambda j: j.args["device"])
        return {**counts, "devices": wanted, "work": args.work}

    return finish("builders.energy", build)


if __name__ == "__main__":
    sys.exit(main())
