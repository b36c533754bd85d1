"""Zero-cost proxies: the 13 of NAS-Bench-Suite-Zero as one small registry.

Each proxy is one function ``fn(net, x, y, loss_fn) -> float`` run on a deep copy of an
untrained network (so proxies that change weights, like zen and synflow, leave it intact);
they share the helpers below (layer selection, gradients, activation hooks). For 3D
segmentation the loss is per voxel (the training loss, e.g. DiceCE) and labels are masks;
for classification the loss is cross-entropy (multi-label: BCE on logits).

Choices written down (see DATASHEET.md): the network is in train mode (normalisation uses
batch statistics) except where noted; weighted layers are Conv1d/2d/3d, their transposed
forms and Linear; synflow runs in float64 with every normalisation layer replaced by identity
(an instance norm of a constant input would zero the signal) and absolute weights; a score
that is NaN or infinite is returned as NaN and stored as NULL, never replaced by a number.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["Proxy", "PROXIES", "SHARED_PASSES", "score", "score_all", "weighted_layers"]

_WEIGHTED = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d,
             nn.ConvTranspose3d, nn.Linear)
_NORMS = (nn.modules.batchnorm._BatchNorm, nn.modules.instancenorm._InstanceNorm,
          nn.GroupNorm, nn.LayerNorm)
_ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU)


@dataclass(frozen=True)
class Proxy:
    name: str
    fn: Callable[..., float]
    needs_labels: bool
    definition: str


#: Every proxy by name, in the order defined below (:func:`proxy` adds each).
PROXIES: dict[str, Proxy] = {}


def proxy(needs_labels: bool) -> Callable:
    """Register the decorated score function under its name, its docstring (the formula)
    as the definition."""
    def register(fn: Callable[..., float]) -> Callable[..., float]:
        PROXIES[fn.__name__] = Proxy(fn.__name__, fn, needs_labels, " ".join(fn.__doc__.split()))
        return fn
    return register


def weighted_layers(net: nn.Module) -> list[nn.Module]:
    return [m for m in net.modules() if isinstance(m, _WEIGHTED)]


class _Shared:
    """Passes that several proxies read, on one copy of the network and one batch.

    :func:`score_all` gives grad_norm, snip, plain, fisher and grasp one copy (one forward
    and backward of the loss; grasp adds its Hessian-vector pass), and jacov and epe_nas
    another (one input-Jacobian pass): the scores are those of separate passes, computed
    once. A proxy that reuses a pass is charged its seconds too, so ``seconds`` stays the cost
    of that proxy on its own.
    """

    def __init__(self) -> None:
        self.results: dict[str, tuple[object, float]] = {}
        self.reused_seconds = 0.0

    def get(self, key: str, compute: Callable[[], object]) -> object:
        import time

        if key in self.results:
            value, seconds = self.results[key]
            self.reused_seconds += seconds
            return value
        t0 = time.perf_counter()
        value = compute()
        self.results[key] = (value, time.perf_counter() - t0)
        return value


def _shared(net, key: str, compute: Callable[[], object]) -> object:
    shared = getattr(net, "_proxy_shared", None)
    return shared.get(key, compute) if shared is not None else compute()


def _loss_pass(net, x, y, loss_fn) -> tuple[list[nn.Module], list[torch.Tensor]]:
    """One forward and backward of the loss: the weighted layers (their weights' gradients
    filled) and their outputs, each keeping its gradient."""
    def compute():
        acts: list[torch.Tensor] = []

        def keep(module, inputs, output):
            output.retain_grad()
            acts.append(output)

        hooks = [m.register_forward_hook(keep) for m in weighted_layers(net)]
        try:
            net.zero_grad(set_to_none=True)
            loss_fn(net(x), y).backward()
        finally:
            for h in hooks:
                h.remove()
        return weighted_layers(net), acts

    return _shared(net, "loss", compute)


def _grads(net, x, y, loss_fn) -> list[nn.Module]:
    return _loss_pass(net, x, y, loss_fn)[0]


@proxy(needs_labels=False)
def params(net, x, y, loss_fn) -> float:
    """Trainable parameters."""
    return float(sum(p.numel() for p in net.parameters() if p.requires_grad))


@proxy(needs_labels=False)
def flops(net, x, y, loss_fn) -> float:
    """Floating-point operations of one forward pass at batch 1."""
    from torch.utils.flop_counter import FlopCounterMode

    net.eval()  # batch 1: train-mode batch norm cannot run on a 1x1 map (counts are alike)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        net(x[:1])
    return float(counter.get_total_flops())


@proxy(needs_labels=False)
def l2_norm(net, x, y, loss_fn) -> float:
    """Sum over weighted layers of ||W||_2."""
    return float(sum(m.weight.detach().norm() for m in weighted_layers(net)))


@proxy(needs_labels=True)
def grad_norm(net, x, y, loss_fn) -> float:
    """Sum over weighted layers of ||dL/dW||_2."""
    return float(sum(m.weight.grad.norm() for m in _grads(net, x, y, loss_fn)
                     if m.weight.grad is not None).detach())


@proxy(needs_labels=True)
def snip(net, x, y, loss_fn) -> float:
    """Sum of |W * dL/dW|."""
    return float(sum((m.weight.grad * m.weight.detach()).abs().sum()
                     for m in _grads(net, x, y, loss_fn) if m.weight.grad is not None))


@proxy(needs_labels=True)
def plain(net, x, y, loss_fn) -> float:
    """Sum of W * dL/dW."""
    return float(sum((m.weight.grad * m.weight.detach()).sum()
                     for m in _grads(net, x, y, loss_fn) if m.weight.grad is not None))


@proxy(needs_labels=True)
def grasp(net, x, y, loss_fn) -> float:
    """Sum of -W * (H g), g = dL/dW, H the Hessian."""
    # g = dL/dW from the shared loss pass (the same gradient a pass of its own gives)
    g = [torch.zeros_like(m.weight) if m.weight.grad is None else m.weight.grad.detach()
         for m in _grads(net, x, y, loss_fn)]
    weights = [m.weight for m in weighted_layers(net)]
    grad_f = torch.autograd.grad(loss_fn(net(x), y), weights, create_graph=True,
                                 allow_unused=True)
    z = sum((gf * gi).sum() for gf, gi in zip(grad_f, g) if gf is not None)
    hg = torch.autograd.grad(z, weights, allow_unused=True)
    return float(sum((-w.detach() * h).sum() for w, h in zip(weights, hg) if h is not None))


@proxy(needs_labels=True)
def fisher(net, x, y, loss_fn) -> float:
    """Sum over layer outputs a of 0.5 sum_channels (mean over samples of sum_space a
    dL/da)^2."""
    acts = _loss_pass(net, x, y, loss_fn)[1]
    total = 0.0
    for a in acts:
        if a.grad is None:
            continue
        per_channel = (a * a.grad).flatten(2).sum(-1) if a.dim() > 2 else a * a.grad
        total += float(0.5 * per_channel.detach().mean(0).pow(2).sum())
    return total


@proxy(needs_labels=False)
def synflow(net, x, y, loss_fn) -> float:
    """Sum of |W * dR/dW|, R = sum of the output of the absolute-weight, normalisation-free
    net on ones, in float64."""
    net = copy.deepcopy(net).double()
    for name, module in list(net.named_modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, _NORMS):
                setattr(module, child_name, nn.Identity())
    with torch.no_grad():
        for p in net.parameters():
            p.abs_()
    net.zero_grad(set_to_none=True)
    net(torch.ones((1, *x.shape[1:]), dtype=torch.float64, device=x.device)).sum().backward()
    return float(sum((m.weight.grad * m.weight.detach()).abs().sum()
                     for m in weighted_layers(net) if m.weight.grad is not None))


def _jacobians(net, x) -> torch.Tensor:
    def compute():
        xg = x.clone().requires_grad_(True)
        net.zero_grad(set_to_none=True)
        net(xg).sum().backward()
        return xg.grad.detach().flatten(1)

    return _shared(net, "jacobians", compute)


def _eig_score(corr: torch.Tensor) -> float:
    v = torch.linalg.eigvalsh(corr.double())
    return float(-torch.sum(torch.log(v + 1e-5) + 1.0 / (v + 1e-5)))


@proxy(needs_labels=False)
def jacov(net, x, y, loss_fn) -> float:
    """-sum(log(l + 1e-5) + 1/(l + 1e-5)) over eigenvalues l of the correlation of input
    Jacobians."""
    j = _jacobians(net, x)
    return _eig_score(torch.nan_to_num(torch.corrcoef(j)))


@proxy(needs_labels=True)
def epe_nas(net, x, y, loss_fn) -> float:
    """Per-class correlation of input Jacobians: sum over classes of |sum log(|corr| +
    1e-5)|."""
    j = _jacobians(net, x)
    labels = _sample_labels(y)
    total = 0.0
    for c in labels.unique():
        rows = j[labels == c]
        if len(rows) < 2:
            continue
        corr = torch.nan_to_num(torch.corrcoef(rows))
        total += abs(float(torch.log(corr.abs() + 1e-5).sum()))
    return total


def _sample_labels(y: torch.Tensor) -> torch.Tensor:
    """One label per sample: the class itself, or for a mask its most frequent foreground
    class (0 if it has none)."""
    if y.dim() <= 2:
        return y.reshape(len(y), -1)[:, 0].long() if y.dim() == 2 else y.long()
    flat = y.reshape(len(y), -1).long()
    counts = torch.stack([(flat == c).sum(1) for c in range(int(flat.max()) + 1)], 1)
    counts[:, 0] = 0
    return torch.where(counts.sum(1) > 0, counts.argmax(1), torch.zeros_like(counts[:, 0]))


@proxy(needs_labels=False)
def nwot(net, x, y, loss_fn) -> float:
    """log|det K|, K = sum over activations of c c^T + (1 - c)(1 - c)^T for binary codes c."""
    n = len(x)
    k = torch.zeros(n, n, dtype=torch.float64, device=x.device)

    def add(module, inputs, output):
        c = (inputs[0].detach().flatten(1) > 0).double()
        k.add_(c @ c.t() + (1 - c) @ (1 - c).t())

    hooks = [m.register_forward_hook(add) for m in net.modules()
             if isinstance(m, _ACTIVATIONS)]
    try:
        with torch.no_grad():
            net(x)
    finally:
        for h in hooks:
            h.remove()
    return float(torch.linalg.slogdet(k)[1])


@proxy(needs_labels=False)
def zen(net, x, y, loss_fn) -> float:
    """log E||f(x) - f(x + 0.01 e)||_1 on N(0,1) weights, f the features before the last
    layer, + sum log sqrt(mean BN running var)."""
    net = copy.deepcopy(net)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, _WEIGHTED):
                nn.init.normal_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
    head = weighted_layers(net)[-1]  # features = the input of the last weighted layer
    feats: list[torch.Tensor] = []
    hook = head.register_forward_hook(lambda m, i, o: feats.append(i[0].detach()))
    try:
        with torch.no_grad():
            noise = torch.randn_like(x)
            net(x)
            net(x + 0.01 * noise)
    finally:
        hook.remove()
    f1, f2 = feats
    delta = (f1 - f2).abs().mean()
    bn = sum(math.log(math.sqrt(float(m.running_var.mean()))) for m in net.modules()
             if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_var is not None)
    return float(torch.log(delta + 1e-12)) + bn




def score(name: str, net: nn.Module, x: torch.Tensor, y: torch.Tensor,
          loss_fn: Callable, seed: int = 0) -> float:
    """One proxy's score of ``net`` on the batch (x, y); NaN if it cannot be computed."""
    return _score(name, net, x, y, loss_fn, seed, None)[0]


