"""Train sampled architectures of a classification space standalone on MedMNIST sets.

    python -m builders.medmnist_train --task breastmnist --space mstf --archs 50 \\
        --data-root ../shared/data/medmnist [--seeds 0 1 2] [--epochs 20]

One short recipe for every architecture (written in DATASHEET.md): images scaled to
[-1, 1], a random horizontal flip for 2D sets; cross-entropy (BCE on logits for multi-label
sets); SGD (momentum 0.9, Nesterov, lr 0.025, weight decay 3e-4), cosine schedule to 0;
batch 128; the final epoch's weights are evaluated. Per epoch: train loss, val accuracy and
AUC (medmnist's ``getACC``/``getAUC``), training seconds; at the end val and test accuracy
and AUC. The architectures are drawn with a fixed seed (``--sample-seed``), so a build
extends across sessions and resumes like every builder (one job per architecture and seed).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

from medbench.catalog import resolve_task
from medbench.errors import MedbenchError

from builders.jobs import (
    Job,
    WorkDir,
    add_backend_args,
    at_least,
    device_name,
    finish,
    run_jobs,
    torch_device,
    torch_threads,
)
from builders.measure.metrics import EVAL_BATCH, class_scores, classification_metrics

__all__ = ["Recipe", "VERSION", "train_and_evaluate", "main"]

VERSION = "1.0"
BUILDER = "builders.medmnist_train"


@dataclass(frozen=True)
class Recipe:
    """The one short recipe for every architecture (SGD with Nesterov momentum, cosine
    schedule); recorded in each job's ``runs.args``."""

    epochs: int = 20
    batch_size: int = 128
    lr: float = 0.025
    momentum: float = 0.9
    weight_decay: float = 3e-4


def train_and_evaluate(task, space: str, arch_id: str, seed: int, recipe: Recipe, device: str,
                       run_id: str) -> dict[str, list[dict]]:
    """Train one network on one MedMNIST set; its rows for every table it touches."""
    import torch
    from medbench.spaces import get_space
    from medbench.spaces.nets import build
    from torch import nn

    from builders.measure.costs import count_macs

    torch.manual_seed(seed)
    module = get_space(space)
    arch = module.from_id(arch_id)
    net = build(space, arch, task.n_channels, task.n_classes, dims=task.dims).to(device)
    x_train = torch.from_numpy(task.images("train"))
    y_train = torch.from_numpy(task.labels("train"))
    x_val, x_test = (torch.from_numpy(task.images(p)) for p in ("val", "test"))
    loss_fn = nn.BCEWithLogitsLoss() if task.multi_label else nn.CrossEntropyLoss()
    opt = torch.optim.SGD(net.parameters(), lr=recipe.lr, momentum=recipe.momentum,
                          nesterov=True, weight_decay=recipe.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=recipe.epochs)
    gen = torch.Generator().manual_seed(seed)
    key = {"space": space, "arch_id": arch_id, "task": task.task, "method": "standalone",
           "seed": seed}
    curves, elapsed = [], 0.0
    for epoch in range(1, recipe.epochs + 1):
        t0 = time.perf_counter()
        net.train()
        order = torch.randperm(len(x_train), generator=gen)
        total = 0.0
        for i in range(0, len(order), recipe.batch_size):
            idx = order[i:i + recipe.batch_size]
            x, y = x_train[idx], y_train[idx]
            if task.dims == 2:  # random horizontal flip per image
                flip = torch.rand(len(x), generator=gen) < 0.5
                x = torch.where(flip[:, None, None, None], x.flip(-1), x)
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(net(x.to(device)), y.to(device))
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        sched.step()
        elapsed += time.perf_counter() - t0
        val = classification_metrics(task, class_scores(net, x_val, EVAL_BATCH, device), "val")
        curves.append({**key, "epoch": epoch, "train_loss": total / len(order),
                       "val_acc": val["acc"], "val_auc": val["auc"],
                       "elapsed_seconds": elapsed, "run_id": run_id})
    test = classification_metrics(task, class_scores(net, x_test, EVAL_BATCH, device), "test")
    final = {"val": val, "test": test}
    evaluation = {**key, "epochs": recipe.epochs, "train_seconds": elapsed,
                  "device": device_name(device), "run_id": run_id,
                  **{f"{p}_{m}": v for p, d in final.items() for m, v in d.items()}}
    shape = list(x_train.shape[1:])
    return {
        "evaluations": [evaluation],
        "curves": curves,
        "architectures": [{"space": space, "arch_id": arch_id, "arch_index": arch.arch_index,
                           "config": arch.config_json(), "run_id": run_id}],
        "costs": [{"space": space, "arch_id": arch_id, "task": task.task,
                   "params": sum(p.numel() for p in net.parameters() if p.requires_grad),
                   "macs": count_macs(net, task.n_channels, tuple(shape[1:]), device),
                   "input_shape": shape, "run_id": run_id}],
        "tasks": [task.tasks_row(run_id)],
    }


