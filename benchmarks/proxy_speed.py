"""Zero-cost proxy throughput: every proxy on its own pass against the shared passes.

    python benchmarks/proxy_speed.py --data-root ../shared/data/medmnist [--archs 6]

On one CPU thread, for ``--archs`` mstf architectures drawn with seed 0 on BreastMNIST's
batch of 16 (the builder's setting), alternately per architecture: the 13 proxies one by one
(:func:`builders.proxies.score`, a fresh copy and its own forward/backward each) and
:func:`builders.proxies.score_all` (grad_norm, snip, plain, fisher and grasp share one loss pass,
jacov and epe_nas one Jacobian pass). Both give the same scores (checked here); the ratio of
their wall times is measured side by side in one run.
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-root", required=True, help="folder of MedMNIST .npz files")
    ap.add_argument("--task", default="breastmnist")
    ap.add_argument("--archs", type=int, default=6)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    import torch
    from torch import nn

    from builders.data import medmnist as medmnist_data
    from builders.proxies import PROXIES, score, score_all
    from medbench.spaces import mstf
    from medbench.spaces.nets import build

    torch.set_num_threads(1)
    task = medmnist_data.load(f"medmnist/{args.task}", args.data_root)
    x, y = task.batch(16, args.seed)
    loss = nn.BCEWithLogitsLoss() if task.multi_label else nn.CrossEntropyLoss()
    alone = shared = 0.0
    for arch in mstf.sample(args.archs, np.random.default_rng(0)):
        torch.manual_seed(args.seed)
        net = build("mstf", arch, task.n_channels, task.n_classes, dims=task.dims)
        t0 = time.perf_counter()
        one = {n: score(n, net, x, y, loss, seed=args.seed) for n in PROXIES}
        alone += time.perf_counter() - t0
        t0 = time.perf_counter()
        both = score_all(net, x, y, loss, seed=args.seed)
        shared += time.perf_counter() - t0
        for n, v in one.items():
            w = both[n][0]
            assert (math.isnan(v) and math.isnan(w)) or v == w, (n, v, w)
    n = args.archs
    print(f"{n} mstf archs on {args.task}, batch 16, 1 thread: one pass per proxy "
          f"{alone / n:.2f} s/arch, shared passes {shared / n:.2f} s/arch; "
          f"speed-up {alone / shared:.2f}x (same scores)")


if __name__ == "__main__":
    main()