#: Proxies that read the same pass (see :class:`_Shared`).
SHARED_PASSES = (("grad_norm", "snip", "plain", "fisher", "grasp"), ("jacov", "epe_nas"))


def score_all(net: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn: Callable,
              seed: int = 0, names=None) -> dict[str, tuple[float, float]]:
    """(score, seconds) of every proxy in ``names`` (default: all); the same scores as
    :func:`score` one by one, with each shared pass run once."""
    import time

    group_of = {n: i for i, group in enumerate(SHARED_PASSES) for n in group}
    copies: dict[int, nn.Module] = {}
    out = {}
    for name in PROXIES if names is None else names:
        t0 = time.perf_counter()
        group = group_of.get(name)
        value, copy_ = _score(name, net, x, y, loss_fn, seed, copies.get(group))
        if group is not None:
            copies[group] = copy_
        shared = copy_._proxy_shared  # _score gives every copy one
        reused, shared.reused_seconds = shared.reused_seconds, 0.0
        out[name] = (value, time.perf_counter() - t0 + reused)
    return out


def _score(name, net, x, y, loss_fn, seed, copy_):
    """(score, the copy it ran on): a fresh copy of ``net`` unless ``copy_`` is given."""
    from medbench.errors import UnknownNameError

    if name not in PROXIES:
        raise UnknownNameError("proxy", name, sorted(PROXIES))
    torch.manual_seed(seed)
    if copy_ is None:
        copy_ = copy.deepcopy(net).train()
        copy_._proxy_shared = _Shared()
    try:
        value = PROXIES[name].fn(copy_, x, y, loss_fn)
    except (RuntimeError, ValueError, torch.linalg.LinAlgError):
        return math.nan, copy_
    return (value if math.isfinite(value) else math.nan), copy_


