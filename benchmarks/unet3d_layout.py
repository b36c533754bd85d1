"""Training-step time of ``unet3d`` networks (and the DynUNet reference) in PyTorch's default
memory layout against channels-last-3D, side by side, on one CPU thread.

    python benchmarks/unet3d_layout.py [--archs ID ...] [--rounds 3] [--threads 1]

Each architecture is built once and deep-copied into the second layout, so both start from
the same weights; one step is the builder's (forward, DiceCE loss, backward) on a batch of 4
random volumes of 48x64x48 with random labels (the time of a step does not depend on the
data). Rounds interleave the two layouts; the best round of each is compared. Also prints the
largest gradient difference between the layouts, relative to the largest gradient: the two
compute the same function, so it is rounding.
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
    ap.add_argument("--archs", nargs="+", default=list(DEFAULT_ARCHS))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    import torch
    from monai.losses import DiceCELoss

    from medbench.spaces.nets import build_network

    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(4, 1, 48, 64, 48, generator=gen)
    y = torch.randint(0, 3, (4, 1, 48, 64, 48), generator=gen).float()
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
    layouts = {"default": torch.contiguous_format, "channels_last_3d": torch.channels_last_3d}
    print(f"{'architecture':46s} {'default s':>9s} {'cl3d s':>8s} {'ratio':>6s} "
          f"{'grad diff':>9s}")
    for arch in args.archs:
        torch.manual_seed(0)
        space = "unet3d" if "|" in arch else "dynunet"
        net, _, _ = build_network(space, arch, 1, 3, dims=3)
        nets = {name: copy.deepcopy(net).to(memory_format=fmt) for name, fmt in layouts.items()}
        best = {name: float("inf") for name in layouts}
        grads = {}
        for _ in range(args.rounds):
            for name, fmt in layouts.items():
                model = nets[name]
                model.zero_grad(set_to_none=True)
                xb = x.contiguous(memory_format=fmt)
                t0 = time.perf_counter()
                loss_fn(model(xb), y).backward()
                best[name] = min(best[name], time.perf_counter() - t0)
                grads[name] = torch.cat([p.grad.flatten() for p in model.parameters()])
        diff = float((grads["default"] - grads["channels_last_3d"]).abs().max()
                     / grads["default"].abs().max())
        print(f"{arch:46s} {best['default']:9.2f} {best['channels_last_3d']:8.2f} "
              f"{best['default'] / best['channels_last_3d']:6.2f} {diff:9.1e}", flush=True)


if __name__ == "__main__":
    main()
