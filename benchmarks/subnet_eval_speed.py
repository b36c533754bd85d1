"""Throughput of supernet subnet evaluation on one CPU thread, and what dominates it.

    python benchmarks/subnet_eval_speed.py --data-root ../shared/data/msd [--archs 20] \\
        [--cmax 8 16 64] [--checkpoint runs/supernet/<task>/<recipe>/checkpoints/epochNNNN.pt]
    python benchmarks/subnet_eval_speed.py --medmnist ../shared/data/medmnist [--archs 50]
    python benchmarks/subnet_eval_speed.py --medmnist ../shared/data/medmnist \\
        --supernet runs/mednns_supernet/<set>/<recipe>/checkpoints/chunkNNNN.pt [--sizes 64 256]

unet3d on MSD hippocampus: the supernet (the whole space, or with ``--cmax`` the edge
supernet of unet3d-v2; untrained unless ``--checkpoint``: a forward pass costs the same
whatever the weights, but HD95 costs more on an untrained net's scattered masks) evaluates
``--archs`` uniformly drawn subnets on the validation and test cases with the builder's own
metric code; the time is split into forward passes and metrics (Dice, Jaccard, HD95), and
the validation prediction step is timed side by side as it was (MONAI MetaTensor input,
``argmax``) and as the builder runs it (plain tensor input, ``torch.max``).
mednns on a MedMNIST set: the zoo builder's evaluation of drawn subnets of an (untrained)
supernet, rows and all, then the same subnets step by step (extraction, batch-norm
recalibration, val + test forward passes, MACs). Reports subnets per hour per core; the
issues' targets are 1,000 (unet3d) and 2,000 (mednns, 28 px).
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def unet3d_speed(data_root: str, n: int, cmax: list[int], checkpoint: str | None) -> None:
    import torch
    from monai.data import CacheDataset, DataLoader

    from builders.data import msd
    from builders.supernet import Recipe, _Subnet
    from builders.measure.metrics import segmentation_metrics
    from medbench.spaces.nets import build_supernet

    torch.set_num_threads(1)
    task = msd.load_task("msd/hippocampus", data_root)
    recipe = Recipe(space="unet3d-v2", cmax=tuple(cmax)) if cmax else Recipe()
    loaders = {p: DataLoader(CacheDataset(task.files(p), msd.transforms(
        recipe.spatial_size, False), progress=False), batch_size=4) for p in ("val", "test")}
    net = build_supernet(recipe.space, 1, 3, **({"cmax": recipe.cmax} if cmax else {}))
    if checkpoint:  # HD95 depends on the predicted masks, so on the weights
        net.load_state_dict(torch.load(checkpoint, weights_only=False)["model"])
    net.eval()
    sub_space = recipe.subspace()
    if sub_space is None:
        from medbench.spaces import unet3d

        archs = unet3d.sample(n, np.random.default_rng(0))
    else:
        archs = sub_space.sample(n, np.random.default_rng(0))
    forward = evaluation = 0.0
    step = {"MetaTensor input, argmax": 0.0, "plain tensor input, torch.max": 0.0}
    for arch in archs:
        sub = _Subnet(net, arch)
        t0 = time.perf_counter()
        with torch.no_grad():  # forward passes alone, to split the evaluation's time
            for loader in loaders.values():
                for batch in loader:
                    sub(batch["image"].as_subclass(torch.Tensor))
        t1 = time.perf_counter()
        for loader in loaders.values():  # the evaluation as the builder runs it
            segmentation_metrics(sub, loader, 3, "cpu", recipe.spatial_size)
        forward += t1 - t0
        evaluation += time.perf_counter() - t1
        with torch.no_grad():  # the prediction step, the earlier way and the builder's
            for batch in loaders["val"]:
                t0 = time.perf_counter()
                before = sub(batch["image"]).argmax(1)
                t1 = time.perf_counter()
                now = torch.max(sub(batch["image"].as_subclass(torch.Tensor)), 1).indices
                step["plain tensor input, torch.max"] += time.perf_counter() - t1
                step["MetaTensor input, argmax"] += t1 - t0
                assert torch.equal(before.as_subclass(torch.Tensor), now), "labels differ"
    print(f"{recipe.space} supernet{' ' + str(cmax) if cmax else ''} "
          f"({'trained' if checkpoint else 'untrained'}): {n} subnets, "
          f"{sum(len(lo.dataset) for lo in loaders.values())} cases each; "
          f"{3600 * n / evaluation:.0f} subnets per hour per core ({evaluation / n:.2f} s "
          f"each: forward passes {forward / n:.2f} s, metrics with HD95 "
          f"{(evaluation - forward) / n:.2f} s)")
    a, b = step.values()
    print("  validation prediction step per subnet (identical labels): " + ", ".join(
        f"{k} {v / n:.2f} s" for k, v in step.items()) + f"; {a / b:.2f}x")


def mednns_speed(root: str, n: int, name: str = "breastmnist", recalibrate: int = 256) -> None:
    import tempfile
    from pathlib import Path

    import torch

    from builders.data import medmnist as medmnist_data
    from builders import mednns_supernet as zoo
    from builders.jobs import Job
    from builders.medmnist_train import EVAL_BATCH, class_scores
    from builders.measure.costs import count_macs
    from medbench.spaces import mednns
    from medbench.spaces.nets import build_supernet
    from medbench.spaces.nets import mednns_supernet as sn

    torch.set_num_threads(1)
    task = medmnist_data.load(f"medmnist/{name}", root)
    recalibrate = min(recalibrate, len(task.arrays["train_labels"]))
    ids = [a.arch_id for a in mednns.sample_choices(n, np.random.default_rng(0))]
    net = build_supernet("mednns", task.n_channels, task.n_classes)  # untrained: same time
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = Path(tmp) / "supernet.pt"
        torch.save({"model": net.state_dict()}, checkpoint)
        cache: dict = {}
        zoo.evaluate_chunk(Job("warm", {"archs": ids[:1]}), "b", task=task, recipe=zoo.Recipe(),
                           device="cpu", checkpoint=checkpoint, n_recalibrate=recalibrate,
                           cache=cache)
        t0 = time.perf_counter()  # the builder's own path, rows and all
        zoo.evaluate_chunk(Job("bench", {"archs": ids}), "b", task=task, recipe=zoo.Recipe(),
                           device="cpu", checkpoint=checkpoint, n_recalibrate=recalibrate,
                           cache=cache)
        sec = time.perf_counter() - t0
    layout = torch.channels_last  # as the builder
    xs = {p: torch.from_numpy(task.images(p)).contiguous(memory_format=layout)
          for p in ("val", "test")}
    recal = zoo.recalibration_images(task, recalibrate, 0).contiguous(memory_format=layout)
    parts = dict.fromkeys(("extract", "recalibrate", "val + test", "MACs"), 0.0)
    for arch_id in ids:  # where the time goes, step by step
        t = [time.perf_counter()]
        sub = sn.extract(net, mednns.from_id(arch_id)).to(memory_format=layout)
        t.append(time.perf_counter())
        sn.recalibrate(sub, recal)
        t.append(time.perf_counter())
        for x in xs.values():
            class_scores(sub, x, EVAL_BATCH, "cpu")
        t.append(time.perf_counter())
        count_macs(sub, task.n_channels, tuple(xs["val"].shape[2:]), "cpu")
        t.append(time.perf_counter())
        for k, a, b in zip(parts, t, t[1:]):
            parts[k] += b - a
    split = ", ".join(f"{k} {v / n:.2f} s" for k, v in parts.items())
    print(f"mednns on {name}: {n} subnets, {recalibrate} recalibration + "
          f"{sum(len(x) for x in xs.values())} val/test images each; {3600 * n / sec:.0f} "
          f"subnets per hour per core ({sec / n:.2f} s each: {split})")
    # The evaluation batch, side by side: every branch's last batch norm gets a non-zero
    # scale (untrained, they are 0 and the branches would add nothing to compare)
    for m in net.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            torch.nn.init.uniform_(m.weight, 0.5, 1.5)
    sizes = sorted({512, EVAL_BATCH, 128})
    seconds = dict.fromkeys(sizes, 0.0)
    for arch_id in ids:
        sub = sn.recalibrate(sn.extract(net, mednns.from_id(arch_id)).to(memory_format=layout),
                             recal)
        outs = {}
        for size in sizes:
            t0 = time.perf_counter()
            outs[size] = [class_scores(sub, x, size, "cpu") for x in xs.values()]
            seconds[size] += time.perf_counter() - t0
        assert all(torch.equal(a, b) for size in sizes
                   for a, b in zip(outs[size], outs[512])), "logits depend on the batch"
    print("  val + test per subnet by images per forward pass (identical logits): "
          + ", ".join(f"{size}: {seconds[size] / n:.2f} s ({seconds[512] / seconds[size]:.2f}x)"
                      for size in sizes))


def recalibration_sizes(root: str, name: str, checkpoint: str, n: int,
                        sizes: list[int]) -> None:
    """What batch-norm recalibration costs and changes, on a trained supernet: for ``n`` zoo
    subnets, val accuracy with the supernet's own statistics (MedNNS's public code) and
    after recalibrating on each number of training images; the time per subnet, the mean
    absolute change of val accuracy and the Kendall tau of the ranking against the largest
    size."""
    import torch
    from scipy.stats import kendalltau

    from builders.data import medmnist as medmnist_data
    from builders import mednns_supernet as zoo
    from builders.medmnist_train import EVAL_BATCH, class_scores, classification_metrics
    from medbench.spaces import mednns
    from medbench.spaces.nets import build_supernet
    from medbench.spaces.nets import mednns_supernet as sn

    torch.set_num_threads(1)
    task = medmnist_data.load(f"medmnist/{name}", root)
    net = build_supernet("mednns", task.n_channels, task.n_classes, task.dims)
    net.load_state_dict(torch.load(checkpoint, map_location="cpu", weights_only=False)["model"])
    net.eval()
    layout = torch.channels_last
    x_val = torch.from_numpy(task.images("val")).contiguous(memory_format=layout)
    archs = mednns.sample_choices(n, np.random.default_rng(0))
    sizes = sorted({min(k, len(task.arrays["train_labels"])) for k in sizes})
    acc = {k: [] for k in [0, *sizes]}
    seconds = dict.fromkeys(sizes, 0.0)
    for arch in archs:
        sub = sn.extract(net, arch).to(memory_format=layout).eval()
        logits = class_scores(sub, x_val, EVAL_BATCH, "cpu")
        acc[0].append(classification_metrics(task, logits, "val")["acc"])
        for k in sizes:
            images = zoo.recalibration_images(task, k, 0).contiguous(memory_format=layout)
            sub = sn.extract(net, arch).to(memory_format=layout)
            t0 = time.perf_counter()
            sn.recalibrate(sub, images)
            seconds[k] += time.perf_counter() - t0
            logits = class_scores(sub, x_val, EVAL_BATCH, "cpu")
            acc[k].append(classification_metrics(task, logits, "val")["acc"])
    ref = np.array(acc[sizes[-1]])
    print(f"mednns on {name}, {n} zoo subnets, val accuracy by recalibration images "
          f"(reference: {sizes[-1]}):")
    for k, a in acc.items():
        a = np.array(a)
        label = "none (supernet statistics)" if k == 0 else f"{k} images"
        cost = f"{seconds[k] / n:.2f} s per subnet" if k else "0 s"
        print(f"  {label:28s} mean val acc {a.mean():.3f}, mean |change| "
              f"{np.abs(a - ref).mean():.3f}, Kendall tau {kendalltau(a, ref).statistic:.3f},"
              f" {cost}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-root", default=None, help="MSD folder (unet3d)")
    ap.add_argument("--medmnist", default=None, help="MedMNIST folder (mednns)")
    ap.add_argument("--archs", type=int, default=20)
    ap.add_argument("--cmax", type=int, nargs="*", default=[],
                    help="unet3d: the edge supernet of unet3d-v2 with these widths (8 16 64)")
    ap.add_argument("--checkpoint", default=None, help="unet3d: a trained supernet checkpoint")
    ap.add_argument("--set", default="breastmnist", help="MedMNIST set (mednns)")
    ap.add_argument("--recalibrate", type=int, default=256,
                    help="mednns: batch-norm recalibration images, as the zoo builder")
    ap.add_argument("--supernet", default=None, help="mednns: a trained supernet checkpoint: "
                    "compare recalibration sizes instead of timing the zoo path")
    ap.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256, 512, 2000])
    args = ap.parse_args()
    if args.medmnist and args.supernet:
        recalibration_sizes(args.medmnist, args.set, args.supernet, args.archs, args.sizes)
        return
    if args.data_root:
        unet3d_speed(args.data_root, args.archs, args.cmax, args.checkpoint)
    if args.medmnist:
        mednns_speed(args.medmnist, args.archs, args.set, args.recalibrate)


if __name__ == "__main__":
    main()