# -- the builder ---------------------------------------------------------------------------------

VERSION = "1.0"
BUILDER = "builders.proxies"


def proxy_rows(task, space: str, arch_id: str, seed: int, batch_size: int,
               spatial: tuple[int, int, int], run_id: str, cache: dict,
               device: str = "cpu") -> dict[str, list]:
    """Every proxy of one architecture on one seeded batch of training volumes."""
    from monai.data import CacheDataset
    from monai.losses import DiceCELoss

    from builders.data import msd
    from medbench.spaces.nets import build_network

    if "train" not in cache:
        cache["train"] = CacheDataset(task.files("train"), msd.transforms(spatial, False),
                                      progress=False)
    data = cache["train"]
    picks = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))
    items = [data[int(i)] for i in picks[:batch_size]]
    x = torch.stack([it["image"] for it in items]).float().to(device)
    y = torch.stack([it["label"] for it in items]).float().to(device)
    torch.manual_seed(seed)
    net, arch_index, config = build_network(space, arch_id, task.n_channels,
                                            len(task.class_names), dims=3)
    net = net.to(device)
    loss = DiceCELoss(to_onehot_y=True, softmax=True)
    rows = _score_rows(space, arch_id, task.task, seed, net, x, y, loss, run_id)
    return {"proxies": rows,
            "architectures": [{"space": space, "arch_id": arch_id, "arch_index": arch_index,
                               "config": config, "run_id": run_id}],
            "tasks": [task.tasks_row([task.n_channels, *spatial], run_id)]}


