"""Throughput of supernet subnet evaluation on one CPU thread, and what dominates it.

    python benchmarks/subnet_eval_speed.py --data-root ../shared/data/msd [--archs 20]
    python benchmarks/subnet_eval_speed.py --medmnist ../shared/data/medmnist [--archs 50]

unet3d on MSD hippocampus: the supernet (untrained: the time of a forward pass does not
depend on the weights) evaluates ``--archs`` uniformly drawn subnets on the validation and
test cases with the builder's own metric code; the time is split into forward passes and
metrics (Dice, Jaccard, HD95). mednns on a MedMNIST set: each drawn subnet is built and
evaluated on the validation and test images (the zoo builder's work per subnet). Reports
subnets per hour per core; the issues' targets are 1,000 (unet3d) and 2,000 (mednns, 28 px).
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def unet3d_speed(data_root: str, n: int) -> None:
    import torch
    from monai.data import CacheDataset, DataLoader

    from builders import msd
    from builders.supernet import _Subnet
    from builders.unet3d import _metrics
    from medbench.spaces import unet3d

    torch.set_num_threads(1)
    task = msd.load_task("msd/hippocampus", data_root)
    spatial = (48, 64, 48)
    loaders = {p: DataLoader(CacheDataset(task.files(p), msd.transforms(spatial, False),
                                          progress=False), batch_size=4)
               for p in ("val", "test")}
    net = unet3d.build_supernet(1, 3).eval()
    archs = unet3d.sample(n, np.random.default_rng(0))
    forward = evaluation = 0.0
    for arch in archs:
        sub = _Subnet(net, arch)
        t0 = time.perf_counter()
        with torch.no_grad():  # forward passes alone, to split the evaluation's time
            for loader in loaders.values():
                for batch in loader:
                    sub(batch["image"])
        t1 = time.perf_counter()
        for loader in loaders.values():  # the evaluation as the builder runs it
            _metrics(sub, loader, 3, "cpu", spatial)
        forward += t1 - t0
        evaluation += time.perf_counter() - t1
    print(f"unet3d: {n} subnets, {sum(len(lo.dataset) for lo in loaders.values())} cases each;"
          f" {3600 * n / evaluation:.0f} subnets per hour per core ({evaluation / n:.2f} s "
          f"each: forward passes {forward / n:.2f} s, metrics with HD95 "
          f"{(evaluation - forward) / n:.2f} s)")


def mednns_speed(root: str, n: int, name: str = "breastmnist") -> None:
    import torch

    from builders import medmnist_data
    from builders.medmnist_train import _metrics, _scores
    from medbench.spaces import mednns

    torch.set_num_threads(1)
    task = medmnist_data.load(f"medmnist/{name}", root)
    xs = {p: torch.from_numpy(task.images(p)) for p in ("val", "test")}
    t0 = time.perf_counter()
    for arch in mednns.sample_choices(n, np.random.default_rng(0)):
        net = mednns.build(arch, task.n_channels, task.n_classes).eval()
        for p, x in xs.items():
            _metrics(task, _scores(net, x, 512, "cpu"), p)
    sec = time.perf_counter() - t0
    print(f"mednns on {name}: {n} subnets, {sum(len(x) for x in xs.values())} images each; "
          f"{3600 * n / sec:.0f} subnets per hour per core ({sec / n:.2f} s each)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-root", default=None, help="MSD folder (unet3d)")
    ap.add_argument("--medmnist", default=None, help="MedMNIST folder (mednns)")
    ap.add_argument("--archs", type=int, default=20)
    args = ap.parse_args()
    if args.data_root:
        unet3d_speed(args.data_root, args.archs)
    if args.medmnist:
        mednns_speed(args.medmnist, args.archs)


if __name__ == "__main__":
    main()
