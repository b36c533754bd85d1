"""MedNNS's model zoo: train one ``mednns`` weight-sharing supernet per MedMNIST set, then
evaluate a fixed sample of its subnets.

    python -m builders.mednns_supernet train --task breastmnist --data-root ../shared/data/medmnist
    python -m builders.mednns_supernet evaluate --task breastmnist \\
        --data-root ../shared/data/medmnist --archs 1000 [--chunk 50] [--recalibrate 500]

**Training** (progressive shrinking, then the sandwich rule, as MedNNS trains OFA-ResNet50;
from scratch, since no ImageNet weights are reachable). A fixed number of steps per stage,
the same for every data set whatever its size (``--steps FULL DEPTH WIDTH SANDWICH``):

1. ``full``: the largest network alone;
2. ``depth``: random depths (stem block and blocks per stage), widest and expand 0.35;
3. ``width``: random depths and widths, expand 0.35;
4. ``sandwich``: every choice: the largest and the smallest network and ``--random-subnets``
   uniform draws per step, gradients accumulated before one optimiser step.

Batch 64 of training images scaled to [-1, 1] (random horizontal flips for 2D sets);
cross-entropy (BCE on logits for multi-label sets), with label smoothing 0.1 from stage 2 on
(MedNNS); AdamW (weight decay 1e-4) with a cosine schedule per stage from ``--lr`` (stage 1)
or a fifth of it (stages 2-4). The residual branches' last batch norms start at zero (the
space's initialisation): from scratch, SGD at MedNNS's lr 0.05 diverged on RetinaMNIST and
stalled at the majority class on BreastMNIST, while AdamW at 1e-3 reached val accuracy 0.88
on BreastMNIST in 100 steps (SGD at 0.01: 0.85). Each chunk of ``--chunk-steps`` steps is
one job that resumes from the previous chunk's checkpoint and writes its own atomically, so a
killed run loses at most one chunk. The losses and the largest and smallest subnets' val
accuracy at the end of each chunk go into the job's ``runs.args``.

**Evaluation**: ``--archs`` architectures drawn per choice with a fixed seed
(:func:`medbench.spaces.mednns.sample_choices`, seed ``--sample-seed``: the same list for
every data set, so zoo rows line up across sets). Each is extracted from the final
supernet, its batch-norm statistics re-estimated on a fixed, seeded set of ``--recalibrate``
training images (OFA's recipe; MedNNS's public code evaluated with the supernet's
statistics), then val and test accuracy and AUC (medmnist's functions) and loss are
measured; rows go to ``evaluations`` (method ``supernet``), ``architectures`` and ``costs``.
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

from builders.jobs import Job, WorkDir, at_least, device_name, finish, run_jobs, torch_device
from medbench.catalog import resolve_task
from medbench.errors import MedbenchError
from medbench.manifest import atomic_write_bytes

__all__ = ["Recipe", "VERSION", "STAGES", "plan_training", "train_chunk", "evaluate_chunk",
           "main"]

VERSION = "1.0"
BUILDER = "builders.mednns_supernet"
STAGES = ("full", "depth", "width", "sandwich")


@dataclass(frozen=True)
class Recipe:
    steps: tuple[int, ...] = (300, 75, 75, 150)   # per stage, in STAGES order
    chunk_steps: int = 25
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-4
    label_smoothing: float = 0.1
    random_subnets: int = 2
    seed: int = 0

    @property
    def name(self) -> str:
        return (f"v{VERSION}-steps{'-'.join(map(str, self.steps))}-b{self.batch_size}"
                f"-r{self.random_subnets}-s{self.seed}")


def plan_training(recipe: Recipe) -> list[Job]:
    """One job per chunk of steps, stage by stage; each resumes from the one before."""
    jobs = []
    for stage, steps in zip(STAGES, recipe.steps):
        for start in range(0, steps, recipe.chunk_steps):
            jobs.append(Job(f"{len(jobs) + 1:04d}-{stage}-{start:05d}",
                            {"stage": stage, "start": start,
                             "stop": min(start + recipe.chunk_steps, steps),
                             "index": len(jobs) + 1, "seed": recipe.seed}))
    return jobs


def _checkpoint(work: WorkDir, index: int) -> Path:
    return work.root / "checkpoints" / f"chunk{index:04d}.pt"


def _draws(stage: str, recipe: Recipe, rng) -> list:
    """The architectures trained on one step of ``stage``."""
    from medbench.spaces import mednns

    if stage == "full":
        return [mednns.largest()]
    if stage == "sandwich":
        return [mednns.largest(), mednns.smallest(),
                *mednns.sample_choices(recipe.random_subnets, rng)]
    out = []
    for arch in mednns.sample_choices(recipe.random_subnets, rng):
        widths = arch.widths if stage == "width" else (2,) * 6
        out.append(mednns.Arch(arch.stem, widths, tuple(
            (mednns.EXPANDS[-1],) * len(s) for s in arch.expands)))
    return out


def _optimiser(net, recipe: Recipe, stage: str):
    import torch

    lr = recipe.lr if stage == "full" else recipe.lr / 5
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=recipe.weight_decay)
    steps = recipe.steps[STAGES.index(stage)]
    return opt, torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(steps, 1))


def _loss(task, recipe: Recipe, stage: str):
    from torch import nn

    if task.multi_label:
        return nn.BCEWithLogitsLoss()
    return nn.CrossEntropyLoss(label_smoothing=0.0 if stage == "full" else recipe.label_smoothing)


def _arrays(task, cache: dict):
    import torch

    if "x" not in cache:
        cache["x"] = {p: torch.from_numpy(task.images(p)) for p in ("train", "val", "test")}
        cache["y"] = {p: torch.from_numpy(task.labels(p)) for p in ("train", "val", "test")}
    return cache["x"], cache["y"]


def train_chunk(job: Job, run_id: str, *, task, recipe: Recipe, device: str, work: WorkDir,
                cache: dict) -> dict[str, list[dict]]:
    """Run the steps of one chunk from the previous chunk's checkpoint; write this one."""
    import numpy as np
    import torch

    from builders.measure.metrics import EVAL_BATCH, class_scores, classification_metrics
    from medbench.spaces import mednns
    from medbench.spaces.nets import build_supernet
    from medbench.spaces.nets import mednns_supernet as sn

    index, stage = job.args["index"], job.args["stage"]
    for old in (work.root / "checkpoints").glob("chunk*.pt"):
        if int(old.stem[5:]) < index - 1:  # keep the one this chunk starts from
            old.unlink()
    torch.manual_seed(recipe.seed)
    net = build_supernet("mednns", task.n_channels, task.n_classes, dims=task.dims).to(device)
    opt, sched = _optimiser(net, recipe, stage)
    elapsed = 0.0
    if index > 1:
        path = _checkpoint(work, index - 1)
        if not path.is_file():
            raise MedbenchError(f"no checkpoint {path}: chunk {index - 1} is not finished")
        state = torch.load(path, map_location=device, weights_only=False)
        net.load_state_dict(state["model"])
        if state["stage"] == stage:  # a new stage starts a new optimiser and schedule
            opt.load_state_dict(state["optimizer"])
            sched.load_state_dict(state["scheduler"])
        elapsed = state["elapsed_seconds"]
    x, y = _arrays(task, cache)
    loss_fn = _loss(task, recipe, stage)
    # every step draws its batch, flips and subnets from its own seed: a resumed run
    # continues the very sequence an uninterrupted one would have run
    t0 = time.perf_counter()
    net.train()
    total, n = 0.0, 0
    for step in range(job.args["start"], job.args["stop"]):
        seed = [recipe.seed, STAGES.index(stage), step]
        gen = torch.Generator().manual_seed(int(np.random.SeedSequence(seed).generate_state(1)[0]))
        idx = torch.randint(len(x["train"]), (recipe.batch_size,), generator=gen)
        xb, yb = x["train"][idx], y["train"][idx]
        if task.dims == 2:
            flip = torch.rand(len(xb), generator=gen) < 0.5
            xb = torch.where(flip[:, None, None, None], xb.flip(-1), xb)
        xb, yb = xb.to(device), yb.to(device)
        archs = _draws(stage, recipe, np.random.default_rng(seed))
        opt.zero_grad(set_to_none=True)
        for arch in archs:
            loss = loss_fn(sn.forward(net, arch, xb), yb) / len(archs)
            loss.backward()
            total += loss.item()
        opt.step()
        sched.step()
        n += 1
    elapsed += time.perf_counter() - t0
    buf = io.BytesIO()
    torch.save({"model": net.state_dict(), "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(), "stage": stage, "index": index,
                "elapsed_seconds": elapsed, "recipe": asdict(recipe)}, buf)
    atomic_write_bytes(_checkpoint(work, index), buf.getvalue())
    # progress, in the runs row: the mean loss and the two extreme subnets' val accuracy
    # (supernet statistics, no recalibration: a cheap trend, not a result)
    net.eval()
    job.args["train_loss"] = total / max(n, 1)
    job.args["elapsed_seconds"] = elapsed
    for label, arch in (("largest", mednns.largest()), ("smallest", mednns.smallest())):
        sub = sn.extract(net, arch)
        logits = class_scores(sub, x["val"], EVAL_BATCH, device)
        job.args[f"val_acc_{label}"] = classification_metrics(task, logits, "val")["acc"]
    return {}