def _score_rows(space, arch_id, task_id, seed, net, x, y, loss, run_id) -> list[dict]:
    """The ``proxies`` rows of one network on one batch: every proxy's score and seconds."""
    return [{"space": space, "arch_id": arch_id, "task": task_id, "proxy": name, "seed": seed,
             "score": None if math.isnan(value) else value, "seconds": seconds,
             "batch_size": len(x), "run_id": run_id}
            for name, (value, seconds) in score_all(net, x, y, loss, seed=seed).items()]


def classification_rows(task, space: str, arch_ids: list[str], seed: int, batch_size: int,
                        run_id: str, device: str = "cpu") -> dict[str, list]:
    """Every proxy of a chunk of architectures on one seeded, class-stratified batch of a
    MedMNIST training split (loss: cross-entropy; multi-label sets: BCE on logits)."""
    from medbench.spaces import get_space
    from medbench.spaces.nets import build

    module = get_space(space)
    x, y = (t.to(device) for t in task.batch(batch_size, seed))
    loss = nn.BCEWithLogitsLoss() if task.multi_label else nn.CrossEntropyLoss()
    rows, archs = [], []
    for arch_id in arch_ids:
        arch = module.from_id(arch_id)
        torch.manual_seed(seed)
        net = build(space, arch, task.n_channels, task.n_classes, dims=task.dims).to(device)
        rows += _score_rows(space, arch_id, task.task, seed, net, x, y, loss, run_id)
        archs.append({"space": space, "arch_id": arch_id, "arch_index": arch.arch_index,
                      "config": arch.config_json(), "run_id": run_id})
    return {"proxies": rows, "architectures": archs, "tasks": [task.tasks_row(run_id)]}


