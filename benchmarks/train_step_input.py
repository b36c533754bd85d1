"""A unet3d-v2 training step on MONAI MetaTensor input against plain tensors, side by side.

    python benchmarks/train_step_input.py [--rounds 8] [--threads 1]

The MSD transforms end in plain tensors (``builders.data.msd.transforms``); before, batches
were MetaTensors, whose metadata is carried through every op of the forward pass, the loss
and the backward pass. For a few architectures from the cheapest of the space to a mid-size
one, the same step (DiceCE, AdamW, batch 4 at 48x64x48) is timed alternately on each kind of
input, after checking that both give the same loss and weights bit for bit.
"""

from __future__ import annotations

import argparse
import time

ARCHS = ("s2|c4-8-16|k3-3-3|b1-1-1|r0-0-0|n1-1-1", "s2|c8-16-64|k3-3-3|b1-2-1|r1-0-1|n2-1-1",
         "s1|c4-8-32|k3-3-5|b1-1-2|r0-1-0|n1-2-1")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    import torch
    from monai.data import MetaTensor
    from monai.losses import DiceCELoss

    from medbench.spaces import unet3d_v2
    from medbench.spaces.nets import build

    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 1, 48, 64, 48, generator=g)
    y = torch.randint(0, 3, (4, 1, 48, 64, 48), generator=g).float()
    inputs = {"MetaTensor": (MetaTensor(x), MetaTensor(y)), "plain": (x, y)}
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
    for arch_id in ARCHS:
        nets = {}
        for kind in inputs:  # the same start for both, so their steps can be compared
            torch.manual_seed(0)
            net = build("unet3d-v2", unet3d_v2.from_id(arch_id), 1, 3)
            nets[kind] = (net, torch.optim.AdamW(net.parameters(), lr=2e-3))

        def step(kind: str) -> float:
            net, opt = nets[kind]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(net(inputs[kind][0]), inputs[kind][1])
            loss.backward()
            opt.step()
            return loss.item()

        losses = {k: step(k) for k in inputs}
        a, b = (n.state_dict() for n, _ in nets.values())
        assert len(set(losses.values())) == 1 and all(torch.equal(a[k], b[k]) for k in a), \
            "MetaTensor and plain steps differ"
        seconds = dict.fromkeys(inputs, 0.0)
        for _ in range(args.rounds):
            for kind in inputs:
                t0 = time.perf_counter()
                step(kind)
                seconds[kind] += time.perf_counter() - t0
        meta, plain = (seconds[k] / args.rounds for k in inputs)
        print(f"{arch_id}: MetaTensor {meta:.3f} s, plain {plain:.3f} s per step "
              f"({meta / plain:.2f}x; identical loss and weights)")


if __name__ == "__main__":
    main()