def trained(work: WorkDir, recipe: Recipe) -> Path:
    """The final checkpoint; MedbenchError while training is unfinished."""
    last = len(plan_training(recipe))
    path = _checkpoint(work, last)
    if not path.is_file():
        done = len(work.ok())
        raise MedbenchError(f"the supernet under {work.root} has {done} of {last} training "
                            "chunks; train it first")
    return path


def recalibration_images(task, n: int, seed: int):
    """The fixed, seeded training images every subnet's batch norm is re-estimated on."""
    import numpy as np
    import torch

    x = task.images("train")
    idx = np.sort(np.random.default_rng(seed).permutation(len(x))[:n])
    return torch.from_numpy(x[idx])


def evaluate_chunk(job: Job, run_id: str, *, task, recipe: Recipe, device: str,
                   checkpoint: Path, n_recalibrate: int, cache: dict) -> dict[str, list[dict]]:
    """Val and test accuracy, AUC and loss of a chunk of subnets, each recalibrated."""
    import torch

    from builders.measure.metrics import EVAL_BATCH, class_scores, classification_metrics
    from builders.measure.costs import count_macs
    from medbench.spaces import mednns
    from medbench.spaces.nets import build_supernet
    from medbench.spaces.nets import mednns_supernet as sn

    # channels-last tensors: a third faster on CPU than the default layout, same results
    layout = torch.channels_last if task.dims == 2 else torch.channels_last_3d
    if "net" not in cache:
        net = build_supernet("mednns", task.n_channels, task.n_classes, dims=task.dims
                             ).to(device)
        state = torch.load(checkpoint, map_location=device, weights_only=False)
        net.load_state_dict(state["model"])
        cache["net"] = net.eval()
        cache["epochs"] = round(sum(recipe.steps) * recipe.batch_size
                                / len(task.arrays["train_labels"]))
        cache["recal"] = recalibration_images(task, n_recalibrate, recipe.seed).contiguous(
            memory_format=layout)
        x, _ = _arrays(task, cache)
        for part in ("val", "test"):
            x[part] = x[part].contiguous(memory_format=layout)
    x, y = _arrays(task, cache)
    loss_fn = _loss(task, recipe, "full")
    spatial = tuple(x["train"].shape[2:])
    evals, archs, costs = [], [], []
    for arch_id in job.args["archs"]:
        arch = mednns.from_id(arch_id)
        sub = sn.extract(cache["net"], arch).to(memory_format=layout)
        sn.recalibrate(sub, cache["recal"])
        row = {"space": "mednns", "arch_id": arch_id, "task": task.task, "method": "supernet",
               "seed": recipe.seed, "epochs": cache["epochs"], "device": device_name(device),
               "run_id": run_id}
        for part in ("val", "test"):
            logits = class_scores(sub, x[part], EVAL_BATCH, device)
            for name, value in classification_metrics(task, logits, part).items():
                row[f"{part}_{name}"] = value
            row[f"{part}_loss"] = float(loss_fn(logits, y[part]))
        evals.append(row)
        archs.append({"space": "mednns", "arch_id": arch_id, "arch_index": arch.arch_index,
                      "config": arch.config_json(), "run_id": run_id})
        costs.append({"space": "mednns", "arch_id": arch_id, "task": task.task,
                      "params": sum(p.numel() for p in sub.parameters()),
                      "macs": count_macs(sub, task.n_channels, spatial, device),
                      "input_shape": [task.n_channels, *spatial], "run_id": run_id})
    return {"evaluations": evals, "architectures": archs, "costs": costs,
            "tasks": [task.tasks_row(run_id)]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m builders.mednns_supernet",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("mode", choices=("train", "evaluate"))
    ap.add_argument("--task", required=True, help="a MedMNIST set, e.g. breastmnist")
    ap.add_argument("--data-root", default=None, help="folder of MedMNIST .npz files "
                    "(default: download with medmnist)")
    ap.add_argument("--steps", type=int, nargs=4, default=list(Recipe.steps),
                    metavar=("FULL", "DEPTH", "WIDTH", "SANDWICH"), help="steps per stage")
    ap.add_argument("--chunk-steps", type=int, default=Recipe.chunk_steps,
                    help="train: steps per job (one checkpoint each)")
    ap.add_argument("--batch", type=int, default=Recipe.batch_size)
    ap.add_argument("--lr", type=float, default=Recipe.lr)
    ap.add_argument("--random-subnets", type=int, default=Recipe.random_subnets)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--archs", type=at_least(1), default=1000, help="evaluate: subnets of the zoo")
    ap.add_argument("--sample-seed", type=int, default=0)
    ap.add_argument("--chunk", type=at_least(1), default=50, help="evaluate: subnets per job")
    ap.add_argument("--recalibrate", type=int, default=256,
                    help="evaluate: training images for batch-norm recalibration")
    ap.add_argument("--limit-jobs", type=at_least(0), default=0)
    ap.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    ap.add_argument("--threads", type=at_least(0), default=0, help="torch threads (0 = all cores)")
    ap.add_argument("--work", default="runs/mednns_supernet")
    args = ap.parse_args(argv)

    def build() -> dict:
        import numpy as np
        import torch

        from builders.data import medmnist as medmnist_data
        from medbench.spaces import mednns

        task_id = resolve_task(args.task)
        if not task_id.startswith("medmnist/"):
            raise MedbenchError(f"{task_id} is not a MedMNIST task")
        if min(args.steps) < 0 or sum(args.steps) < 1 or args.chunk_steps < 1:
            raise MedbenchError("--steps must be >= 0 (one at least > 0), --chunk-steps >= 1")
        if args.archs < 1 or args.chunk < 1 or args.recalibrate < 1 or args.batch < 1:
            raise MedbenchError("--archs, --chunk, --recalibrate and --batch must be >= 1")
        if args.random_subnets < 1:
            raise MedbenchError("--random-subnets must be at least 1")
        recipe = Recipe(steps=tuple(args.steps), chunk_steps=args.chunk_steps,
                        batch_size=args.batch, lr=args.lr, random_subnets=args.random_subnets,
                        seed=args.seed)
        work = WorkDir(Path(args.work) / task_id.replace("/", "_") / recipe.name)
        if args.threads:
            torch.set_num_threads(args.threads)
        device = torch_device(args.device)
        task = medmnist_data.load(task_id, args.data_root)
        if args.mode == "train":
            jobs = [Job(j.key, {**j.args, "recipe": asdict(recipe)})
                    for j in plan_training(recipe)]
            run = partial(train_chunk, task=task, recipe=recipe, device=device, work=work,
                          cache={})
            job_work = work
        else:
            checkpoint = trained(work, recipe)
            ids = [a.arch_id for a in mednns.sample_choices(
                args.archs, np.random.default_rng(args.sample_seed))]
            n_recal = min(args.recalibrate, len(task.arrays["train_labels"]))
            jobs = [Job(f"eval-{i // args.chunk:05d}",
                        {"archs": ids[i:i + args.chunk], "seed": recipe.seed,
                         "recalibrate": n_recal, "sample_seed": args.sample_seed})
                    for i in range(0, len(ids), args.chunk)]
            run = partial(evaluate_chunk, task=task, recipe=recipe, device=device,
                          checkpoint=checkpoint, n_recalibrate=n_recal, cache={})
            job_work = WorkDir(work.root / f"evaluate-r{n_recal}")
        # training chunks depend on each other: one at a time, in this process
        counts = run_jobs(job_work, jobs, run, builder=BUILDER, version=VERSION,
                          device=device_name(device), describe=lambda j: j.key,
                          limit=args.limit_jobs)
        return {**counts, "work": str(job_work.root), "recipe": asdict(recipe)}

    return finish("builders.mednns_supernet", build)


if __name__ == "__main__":
    sys.exit(main())