def proxy_job(job, run_id: str, *, task, batch_size: int, spatial: tuple[int, int, int],
              threads: int, cache: dict, device: str = "cpu") -> dict[str, list]:
    """One job of the build, wherever the backend runs it (module level, so it pickles)."""
    if threads:
        torch.set_num_threads(threads)
    if "archs" in job.args:  # a chunk of sampled architectures of a classification task
        return classification_rows(task, job.args["space"], job.args["archs"],
                                   job.args["seed"], batch_size, run_id, device)
    return proxy_rows(task, job.args["space"], job.args["arch_id"], job.args["seed"],
                      batch_size, spatial, run_id, cache, device)


def scored_in_tables(tables: str | None, task: str, batch_size: int) -> set[tuple]:
    """(space, arch_id, seed) whose proxies ``tables`` already holds for ``task`` at this
    batch size: a rerun after a release (its work folder gone) skips them. A job writes every
    proxy of an architecture and seed at once, so one row stands for the job."""
    from pathlib import Path

    if not tables or not Path(tables).is_dir():
        return set()
    import medbench

    with medbench.open(tables) as store:
        return set(store.fetchall(
            f'SELECT DISTINCT space, arch_id, seed FROM "{store.view("proxies", task)}" '
            "WHERE task = ? AND batch_size = ?", [task, batch_size]))


def main(argv: list[str] | None = None) -> int:
    """``python -m builders.proxies --task hippocampus --data-root ../shared/data/msd``:
    proxies for every architecture with results in ``--tables`` (of ``--space`` and
    ``--method`` only, when given; and ``--plan`` N); for a
    MedMNIST task, ``--space mstf --sample N`` scores N architectures sampled from the space
    (``--data-root`` holding the MedMNIST ``.npz`` files), in jobs of ``--chunk``."""
    import argparse
    from pathlib import Path

    from builders.plans import architectures_to_measure

    from builders.jobs import Job, WorkDir, add_backend_args, at_least, finish, torch_device
    from builders.data.msd import SPATIAL
    from medbench.catalog import resolve_space, resolve_task
    from medbench.errors import MedbenchError

    ap = argparse.ArgumentParser(prog="python -m builders.proxies", description=main.__doc__)
    ap.add_argument("--task", default="msd/hippocampus")
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--tables", default="tables", help="score the architectures with results "
                    "here; skip what these released tables already score")
    ap.add_argument("--plan", type=int, default=0)
    ap.add_argument("--seeds", type=at_least(0), nargs="+", default=[0, 1, 2])
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--spatial", type=int, nargs=3, default=list(SPATIAL))
    ap.add_argument("--work", default="runs/proxies")
    ap.add_argument("--splits-dir", default=None)
    ap.add_argument("--threads", type=at_least(0), default=0)
    ap.add_argument("--space", default=None, help="with --sample: the space to sample; "
                    "for an MSD task: only architectures of this space")
    ap.add_argument("--method", choices=("standalone", "supernet"), default=None,
                    help="MSD tasks: only architectures with results of this training method "
                         "(default: any, a supernet's thousands of subnets included)")
    ap.add_argument("--sample", type=at_least(0), default=0,
                    help="score this many architectures "
                    "sampled from --space (MedMNIST tasks)")
    ap.add_argument("--sample-seed", type=int, default=0)
    ap.add_argument("--chunk", type=at_least(1), default=50,
                    help="sampled architectures per job")
    ap.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available; "
                    "the runs table records it)")
    add_backend_args(ap)
    args = ap.parse_args(argv)

    def build() -> dict:
        from builders.data import msd

        task_id = resolve_task(args.task)
        args.device = torch_device(args.device)
        if task_id.startswith("medmnist/"):
            return _sampled_build(args, task_id)
        archs = architectures_to_measure(args.tables, task_id, args.plan,
                                         resolve_space(args.space) if args.space else None,
                                         args.method)
        if not archs:
            raise MedbenchError(f"no architecture with results for {task_id} in "
                                f"{args.tables}; use --plan")
        task = msd.load_task(task_id, args.data_root, splits_dir=Path(args.splits_dir)
                             if args.splits_dir else msd.SPLITS_DIR)
        spatial = tuple(args.spatial)
        setting = {"batch_size": args.batch_size, "spatial": list(spatial)}
        released = scored_in_tables(args.tables, task_id, args.batch_size)
        jobs = [Job(f"{space}-{arch_id}-s{seed}".replace("|", "_"),
                    {"space": space, "arch_id": arch_id, "seed": seed, **setting})
                for space, arch_id in archs for seed in args.seeds
                if (space, arch_id, seed) not in released]
        n_released = len(archs) * len(args.seeds) - len(jobs)
        work = WorkDir(Path(args.work) / task_id.replace("/", "_") /
                       f"b{args.batch_size}-{'x'.join(map(str, spatial))}")
        counts = _run(args, work, jobs, task, spatial,
                      lambda j: f"{j.args['arch_id']} seed {j.args['seed']}")
        return {**counts, "released": n_released, "work": str(work.root)}

    return finish("builders.proxies", build)


