"""Training-step time of ``unet3d`` networks (and the DynUNet reference) two ways, side by
side, on one CPU thread: PyTorch's default memory layout against channels-last-3D
(``--compare layout``, the default), or batches as MONAI MetaTensors against plain tensors,
both channels-last-3D as the builder (``--compare input``: the MSD transforms end in plain
tensors since 2026-12-06).

    python benchmarks/unet3d_layout.py [--compare layout|input] [--archs ID ...] [--rounds 3]
        [--threads 1]

Each architecture is built once and deep-copied into the second layout, so both start from
the same weights; one step is the builder's (forward, DiceCE loss, backward) on a batch of 4
random volumes of 48x64x48 with random labels (the time of a step does not depend on the
data). Rounds interleave the two ways; the best round of each is compared. Also prints the
largest gradient difference between them, relative to the largest gradient: the two
compute the same function, so it is rounding (layouts) or zero (inputs).
"""

from __future__ import annotations

import argparse
import copy
import time

DEFAULT_ARCHS = (
    "s2|c4-8-16|k3-3-3|b1-1-1|r0-0-0",
    "s2|c8-8-64|k3-3-3|b2-1-1|r0-0-0",
    "s2|c4-16-64|k5-5-3|b1-1-2|r1-0-1",
    "s1|c4-8-16|k3-3-3|b1-1-1|r1-0-1",
    "s1|c4-8-16-64|k3-3-3-3|b1-1-2-1|r1-0-1-1",
    "s1|c16-32-64-128|k5-3-3-3|b1-1-1-1|r0-1-0-0",
    "nnunet-3d-fullres-5level",
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--compare", choices=("layout", "input"), default="layout")
    ap.add_argument("--archs", nargs="+", default=list(DEFAULT_ARCHS))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    import torch
    from monai.data import MetaTensor
    from monai.losses import DiceCELoss

    from medbench.spaces.nets import build_network

    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(4, 1, 48, 64, 48, generator=gen)
    y = torch.randint(0, 3, (4, 1, 48, 64, 48), generator=gen).float()
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
    cl3d, plain = torch.channels_last_3d, (lambda t: t)
    ways = {"layout": {"default": (torch.contiguous_format, plain), "cl3d": (cl3d, plain)},
            "input": {"meta": (cl3d, MetaTensor), "plain": (cl3d, plain)}}[args.compare]
    a, b = ways
    print(f"{'architecture':46s} {a + ' s':>9s} {b + ' s':>8s} {'ratio':>6s} {'grad diff':>9s}")
    for arch in args.archs:
        torch.manual_seed(0)
        space = "unet3d" if "|" in arch else "dynunet"
        net, _, _ = build_network(space, arch, 1, 3, dims=3)
        nets = {name: copy.deepcopy(net).to(memory_format=fmt)
                for name, (fmt, _) in ways.items()}
        best = {name: float("inf") for name in ways}
        grads = {}
        for _ in range(args.rounds):
            for name, (fmt, wrap) in ways.items():
                model = nets[name]
                model.zero_grad(set_to_none=True)
                xb, yb = wrap(x.contiguous(memory_format=fmt)), wrap(y)
                t0 = time.perf_counter()
                loss_fn(model(xb), yb).backward()
                best[name] = min(best[name], time.perf_counter() - t0)
                grads[name] = torch.cat([p.grad.flatten() for p in model.parameters()])
        diff = float((grads[a] - grads[b]).abs().max() / grads[a].abs().max())
        print(f"{arch:46s} {best[a]:9.2f} {best[b]:8.2f} {best[a] / best[b]:6.2f} "
              f"{diff:9.1e}", flush=True)


if __name__ == "__main__":
    main()
