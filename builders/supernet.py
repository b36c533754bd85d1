"""Train a ``unet3d`` weight-sharing supernet on an MSD task, then evaluate its subnets.

``--space unet3d`` (the default) holds the whole version-1 space; ``--space unet3d-v2
--cmax 8 16 64`` holds the version-2 U-Nets of first-level stride 2 whose channels per level
stay within ``--cmax`` (3 levels here; the edge part of the space: 49,152 architectures, the
largest 2.3 GMACs at 48x64x48), with the affine norms and one- or two-convolution blocks of
version 2 (:class:`~medbench.spaces.unet3d.Subspace`).

    python -m builders.supernet train --task hippocampus --data-root ../shared/data/msd \\
        [--epochs 100] [--sampling sandwich|uniform] [--random-subnets 2]
    python -m builders.supernet evaluate --task hippocampus --data-root ../shared/data/msd \\
        --archs 10000 [--tables tables]

**Training** (one job per epoch, so a killed run resumes at the last finished epoch): the
recipe of the standalone builder (same transforms, DiceCE, AdamW lr 2e-3, weight decay 1e-5,
cosine over the epochs, batch 4) with, per step, gradients accumulated over several subnets
before one optimiser step. ``sandwich`` (the default, as in BigNAS/OFA): the largest and the
smallest architecture plus ``--random-subnets`` uniform ones; ``uniform``: only uniform
ones. After every epoch the whole state (weights, optimiser, schedule, seconds so far) is
written atomically to ``checkpoints/epochNNNN.pt``; the epoch's job folder (a ``curves`` row
of the largest subnet, method ``supernet``, and its ``runs`` row) is committed after it. Data
order, augmentation and subnet draws are seeded per epoch, so a resumed run continues the
same sequence.

**Evaluation**: the last checkpoint's subnets, ``--archs`` drawn uniformly from the space
plus every architecture with standalone results (method ``standalone``) in ``--tables``,
each evaluated on the validation and test splits (Dice, Jaccard, HD95 per class, as the
standalone builder) into ``evaluations`` with method ``supernet``, in jobs of ``--chunk``
architectures, run in ``--workers`` processes. The architectures with standalone results
come first, one job each (keyed by architecture, so one trained later adds a job and changes
no other), then the chunks holding a standalone architecture, then the rest: a partial
evaluation already has what the trust report compares. Chunks are keyed by position in the
seeded draw. Jobs whose architectures ``--tables`` already holds evaluated (this seed) are
skipped, so a fresh checkout goes on where the release stopped.
Instance norm has no running statistics, so subnets need no recalibration.
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from builders.jobs import Job, WorkDir, at_least, device_name, finish, run_jobs, torch_device
from medbench.catalog import resolve_task
from medbench.errors import MedbenchError
from medbench.manifest import atomic_write_bytes

__all__ = ["Recipe", "VERSION", "LARGEST", "SMALLEST", "train_epoch", "same_supernet", "evaluated",
           "main"]

VERSION = "1.0"
BUILDER = "builders.supernet"
LARGEST = "s1|c32-64-128-256-320|k5-5-5-5-5|b2-2-2-2-2|r1-1-1-1-1"
SMALLEST = "s2|c4-8-16|k3-3-3|b1-1-1|r0-0-0"


@dataclass(frozen=True)
class Recipe:
    """The supernet's training: the standalone recipe's optimiser and data plus the subnet
    sampling rule, over the space (or subspace) it holds. Its fields name the work folder,
    and evaluation refuses a supernet trained otherwise than the released one."""

    epochs: int = 100
    batch_size: int = 4
    lr: float = 2e-3
    weight_decay: float = 1e-5
    sampling: str = "sandwich"
    random_subnets: int = 2
    spatial_size: tuple[int, int, int] = (48, 64, 48)
    seed: int = 0
    #: ``unet3d`` (the whole space) or ``unet3d-v2`` over the stride-2 subspace of ``cmax``
    space: str = "unet3d"
    cmax: tuple[int, ...] = ()

    def subspace(self):
        """The architectures the supernet holds: a :class:`~medbench.spaces.unet3d.Subspace`
        (``unet3d-v2``), or None for the whole ``unet3d`` space."""
        from medbench.spaces.unet3d import Subspace

        return Subspace(2, 2, self.cmax) if self.space == "unet3d-v2" else None

    def bounds(self) -> tuple:
        """(largest, smallest) architecture of the supernet."""
        from medbench.spaces import unet3d

        sub = self.subspace()
        if sub is None:
            return unet3d.from_id(LARGEST), unet3d.from_id(SMALLEST)
        return sub.largest(), sub.smallest()


class _Subnet:
    """An architecture of the supernet as a callable network (for the metric loop)."""

    def __init__(self, supernet, arch):
        self.supernet, self.arch = supernet, arch

    def eval(self):
        self.supernet.eval()
        return self

    def __call__(self, x):
        return self.supernet(x, self.arch)


def _subnets(recipe: Recipe, rng) -> list:
    from medbench.spaces import unet3d

    sub = recipe.subspace()
    draw = unet3d.sample if sub is None else sub.sample
    picks = draw(recipe.random_subnets, rng) if recipe.random_subnets else []
    if recipe.sampling == "sandwich":
        return [*recipe.bounds(), *picks]
    return picks


def _checkpoint(work: WorkDir, epoch: int) -> Path:
    return work.root / "checkpoints" / f"epoch{epoch:04d}.pt"


def _data(task, recipe: Recipe, cache: dict):
    from monai.data import CacheDataset

    from builders.data import msd

    if "data" not in cache:
        cache["train_tf"] = msd.transforms(recipe.spatial_size, train=True)
        cache["data"] = {
            "train": CacheDataset(task.files("train"), cache["train_tf"], progress=False),
            **{p: CacheDataset(task.files(p), msd.transforms(recipe.spatial_size, False),
                               progress=False) for p in ("val", "test")}}
    return cache["data"]


def _state(task, recipe: Recipe, device: str, work: WorkDir, epoch: int):
    """Supernet, optimiser and schedule as they were after ``epoch`` (0: fresh)."""
    import torch

    from medbench.spaces.nets import build_supernet

    torch.manual_seed(recipe.seed)
    net = build_supernet(recipe.space, task.n_channels, len(task.class_names),
                         **({"cmax": recipe.cmax} if recipe.cmax else {})).to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=recipe.epochs)
    elapsed = 0.0
    if epoch > 0:
        path = _checkpoint(work, epoch)
        if not path.is_file():
            raise MedbenchError(f"no checkpoint {path}: epoch {epoch} is not finished")
        state = torch.load(path, map_location=device, weights_only=False)
        net.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        elapsed = state["elapsed_seconds"]
    return net, opt, sched, elapsed


def train_epoch(job: Job, run_id: str, *, task, recipe: Recipe, device: str, work: WorkDir,
                cache: dict) -> dict[str, list[dict]]:
    """Train epoch ``job.args['epoch']`` from the previous checkpoint; write this one."""
    import numpy as np
    import torch
    from monai.data import DataLoader
    from monai.losses import DiceCELoss

    from builders.measure.metrics import segmentation_metrics

    epoch = job.args["epoch"]
    # A checkpoint holds weights and optimiser moments (1.7 GB for the full supernet): keep
    # only the one this epoch starts from (and this epoch's, if a killed run wrote it).
    for old in (work.root / "checkpoints").glob("epoch*.pt"):
        if int(old.stem[5:]) < epoch - 1:
            old.unlink()
    net, opt, sched, elapsed = _state(task, recipe, device, work, epoch - 1)
    data = _data(task, recipe, cache)
    cache["train_tf"].set_random_state(seed=recipe.seed * 100_003 + epoch)
    gen = torch.Generator().manual_seed(recipe.seed * 100_003 + epoch)
    rng = np.random.default_rng([recipe.seed, epoch])
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
    t0 = time.perf_counter()
    net.train()
    total, n = 0.0, 0
    for batch in DataLoader(data["train"], batch_size=recipe.batch_size, shuffle=True,
                            generator=gen):
        x, y = batch["image"].to(device), batch["label"].to(device)
        archs = _subnets(recipe, rng)
        opt.zero_grad(set_to_none=True)
        for arch in archs:
            loss = loss_fn(net(x, arch), y) / len(archs)
            loss.backward()
            total += loss.item() * len(x)
        opt.step()
        n += len(x)
    sched.step()
    elapsed += time.perf_counter() - t0
    largest = recipe.bounds()[0]
    val = DataLoader(data["val"], batch_size=recipe.batch_size)
    val_dice = segmentation_metrics(_Subnet(net, largest), val, len(task.class_names), device,
                        recipe.spatial_size, full=False)["dice"]
    buf = io.BytesIO()
    torch.save({"model": net.state_dict(), "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(), "elapsed_seconds": elapsed, "epoch": epoch,
                "recipe": asdict(recipe)}, buf)
    atomic_write_bytes(_checkpoint(work, epoch), buf.getvalue())
    key = {"space": recipe.space, "arch_id": largest.arch_id, "task": task.task,
           "method": "supernet", "seed": recipe.seed}
    return {"curves": [{**key, "epoch": epoch, "train_loss": total / n, "val_dice": val_dice,
                        "elapsed_seconds": elapsed, "run_id": run_id}],
            "architectures": [{"space": recipe.space, "arch_id": largest.arch_id,
                               "arch_index": largest.arch_index,
                               "config": largest.config_json(), "run_id": run_id}],
            "tasks": [task.tasks_row([task.n_channels, *recipe.spatial_size], run_id)]}


def evaluate_chunk(job: Job, run_id: str, *, task, recipe: Recipe, device: str,
                   work: WorkDir, epoch: int, cache: dict, threads: int = 0
                   ) -> dict[str, list[dict]]:
    """Val and test metrics of a chunk of subnets of the checkpoint after ``epoch``, on
    ``threads`` torch threads (0: as set)."""
    import torch
    from monai.data import DataLoader

    from builders.measure.metrics import segmentation_metrics
    from medbench.spaces import get_space

    if threads:
        torch.set_num_threads(threads)
    space = get_space(recipe.space)
    if "net" not in cache:
        cache["net"] = _state(task, recipe, device, work, epoch)[0].eval()
    net, data = cache["net"], _data(task, recipe, cache)
    loaders = {p: DataLoader(data[p], batch_size=recipe.batch_size) for p in ("val", "test")}
    evals, archs = [], []
    for arch_id in job.args["archs"]:
        arch = space.from_id(arch_id)
        row = {"space": recipe.space, "arch_id": arch_id, "task": task.task, "method": "supernet",
               "seed": recipe.seed, "epochs": epoch, "device": device_name(device),
               "run_id": run_id}
        for part, loader in loaders.items():
            for name, value in segmentation_metrics(_Subnet(net, arch), loader,
                                                    len(task.class_names), device,
                                                    recipe.spatial_size).items():
                row[f"{part}_{name}"] = value
        evals.append(row)
        archs.append({"space": recipe.space, "arch_id": arch_id, "arch_index": arch.arch_index,
                      "config": arch.config_json(), "run_id": run_id})
    return {"evaluations": evals, "architectures": archs,
            "tasks": [task.tasks_row([task.n_channels, *recipe.spatial_size], run_id)]}


def same_supernet(work: WorkDir, tables: str, task: str, recipe: Recipe) -> None:
    """Refuse to evaluate a supernet other than the one whose rows ``tables`` hold: its
    training curve here (train loss and val Dice of the largest subnet, per epoch) must equal
    the released one where both have the epoch. Training is seeded per epoch, so a retrain
    from scratch on the same kind of device reproduces it (a fresh checkout has no
    checkpoint); one that differs would mix two networks' subnets under one key."""
    import medbench
    import pyarrow.parquet as pq

    if not Path(tables).is_dir():
        return
    with medbench.open(tables) as store:
        released = {e: (loss, dice) for e, loss, dice in store.fetchall(
            f'SELECT epoch, train_loss, val_dice FROM "{store.view("curves", task)}" WHERE '
            "task = ? AND space = ? AND method = 'supernet' AND seed = ? AND arch_id = ?",
            [task, recipe.space, recipe.seed, recipe.bounds()[0].arch_id])}
    for f in (work.root / "jobs").glob("*/curves/**/*.parquet"):
        for r in pq.read_table(f, partitioning=None).to_pylist():
            want = released.get(r["epoch"])
            if want is not None and want != (r["train_loss"], r["val_dice"]):
                raise MedbenchError(
                    f"the supernet under {work.root} is not the released one: epoch "
                    f"{r['epoch']} has train loss {r['train_loss']:.6g} and val Dice "
                    f"{r['val_dice']:.6g}, the tables {want[0]:.6g} and {want[1]:.6g}; its "
                    "subnets would mix with another network's (use another --seed)")