def _run(args, work, jobs: list, task, spatial: tuple, describe: Callable) -> dict:
    """Score ``jobs`` into ``work`` with the command line's threads, backend and workers."""
    from functools import partial

    from builders.jobs import device_name, run_jobs, torch_threads

    threads = torch_threads(args)
    return run_jobs(work, jobs, partial(proxy_job, task=task, batch_size=args.batch_size,
                                        spatial=spatial, threads=threads, cache={},
                                        device=args.device),
                    builder=BUILDER, version=VERSION, device=device_name(args.device),
                    describe=describe, backend=args.backend, workers=args.workers,
                    cpus_per_job=threads or 1)


def _sampled_build(args, task_id: str) -> dict:
    """Proxies of ``--sample`` architectures of ``--space`` on a MedMNIST task."""
    from pathlib import Path

    import numpy as np

    from builders.data import medmnist as medmnist_data
    from builders.jobs import Job, WorkDir
    from medbench.errors import MedbenchError
    from medbench.spaces import get_space

    if not args.space or args.sample < 1 or args.chunk < 1:
        raise MedbenchError("a MedMNIST task needs --space (e.g. mstf) and --sample N "
                            "(N >= 1), and --chunk >= 1")
    module = get_space(args.space)
    task = medmnist_data.load(task_id, args.data_root)
    draw = getattr(module, "sample_choices", module.sample)  # mednns: per choice, as MedNNS
    archs = [a.arch_id for a in draw(args.sample, np.random.default_rng(args.sample_seed))]
    setting = {"space": args.space, "batch_size": args.batch_size,
               "sample_seed": args.sample_seed}
    # A job is named by its slice of the (prefix-stable) sample, not by --sample, so a larger
    # --sample later extends the build and skips the chunks already scored; a short last
    # chunk carries its length (scored again in full later; the release keeps one row per key).
    chunks = [archs[i:i + args.chunk] for i in range(0, len(archs), args.chunk)]
    released = scored_in_tables(args.tables, task_id, args.batch_size)
    jobs = [Job(f"{args.space}-k{args.chunk}-c{c:05d}"
                f"{'' if len(part) == args.chunk else f'-n{len(part)}'}-s{seed}",
                {**setting, "archs": part, "seed": seed})
            for c, part in enumerate(chunks) for seed in args.seeds
            if not all((args.space, a, seed) in released for a in part)]
    n_released = len(chunks) * len(args.seeds) - len(jobs)
    work = WorkDir(Path(args.work) / task_id.replace("/", "_") /
                   f"{args.space}-b{args.batch_size}-sample{args.sample_seed}")
    counts = _run(args, work, jobs, task, (),
                  lambda j: f"{len(j.args['archs'])} {args.space} archs seed {j.args['seed']}")
    return {**counts, "released": n_released, "work": str(work.root), "archs": len(archs)}


if __name__ == "__main__":
    import sys

    sys.exit(main())