def train_job(job: Job, run_id: str, *, task, recipe: Recipe, device: str,
              threads: int) -> dict[str, list[dict]]:
    """One job, wherever the backend runs it (module level, so it pickles)."""
    if threads:
        import torch

        torch.set_num_threads(threads)
    return train_and_evaluate(task, job.args["space"], job.args["arch_id"], job.args["seed"],
                              recipe, device, run_id)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m builders.medmnist_train",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--task", required=True, help="a MedMNIST set, e.g. breastmnist")
    ap.add_argument("--space", default="mstf")
    ap.add_argument("--archs", type=at_least(1), default=50, help="architectures to sample")
    ap.add_argument("--sample-seed", type=int, default=0)
    ap.add_argument("--seeds", type=at_least(0), nargs="+", default=[0, 1, 2])
    ap.add_argument("--epochs", type=at_least(1), default=Recipe.epochs)
    ap.add_argument("--data-root", default=None, help="folder of MedMNIST .npz files "
                    "(default: download with medmnist)")
    ap.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    ap.add_argument("--threads", type=at_least(0), default=0, help="torch threads (0 = all cores)")
    ap.add_argument("--limit-jobs", type=at_least(0), default=0, help="stop after this many jobs")
    ap.add_argument("--work", default="runs/medmnist_train")
    add_backend_args(ap)
    args = ap.parse_args(argv)

    def build() -> dict:
        import numpy as np
        from medbench.spaces import get_space

        from builders.data import medmnist as medmnist_data

        task_id = resolve_task(args.task)
        if not task_id.startswith("medmnist/"):
            raise MedbenchError(f"{task_id} is not a MedMNIST task")
        if args.archs < 1 or args.epochs < 1:
            raise MedbenchError("--archs and --epochs must be at least 1")
        module = get_space(args.space)
        recipe = Recipe(epochs=args.epochs)
        # a space may define how its zoo is drawn (mednns: per choice, as MedNNS does)
        draw = getattr(module, "sample_choices", module.sample)
        archs = draw(args.archs, np.random.default_rng(args.sample_seed))
        jobs = [Job(f"{a.arch_index}-s{s}", {"space": args.space, "arch_id": a.arch_id,
                                             "seed": s, "recipe": asdict(recipe)})
                for a in archs for s in args.seeds]
        work = WorkDir(Path(args.work) / task_id.replace("/", "_") /
                       f"{args.space}-v{VERSION}-e{recipe.epochs}")

        device = torch_device(args.device)
        task = medmnist_data.load(task_id, args.data_root)
        threads = torch_threads(args)
        counts = run_jobs(work, jobs, partial(train_job, task=task, recipe=recipe,
                                              device=device, threads=threads),
                          builder=BUILDER, version=VERSION, device=device_name(device),
                          describe=lambda j: f"{j.args['arch_id']} seed {j.args['seed']}",
                          backend=args.backend, workers=args.workers,
                          cpus_per_job=threads or 1, limit=args.limit_jobs)
        return {**counts, "work": str(work.root), "recipe": asdict(recipe)}

    return finish("builders.medmnist_train", build)


if __name__ == "__main__":
    sys.exit(main())