def evaluated(tables: str, task: str, recipe: Recipe) -> set[str]:
    """Architectures whose subnet evaluation (``recipe``'s space and seed) ``tables`` holds."""
    import medbench

    if not Path(tables).is_dir():
        return set()
    with medbench.open(tables) as store:
        return {a for (a,) in store.fetchall(
            f'SELECT arch_id FROM "{store.view("evaluations", task)}" WHERE task = ? AND '
            "space = ? AND method = 'supernet' AND seed = ?", [task, recipe.space, recipe.seed])}


def main(argv: list[str] | None = None) -> int:
    from functools import partial

    ap = argparse.ArgumentParser(prog="python -m builders.supernet",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("mode", choices=("train", "evaluate"))
    ap.add_argument("--task", default="msd/hippocampus")
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--epochs", type=at_least(1), default=Recipe.epochs)
    ap.add_argument("--sampling", choices=("sandwich", "uniform"), default=Recipe.sampling)
    ap.add_argument("--random-subnets", type=int, default=Recipe.random_subnets)
    ap.add_argument("--spatial", type=int, nargs=3, default=list(Recipe.spatial_size))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--space", choices=("unet3d", "unet3d-v2"), default="unet3d",
                    help="unet3d: the whole space; unet3d-v2: its stride-2 subspace up to "
                         "--cmax channels per level")
    ap.add_argument("--cmax", type=int, nargs="+", default=[8, 16, 64],
                    help="unet3d-v2: the most channels per level (its length: the levels)")
    ap.add_argument("--archs", type=at_least(1), default=10_000, help="evaluate: uniform draws")
    ap.add_argument("--sample-seed", type=int, default=0)
    ap.add_argument("--chunk", type=at_least(1), default=100, help="evaluate: archs per job")
    ap.add_argument("--tables", default="tables", help="evaluate: also every architecture "
                    "with standalone results here")
    ap.add_argument("--limit-jobs", type=at_least(0), default=0)
    ap.add_argument("--workers", type=at_least(1), default=1,
                    help="evaluate: processes evaluating chunks at once")
    ap.add_argument("--device", default=None)
    ap.add_argument("--threads", type=at_least(0), default=0,
                    help="torch threads (0 = all cores; 1 when --workers > 1)")
    ap.add_argument("--work", default="runs/supernet")
    ap.add_argument("--splits-dir", default=None)
    args = ap.parse_args(argv)

    def build() -> dict:
        import numpy as np
        import torch

        from builders.data import msd
        from medbench.spaces import get_space, unet3d

        task_id = resolve_task(args.task)
        if args.epochs < 1 or args.random_subnets < 0 or args.chunk < 1:
            raise MedbenchError("--epochs and --chunk must be >= 1, --random-subnets >= 0")
        if args.sampling == "uniform" and args.random_subnets < 1:
            raise MedbenchError("--sampling uniform needs --random-subnets >= 1")
        v2 = args.space == "unet3d-v2"
        if v2 and (len(args.cmax) not in (3, 4) or any(
                c not in unet3d.level_channels(level) for level, c in enumerate(args.cmax))):
            raise MedbenchError(f"--cmax {args.cmax}: 3 or 4 levels, each one of its level's "
                                "widths (4-32, 8-64, 16-128, 32-256)")
        recipe = Recipe(epochs=args.epochs, sampling=args.sampling,
                        random_subnets=args.random_subnets,
                        spatial_size=tuple(args.spatial), seed=args.seed, space=args.space,
                        cmax=tuple(args.cmax) if v2 else ())
        size = "x".join(map(str, recipe.spatial_size))
        edge = f"-v2-c{'-'.join(map(str, recipe.cmax))}" if v2 else ""
        work = WorkDir(Path(args.work) / task_id.replace("/", "_") /
                       f"v{VERSION}{edge}-{recipe.sampling}{recipe.random_subnets}"
                       f"-e{recipe.epochs}-{size}-s{recipe.seed}")
        if args.threads:
            torch.set_num_threads(args.threads)
        device = torch_device(args.device)
        task = msd.load_task(task_id, args.data_root, splits_dir=Path(args.splits_dir)
                             if args.splits_dir else msd.SPLITS_DIR)
        if args.mode == "train":
            jobs = [Job(f"epoch{e:04d}", {"epoch": e, "recipe": asdict(recipe)})
                    for e in range(1, recipe.epochs + 1)]
            run = partial(train_epoch, task=task, recipe=recipe, device=device, work=work,
                          cache={})
            eval_work = work
        else:
            last = max((int(p.stem[5:]) for p in (work.root / "checkpoints").glob("epoch*.pt")),
                       default=0)
            if last < recipe.epochs:
                raise MedbenchError(f"the supernet has {last} of {recipe.epochs} epochs under "
                                    f"{work.root}; train it first")
            if args.tables:
                same_supernet(work, args.tables, task_id, recipe)
            from builders.plans import architectures_to_measure

            sub = recipe.subspace()
            rng = np.random.default_rng(args.sample_seed)
            ids = [a.arch_id for a in (unet3d.sample(args.archs, rng) if sub is None
                                       else sub.sample(args.archs, rng))]
            # and every architecture with standalone results that the supernet holds
            space = get_space(recipe.space)
            standalone = {a for s, a in architectures_to_measure(args.tables, task_id, 0,
                                                                    method="standalone")
                          if s == recipe.space and (sub is None or space.from_id(a) in sub)}
            drawn = set(ids)
            jobs = [Job(f"eval-e{last}-arch{space.from_id(a).arch_index}",
                        {"archs": [a], "checkpoint": last})
                    for a in sorted(standalone - drawn)]
            chunks = [Job(f"eval-e{last}-{i // args.chunk:05d}",
                          {"archs": ids[i:i + args.chunk], "checkpoint": last})
                      for i in range(0, len(ids), args.chunk)]
            jobs += sorted(chunks, key=lambda j: standalone.isdisjoint(j.args["archs"]))
            # a fresh checkout has no work folder: what is released is done (a subnet has one
            # supernet row per seed, the tables' key)
            done = evaluated(args.tables, task_id, recipe) if args.tables else set()
            n_jobs = len(jobs)
            jobs = [Job(j.key, {**j.args, "recipe": asdict(recipe)}) for j in jobs
                    if not done.issuperset(j.args["archs"])]
            released = n_jobs - len(jobs)
            threads = args.threads or (1 if args.workers > 1 else 0)
            run = partial(evaluate_chunk, task=task, recipe=recipe, device=device, work=work,
                          epoch=last, cache={}, threads=threads)
            eval_work = WorkDir(work.root / "evaluate")
        # Epochs depend on each other: always one at a time, in this process.
        counts = run_jobs(eval_work, jobs, run, builder=BUILDER, version=VERSION,
                          device=device_name(device), describe=lambda j: j.key,
                          limit=args.limit_jobs,
                          workers=args.workers if args.mode == "evaluate" else 1)
        return {**counts, **({"released": released} if args.mode == "evaluate" else {}),
                "work": str(eval_work.root), "recipe": asdict(recipe)}

    return finish("builders.supernet", build)


if __name__ == "__main__":
    sys.exit(main())
