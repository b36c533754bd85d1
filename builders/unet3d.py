"""Train ``unet3d-v2`` architectures (and the ``dynunet`` reference) standalone on an MSD task.

    python -m builders.unet3d --task hippocampus --data-root ../shared/data/msd \\
        --archs 60 --seeds 0 1 2 [--reference] [--limit-jobs 4] [--epochs 40]
    python -m builders.unet3d --data-root ../shared/data/msd --seeds 0 \\
        --arch-ids "s2|c8-8-16|k3-3-5|b1-1-1|r0-1-1|n1-1-2" [--warmup-epochs 5] [--lr 1e-3]

``--space unet3d`` rebuilds the superseded version-1 space (builder version 1.1) with its own
plan; the default is ``unet3d-v2`` (builder version 2.0, :func:`plan_v2`). ``--arch-ids``
trains the architectures named instead of the plan's; ``--lr`` and ``--warmup-epochs``
change the recipe for a probe (a recipe other than the released one gets its own work folder
and is never taken for released work).

Each (architecture, seed) is one job: train with the fixed recipe below, then evaluate on the
validation and test parts of the committed split. Jobs are committed one by one to
``runs/unet3d/<task>/jobs/`` (see :mod:`builders.jobs`); a rerun skips finished jobs, and
jobs whose results ``--tables`` already holds (so a fresh checkout does not redo released
work), so run it in chunks (``--limit-jobs``) and release finished jobs with
``python -m builders.release``.

Recipe (the same for every architecture): whole volumes z-normalised on non-zero voxels and
zero-padded to 48x64x48, a random left-right flip and +-10 % intensity scale/shift; DiceCE
loss (softmax, background included); AdamW (lr 2e-3, weight decay 1e-5) with a cosine
schedule to 0 over the epochs; batch 4; the final epoch's weights are evaluated (no
selection on validation or test).
Metrics (MONAI, foreground classes): Dice, Jaccard and HD95 per class and their mean; a class
that a network does not predict at all gets Dice 0 and HD95 equal to the padded volume's
diagonal.

A job saves its state after every epoch (weights, optimiser, schedule, the curve so far and
every random state: the loader's shuffle, the augmentations', torch's, numpy's, Python's) to
the work folder's ``resume/``, so a job killed in flight (a session's end) goes on from
its last epoch when the builder runs again, with the same numbers as a run never stopped;
jobs longer than a session (the DynUNet on a CPU) finish over several.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

from builders.data.msd import SPATIAL
from builders.jobs import (Job, WorkDir, add_backend_args, at_least, device_name, finish,
                           run_jobs, save_checkpoint, torch_device, torch_threads)
from builders.measure.costs import activation_mb, count_macs
from builders.measure.metrics import segmentation_metrics
from builders.plans import DYNUNET_MEMBER, DYNUNET_MEMBER_V2, plan, plan_v2
from medbench import spaces
from medbench.catalog import resolve_task
from medbench.errors import MedbenchError

__all__ = ["Recipe", "VERSION", "VERSIONS", "DYNUNET_MEMBER", "DYNUNET_MEMBER_V2",
           "train_and_evaluate", "main"]

VERSION = "2.0"  # 1.0: LeakyReLU and flips on all axes; classes collapsed. 1.1: unet3d
#: The builder version of each space's jobs: the recipe is the same, the networks differ.
VERSIONS = {"unet3d": "1.1", "unet3d-v2": VERSION}
BUILDER = "builders.unet3d"


@dataclass(frozen=True)
class Recipe:
    """How every architecture trains (the module docstring has it in words). It is recorded
    in each job's ``runs.args``, and a rerun counts a released run as done only where the
    recipe is the same."""

    epochs: int = 40
    batch_size: int = 4
    lr: float = 2e-3
    weight_decay: float = 1e-5
    spatial_size: tuple[int, int, int] = SPATIAL
    #: epochs of linear learning-rate warm-up before the cosine schedule (0: none, the
    #: released recipe); a field added after release, so :func:`released` reads runs
    #: without it as 0
    warmup_epochs: int = 0

    def folder_suffix(self) -> str:
        """What names this recipe's work folder beside the builder version and epochs: the
        fields that differ from the released recipe's, so jobs of another recipe are never
        taken for finished ones."""
        base = Recipe(epochs=self.epochs)
        parts = []
        if self.spatial_size != base.spatial_size:
            parts.append("x".join(map(str, self.spatial_size)))
        if self.lr != base.lr:
            parts.append(f"lr{self.lr:g}")
        if self.warmup_epochs != base.warmup_epochs:
            parts.append(f"wu{self.warmup_epochs}")
        return "".join(f"-{p}" for p in parts)


def lr_schedule(opt, recipe: Recipe):
    """Cosine from the recipe's learning rate to 0 over the epochs (stepped once per epoch);
    with ``warmup_epochs``, a linear ramp to it over those epochs first and the cosine over
    the rest."""
    import math

    import torch

    if not recipe.warmup_epochs:  # the released recipe, state for state
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=recipe.epochs)
    # epoch i (from 0): the ramp reaches the full rate at epoch w - 1, where the cosine over
    # the remaining epochs starts
    w, span = recipe.warmup_epochs, max(recipe.epochs - recipe.warmup_epochs + 1, 1)
    return torch.optim.lr_scheduler.LambdaLR(
        opt, lambda i: (i + 1) / w if i < w else 0.5 * (1 + math.cos(math.pi * (i - w + 1) / span)))


def _random_states(obj) -> list:
    """Every numpy ``RandomState`` reachable through the attributes of MONAI objects from
    ``obj`` (a random transform keeps one, and so may each transform inside it), in a fixed
    order."""
    import numpy as np

    found, seen = [], set()

    def walk(o) -> None:
        if id(o) in seen:
            return
        seen.add(id(o))
        if isinstance(o, np.random.RandomState):
            found.append(o)
        elif isinstance(o, (list, tuple)):
            for x in o:
                walk(x)
        elif isinstance(o, dict):
            for x in o.values():
                walk(x)
        elif type(o).__module__.startswith("monai.") and hasattr(o, "__dict__"):
            for x in vars(o).values():
                walk(x)

    walk(obj)
    return found


def _random_state(loader_gen, transform) -> dict:
    import random

    import numpy as np
    import torch

    return {"loader": loader_gen.get_state(), "torch": torch.get_rng_state(),
            "numpy": np.random.get_state(), "python": random.getstate(),
            "transforms": [r.get_state() for r in _random_states(transform)]}


def _set_random_state(state: dict, loader_gen, transform) -> None:
    import random

    import numpy as np
    import torch

    loader_gen.set_state(state["loader"])
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    rs = _random_states(transform)
    if len(rs) != len(state["transforms"]):
        raise MedbenchError("checkpoint: the augmentations changed since it was saved")
    for r, st in zip(rs, state["transforms"]):
        r.set_state(st)


def _load_checkpoint(path: Path | None, ident: dict, device: str) -> dict | None:
    """The state saved for this job, or None (none saved, another job's, or unreadable: the
    job then starts afresh)."""
    import torch

    if path is None or not path.is_file():
        return None
    try:  # our own file in the work folder; it holds numpy random states, hence no weights_only
        state = torch.load(path, map_location=device, weights_only=False)
    except Exception:  # noqa: BLE001 - a damaged checkpoint costs a restart, not the job
        return None
    return state if state.get("ident") == ident else None


def train_and_evaluate(task, space: str, arch_id: str, seed: int, recipe: Recipe, device: str,
                       run_id: str, cache: dict, checkpoint: Path | None = None,
                       notes: dict | None = None) -> dict[str, list[dict]]:
    """Train one network and return its rows for every table it touches.

    With ``checkpoint``, the state is saved there after every epoch and, if a state of this
    job is there already, training goes on from it; ``notes`` (the job's ``args``) then
    records the epoch it resumed after, the seconds spent before (``prior_seconds``) and
    ``parts``: each attempt's device, torch threads, epochs and seconds, as a job resumed in
    a later session may finish on another machine than it began ("device": null for epochs
    from a checkpoint older than this record)."""
    import torch
    from monai.data import CacheDataset, DataLoader
    from monai.losses import DiceCELoss
    from monai.utils import set_determinism

    from builders.data import msd
    from medbench.spaces.nets import build_network

    set_determinism(seed)
    n_classes = len(task.class_names)
    if "data" not in cache:  # decoded, normalised, padded volumes, shared by every job
        cache["train_tf"] = msd.transforms(recipe.spatial_size, train=True)
        cache["data"] = {
            "train": CacheDataset(task.files("train"), cache["train_tf"], progress=False),
            **{p: CacheDataset(task.files(p), msd.transforms(recipe.spatial_size, False),
                               progress=False) for p in ("val", "test")}}
    data = cache["data"]
    cache["train_tf"].set_random_state(seed=seed)
    gen = torch.Generator().manual_seed(seed)
    train = DataLoader(data["train"], batch_size=recipe.batch_size, shuffle=True, generator=gen)
    val = DataLoader(data["val"], batch_size=recipe.batch_size)
    test = DataLoader(data["test"], batch_size=recipe.batch_size)

    net, arch_index, config = build_network(space, arch_id, task.n_channels, n_classes, dims=3)
    # unet3d networks train 1.09-1.85x faster per step on a CPU thread in channels-last
    # layout, with gradients equal to rounding (benchmarks/unet3d_layout.py); DynUNet gains
    # nothing (1.03x), so it keeps the default layout
    layout = torch.channels_last_3d if space.startswith("unet3d") else torch.contiguous_format
    net = net.to(device, memory_format=layout)
    params = sum(p.numel() for p in net.parameters() if p.requires_grad)
    macs = count_macs(net, task.n_channels, recipe.spatial_size, device)
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
    opt = torch.optim.AdamW(net.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    sched = lr_schedule(opt, recipe)
    curves, elapsed = [], 0.0
    key = {"space": space, "arch_id": arch_id, "task": task.task, "method": "standalone",
           "seed": seed}
    t_start, prior, first, parts = time.perf_counter(), 0.0, 1, []
    ident = {**key, "recipe": asdict(recipe)}
    here = {"device": device_name(device), "threads": torch.get_num_threads()}
    saved = _load_checkpoint(checkpoint, ident, device)
    if saved is not None:
        net.load_state_dict(saved["net"])
        opt.load_state_dict(saved["opt"])
        sched.load_state_dict(saved["sched"])
        _set_random_state(saved["random"], gen, data["train"].transform)
        curves, elapsed, prior = saved["curves"], saved["elapsed"], saved["seconds"]
        first = saved["epoch"] + 1
        parts = saved.get("parts") or [{"device": None, "threads": None,
                                        "epochs": [1, saved["epoch"]], "seconds": prior}]
        if notes is not None:
            notes.update(resumed_from_epoch=saved["epoch"], prior_seconds=prior)

    def with_this_part(last_epoch: int, seconds: float) -> list[dict]:
        epochs = [first, last_epoch] if last_epoch >= first else []
        return [*parts, {**here, "epochs": epochs, "seconds": seconds}]

    for epoch in range(first, recipe.epochs + 1):
        t0 = time.perf_counter()
        net.train()
        total, n = 0.0, 0
        for batch in train:
            x, y = batch["image"].to(device), batch["label"].to(device)
            x = x.contiguous(memory_format=layout)
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(net(x), y)
            loss.backward()
            opt.step()
            total += loss.item() * len(x)
            n += len(x)
        sched.step()
        elapsed += time.perf_counter() - t0  # training time only: the simulated clock
        val_dice = segmentation_metrics(net, val, n_classes, device, recipe.spatial_size,
                            full=False, layout=layout)["dice"]
        curves.append({**key, "epoch": epoch, "train_loss": total / n, "val_dice": val_dice,
                       "elapsed_seconds": elapsed})
        if checkpoint is not None:
            spent = time.perf_counter() - t_start
            save_checkpoint(checkpoint, {
                "ident": ident, "epoch": epoch, "net": net.state_dict(),
                "opt": opt.state_dict(), "sched": sched.state_dict(), "curves": curves,
                "elapsed": elapsed, "seconds": prior + spent,
                "parts": with_this_part(epoch, spent),
                "random": _random_state(gen, data["train"].transform)})
    final = {part: segmentation_metrics(net, loader, n_classes, device, recipe.spatial_size,
                            layout=layout)
             for part, loader in (("val", val), ("test", test))}
    if saved is not None and notes is not None:
        notes["parts"] = with_this_part(recipe.epochs, time.perf_counter() - t_start)
    evaluation = {**key, "epochs": recipe.epochs, "train_seconds": elapsed,
                  "device": device_name(device), "run_id": run_id}
    for part, m in final.items():
        for name, value in m.items():
            evaluation[f"{part}_{name}"] = value
    shape = [task.n_channels, *recipe.spatial_size]
    return {
        "evaluations": [evaluation],
        "curves": [{**c, "run_id": run_id} for c in curves],
        "architectures": [{"space": space, "arch_id": arch_id, "arch_index": arch_index,
                           "config": config, "run_id": run_id}],
        "costs": [{"space": space, "arch_id": arch_id, "task": task.task, "params": params,
                   "macs": macs, "input_shape": shape, "run_id": run_id,
                   "activation_mb": activation_mb(net, task.n_channels, recipe.spatial_size,
                                                  device)}],
        "tasks": [task.tasks_row(shape, run_id)],
    }


def train_job(job: Job, run_id: str, *, task, recipe: Recipe, device: str, threads: int,
              cache: dict, work: WorkDir | None = None) -> dict[str, list[dict]]:
    """One job of the build, wherever the backend runs it (module level, so it pickles);
    with ``work``, checkpointed in its ``checkpoints/``."""
    if threads:
        import torch

        torch.set_num_threads(threads)
    return train_and_evaluate(task, job.args["space"], job.args["arch_id"], job.args["seed"],
                              recipe, device, run_id, cache,
                              checkpoint=work.checkpoint(job.key) if work else None,
                              notes=job.args)


def released(tables: str, task: str, recipe: Recipe, version: str = VERSION
             ) -> set[tuple[str, str, int]]:
    """(space, arch_id, seed) of every standalone result in ``tables`` that builder
    ``version`` made with ``recipe`` on ``task``: jobs a rerun from a fresh checkout skips."""
    import medbench

    if not Path(tables).is_dir():
        return set()
    want = json.loads(json.dumps(asdict(recipe)))
    added = {"warmup_epochs": 0}  # recipe fields added since the first release, as they were
    with medbench.open(tables) as store:
        rows = store.fetchall(f"""
            SELECT e.space, e.arch_id, e.seed, r.args
            FROM "{store.view('evaluations', task)}" e JOIN "{store.view('runs')}" r
              USING (run_id)
            WHERE e.task = ? AND e.method = 'standalone' AND r.builder = ?
              AND r.builder_version = ? AND r.status = 'ok'""", [task, BUILDER, version])
    return {(space, arch, seed) for space, arch, seed, a in rows
            if _with_added(json.loads(a or "{}").get("recipe"), added) == want}


def _with_added(recipe: dict | None, added: dict) -> dict | None:
    return None if recipe is None else {**added, **recipe}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m builders.unet3d", description=__doc__.split(
        "\n\n")[0])
    ap.add_argument("--task", default="msd/hippocampus")
    ap.add_argument("--space", choices=sorted(VERSIONS), default="unet3d-v2",
                    help="unet3d-v2 (default), or the superseded version-1 unet3d")
    ap.add_argument("--data-root", default=None,
                    help="folder holding TaskXX_Name/ (default: download with MONAI)")
    ap.add_argument("--archs", type=at_least(1), default=60, help="architectures to sample")
    ap.add_argument("--seeds", type=at_least(0), nargs="+", default=[0, 1, 2])
    ap.add_argument("--reference", action="store_true", help="also train the DynUNet reference")
    ap.add_argument("--arch-ids", nargs="+", default=None, metavar="ARCH_ID",
                    help="train these architectures instead of the sampled plan")
    ap.add_argument("--epochs", type=at_least(1), default=Recipe.epochs)
    ap.add_argument("--lr", type=at_least(0, float), default=Recipe.lr,
                    help="learning rate (any but the default names its own work folder)")
    ap.add_argument("--warmup-epochs", type=at_least(0), default=Recipe.warmup_epochs,
                    help="epochs of linear learning-rate warm-up before the cosine schedule")
    ap.add_argument("--spatial", type=int, nargs=3, default=list(SPATIAL),
                    help="volumes are zero-padded to this size (must hold every case)")
    ap.add_argument("--limit-jobs", type=at_least(0), default=0, help="stop after this many jobs")
    ap.add_argument("--max-gmacs", type=at_least(0, float), default=0,
                    help="only architectures up to this many GMACs per forward pass (0 = all)")
    ap.add_argument("--expensive-first", action="store_true",
                    help="run the dearest jobs first (for a session with a GPU)")
    ap.add_argument("--only", nargs="*", default=None, help="job keys to run (default: all)")
    ap.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    ap.add_argument("--threads", type=at_least(0), default=0, help="torch threads (0 = all cores)")
    ap.add_argument("--work", default="runs/unet3d", help="work folder")
    ap.add_argument("--splits-dir", default=None, help="folder of split files (default: "
                    "builders/splits, committed)")
    ap.add_argument("--tables", default="tables", help="skip jobs whose results these "
                    "released tables hold (same builder version and recipe; '' = none)")
    ap.add_argument("--dry-run", action="store_true", help="list the jobs and exit")
    add_backend_args(ap)
    args = ap.parse_args(argv)

    def build() -> dict:
        task_id = resolve_task(args.task)
        space, version = spaces.get_space(args.space), VERSIONS[args.space]
        if args.arch_ids:
            archs = [space.from_id(a) for a in args.arch_ids]
            jobs = [Job(f"{a.arch_index}-s{s}", {"space": args.space, "arch_id": a.arch_id,
                                                 "seed": s}) for a in archs for s in args.seeds]
        else:
            jobs = (plan_v2 if args.space == "unet3d-v2" else plan)(args.archs, args.seeds,
                                                                      args.reference)
        if args.only:
            jobs = [j for j in jobs if j.key in set(args.only)]
        if args.max_gmacs:
            jobs = [j for j in jobs if j.args["space"] == args.space and space.macs(
                space.from_id(j.args["arch_id"]), 1, 3, SPATIAL) <= args.max_gmacs * 1e9]
        if args.expensive_first:
            jobs.reverse()
        recipe = Recipe(epochs=args.epochs, spatial_size=tuple(args.spatial), lr=args.lr,
                        warmup_epochs=args.warmup_epochs)
        work = WorkDir(f"{args.work}/{task_id.replace('/', '_')}/v{version}-e{recipe.epochs}"
                       + recipe.folder_suffix())
        jobs = [Job(j.key, {**j.args, "recipe": asdict(recipe)}) for j in jobs]
        in_tables = released(args.tables, task_id, recipe, version) if args.tables else set()

        def is_released(j: Job) -> bool:
            return (j.args["space"], j.args["arch_id"], j.args["seed"]) in in_tables

        if args.dry_run:
            done, states = work.ok(), {}
            for j in jobs:
                state = "released" if is_released(j) else "done" if j.key in done else "todo"
                states[state] = states.get(state, 0) + 1
                print(f"{state:8s} {j.key} {j.args['arch_id']}")
            return {"dry_run": states}
        # a fresh checkout has no work folder: what is released is done
        jobs = [j for j in jobs if not is_released(j)]

        from builders.data import msd

        device = torch_device(args.device)
        task = msd.load_task(task_id, args.data_root, splits_dir=Path(args.splits_dir)
                             if args.splits_dir else msd.SPLITS_DIR)
        threads = torch_threads(args)
        counts = run_jobs(
            work, jobs, partial(train_job, task=task, recipe=recipe, device=device,
                                threads=threads, cache={}, work=work),
            builder=BUILDER, version=version, device=device_name(device),
            describe=lambda j: f"{j.args['arch_id']} seed {j.args['seed']}",
            backend=args.backend, workers=args.workers, cpus_per_job=threads or 1,
            limit=args.limit_jobs)
        return {**counts, "recipe": asdict(recipe)}

    return finish("builders.unet3d", build)


if __name__ == "__main__":
    sys.exit(main())
