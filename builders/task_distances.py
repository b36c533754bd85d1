"""Fréchet distances between MedMNIST data sets, on features of an encoder trained here.

    python -m builders.task_distances --data-root ../shared/data/medmnist [--tables tables]

No ImageNet weights can be fetched, so the encoder is trained from scratch, one per
dimensionality, on every MedMNIST set present under ``--data-root`` (a set added later is
picked up by a rerun): a small CNN (three conv-BN-ReLU stages of 32, 64 and 128 channels,
each followed by 2x pooling, then global average pooling) with one linear head per set,
trained jointly on each set's own labels (cross-entropy; BCE for multi-label sets) for a
fixed number of steps (``--steps``, Adam lr 1e-3, batches of 64 drawn from one set after
another), so features reflect image content rather than which set an image comes from.
RGB images are averaged to one channel. Features are the 128 pooled activations.

For every pair of sets of the same dimensionality, and for every set against the pool of
all of them (equal draws per set, named ``pooled-2d``/``pooled-3d``), the Fréchet distance
``|mu_a - mu_b|^2 + Tr(S_a + S_b - 2 (S_a S_b)^1/2)`` is computed on up to ``--samples``
training images per set (all of them where a set has fewer; 128 features need at least 129
for a full-rank covariance). Rows go to ``task_distances`` in both directions, with
``method = fid/<encoder name>``; one job per dimensionality. The encoder's trunk goes to
``encoders`` and each set's feature mean and covariance to ``task_features``, so
:func:`embed` places a new data set (``medbench recommend --dataset PATH``) among the held
ones with no held image at hand.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from builders.jobs import Job, WorkDir, add_backend_args, at_least, device_name, finish, run_jobs
from medbench.errors import MedbenchError

__all__ = ["frechet", "frechet_gaussians", "gaussian", "train_encoder", "distance_rows",
           "read_images", "embed", "Embedding", "main", "VERSION"]

VERSION = "1.1"  # 1.1: also writes the encoder and each set's feature Gaussian
ENCODER_VERSION = "1.0"  # the encoder's recipe, in the method name: 1.1 reproduces 1.0's bits
BUILDER = "builders.task_distances"
FEATURES = 128


def gaussian(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of a feature set (rows are samples)."""
    return features.mean(0), np.cov(features, rowvar=False)


def frechet_gaussians(mu_a, s_a, mu_b, s_b) -> float:
    """Fréchet distance between two Gaussians given by mean and covariance. A singular
    product (features that never fire) is fine for ``sqrtm``; where its root is not finite,
    both covariances get 1e-6 on the diagonal, as common FID code does."""
    import warnings

    from scipy import linalg

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        root = linalg.sqrtm(s_a @ s_b)
        if not np.isfinite(root).all():
            eye = np.eye(len(s_a)) * 1e-6
            root = linalg.sqrtm((s_a + eye) @ (s_b + eye))
    root = root.real
    d = float(np.sum((mu_a - mu_b) ** 2) + np.trace(s_a + s_b - 2.0 * root))
    return max(d, 0.0)  # round-off can leave a tiny negative for identical sets


def frechet(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (rows are samples)."""
    return frechet_gaussians(*gaussian(a), *gaussian(b))


def _encoder(dims: int, heads: dict[str, int]):
    import torch
    from torch import nn

    conv = nn.Conv2d if dims == 2 else nn.Conv3d
    bn = nn.BatchNorm2d if dims == 2 else nn.BatchNorm3d
    pool = nn.MaxPool2d if dims == 2 else nn.MaxPool3d
    gap = nn.AdaptiveAvgPool2d(1) if dims == 2 else nn.AdaptiveAvgPool3d(1)

    class Encoder(nn.Module):
        def __init__(self):
            super().__init__()
            layers, c = [], 1
            for width in (32, 64, FEATURES):
                layers += [conv(c, width, 3, padding=1, bias=False), bn(width),
                           nn.ReLU(inplace=True), pool(2)]
                c = width
            self.trunk = nn.Sequential(*layers, gap, nn.Flatten())
            self.heads = nn.ModuleDict({k.replace("/", "_"): nn.Linear(FEATURES, n)
                                        for k, n in heads.items()})

        def forward(self, x, task: str):
            return self.heads[task.replace("/", "_")](self.trunk(x))

    torch.manual_seed(0)
    return Encoder()


def _to_gray(x: np.ndarray) -> np.ndarray:
    return x.mean(axis=1, keepdims=True) if x.shape[1] > 1 else x


def _gray(task, part: str) -> np.ndarray:
    return _to_gray(task.images(part))


def train_encoder(tasks: list, dims: int, steps: int, seed: int = 0, batch: int = 64):
    """The jointly trained encoder of one dimensionality (see the module docstring)."""
    import torch
    from torch import nn

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = _encoder(dims, {t.task: t.n_classes for t in tasks})
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    data = {t.task: (torch.from_numpy(_gray(t, "train")), torch.from_numpy(t.labels("train")))
            for t in tasks}
    net.train()
    for step in range(steps):
        t = tasks[step % len(tasks)]
        x, y = data[t.task]
        idx = torch.from_numpy(rng.choice(len(x), min(batch, len(x)), replace=False))
        loss_fn = nn.BCEWithLogitsLoss() if t.multi_label else nn.CrossEntropyLoss()
        opt.zero_grad(set_to_none=True)
        loss_fn(net(x[idx], t.task), y[idx]).backward()
        opt.step()
    return net.eval()


def _features(net, x: np.ndarray) -> np.ndarray:
    import torch

    out = []
    with torch.no_grad():
        for i in range(0, len(x), 256):
            out.append(net.trunk(torch.from_numpy(x[i:i + 256])).numpy())
    return np.concatenate(out).astype(np.float64)


def distance_rows(tasks: list, dims: int, steps: int, samples: int, run_id: str,
                  seed: int = 0) -> dict[str, list[dict]]:
    """Train the encoder and measure every distance among ``tasks`` (one dimensionality)."""
    rng = np.random.default_rng(seed)
    net = train_encoder(tasks, dims, steps, seed)
    feats = {}
    for t in tasks:
        x = _gray(t, "train")
        pick = rng.choice(len(x), min(samples, len(x)), replace=False)
        feats[t.task] = _features(net, x[pick])
    n_pool = min(len(f) for f in feats.values())
    pooled = np.concatenate([f[rng.choice(len(f), n_pool, replace=False)]
                             for f in feats.values()])
    method = f"fid/medbench-cnn{dims}d-v{ENCODER_VERSION}-s{steps}"
    rows = []
    names = sorted(feats)
    for a in names:
        for b in names:
            if a != b:
                rows.append({"task_a": a, "task_b": b, "method": method,
                             "distance": frechet(feats[a], feats[b]),
                             "n_samples_a": len(feats[a]), "n_samples_b": len(feats[b]),
                             "run_id": run_id})
        rows.append({"task_a": a, "task_b": f"pooled-{dims}d", "method": method,
                     "distance": frechet(feats[a], pooled), "n_samples_a": len(feats[a]),
                     "n_samples_b": len(pooled), "run_id": run_id})
    features = []
    for name in names:
        mu, cov = gaussian(feats[name])
        features.append({"task": name, "method": method, "n_samples": len(feats[name]),
                         "feature_mean": mu.tolist(), "feature_cov": cov.ravel().tolist(),
                         "run_id": run_id})
    # the trunk (features), BN statistics included; the per-set heads only served training
    weights = [{"method": method, "tensor": k, "shape": list(v.shape),
                "weights": v.double().ravel().tolist(), "run_id": run_id}
               for k, v in net.trunk.state_dict().items() if v.is_floating_point()]
    return {"task_distances": rows, "task_features": features, "encoders": weights,
            "tasks": [t.tasks_row(run_id) for t in tasks]}


# -- a new data set -------------------------------------------------------------------------

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def read_images(path: str | Path, max_files: int = 2000, seed: int = 0) -> np.ndarray:
    """A new data set's images as uint8 in MedMNIST's layout: (N, 28, 28[, 3]) for 2D,
    (N, D, H, W) for 3D. ``path`` is a MedMNIST-style ``.npz`` (``train_images``, else
    ``images``), a ``.npy`` array, or a folder of 2D image files (read as grayscale and
    resized to 28 x 28, MedMNIST's size; a seeded draw of ``max_files`` where it holds more)
    or holding one ``.npz``/``.npy``."""
    path = Path(path)
    if path.is_dir():
        arrays = sorted(p for p in path.iterdir() if p.suffix in (".npz", ".npy"))
        files = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if len(arrays) == 1 and not files:
            return read_images(arrays[0])
        if not files:
            raise MedbenchError(f"{path}: no image files ({', '.join(IMAGE_SUFFIXES)}) and "
                                "not exactly one .npz/.npy")
        if len(files) > max_files:
            pick = np.random.default_rng(seed).choice(len(files), max_files, replace=False)
            files = [files[i] for i in sorted(pick)]
        from PIL import Image

        try:
            return np.stack([np.asarray(Image.open(f).convert("L").resize(
                (28, 28), Image.Resampling.BILINEAR)) for f in files])
        except OSError as e:
            raise MedbenchError(f"{path}: cannot read an image: {e}") from None
    if path.suffix == ".npz":
        with np.load(path) as z:
            key = next((k for k in ("train_images", "images") if k in z.files), None)
            if key is None:
                raise MedbenchError(f"{path} has no train_images or images array "
                                    f"(has: {', '.join(z.files) or 'none'})")
            x = z[key]
    elif path.suffix == ".npy":
        x = np.load(path)
    else:
        raise MedbenchError(f"{path}: give a folder of images, a .npz or a .npy")
    if x.dtype != np.uint8:
        raise MedbenchError(f"{path}: images must be uint8 (0-255) as in MedMNIST, got {x.dtype}")
    if x.ndim not in (3, 4):
        raise MedbenchError(f"{path}: images must be (N, H, W), (N, H, W, 3) or (N, D, H, W), "
                            f"got shape {x.shape}")
    return x


@dataclass
class Embedding:
    method: str
    dims: int
    n_samples: int
    distances: dict[str, float]   # task -> Fréchet distance


def _medmnist_size(images: np.ndarray, dims: int, side: int = 28) -> np.ndarray:
    """uint8 images no larger than MedMNIST's size (the held sets'): larger 2D images are
    resized to ``side`` x ``side`` (bilinear, as a folder of images is read); larger 3D
    volumes are refused. Smaller ones are left as they are (the encoder pools globally)."""
    spatial = images.shape[1:1 + dims]
    if max(spatial) <= side:
        return images
    if dims == 3:
        raise MedbenchError(f"3D volumes must be at most {side}x{side}x{side} (MedMNIST's "
                            f"size), got {'x'.join(map(str, spatial))}")
    from PIL import Image

    return np.stack([np.asarray(Image.fromarray(im).resize((side, side),
                                                           Image.Resampling.BILINEAR))
                     for im in images])


def embed(store, images: np.ndarray, samples: int = 2000, seed: int = 0) -> Embedding:
    """Fréchet distances of a new data set (uint8 images, MedMNIST layout) to every task of
    the newest method whose encoder the tables hold, on that method's encoder features."""
    import torch

    dims = 3 if images.ndim == 4 and images.shape[-1] != 3 else 2
    if len(images) < FEATURES + 1:
        raise MedbenchError(f"{len(images)} images: a full-rank covariance of {FEATURES} "
                            f"features needs at least {FEATURES + 1}")
    store.views("encoders", "task_features")
    row = store.fetchone("SELECT max(method) FROM encoders WHERE method LIKE ?",
                         [f"fid/medbench-cnn{dims}d-%"])
    if row is None or row[0] is None:
        raise MedbenchError(f"the tables hold no encoder for {dims}D data; run "
                            f"builders.task_distances --dims {dims}")
    method = row[0]
    net = _encoder(dims, {})
    state = net.trunk.state_dict()
    for name, shape, weights in store.fetchall(
            "SELECT tensor, shape, weights FROM encoders WHERE method = ?", [method]):
        state[name] = torch.tensor(weights, dtype=state[name].dtype).reshape(shape)
    net.trunk.load_state_dict(state)
    net.eval()
    from builders.data.medmnist import scale_images

    # Draw the sample first and bring only it to MedMNIST's size: a set of large images
    # would otherwise be converted to floats whole (200 images of 512 x 512 took 14 GB).
    pick = np.random.default_rng(seed).choice(len(images), min(samples, len(images)),
                                              replace=False)
    small = _medmnist_size(images[pick], dims)
    x = _to_gray(scale_images(small, dims))  # as the held sets' features were taken
    mu, cov = gaussian(_features(net, np.ascontiguousarray(x)))
    distances = {}
    for task, m, c in store.fetchall(
            "SELECT task, feature_mean, feature_cov FROM task_features WHERE method = ? "
            "ORDER BY task", [method]):
        m = np.asarray(m)
        distances[task] = frechet_gaussians(mu, cov, m, np.asarray(c).reshape(len(m), len(m)))
    return Embedding(method, dims, len(pick), distances)


def _job(job: Job, run_id: str, *, data_root, steps: int, samples: int):
    from builders.data import medmnist as medmnist_data

    tasks = [medmnist_data.load(t, data_root) for t in job.args["tasks"]]
    return distance_rows(tasks, job.args["dims"], steps, samples, run_id)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m builders.task_distances",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-root", required=True, help="folder of MedMNIST .npz files")
    ap.add_argument("--steps", type=int, default=1000, help="encoder training steps")
    ap.add_argument("--samples", type=int, default=2000, help="images per set (at most)")
    ap.add_argument("--dims", type=int, nargs="+", default=[2, 3], choices=(2, 3),
                    help="which dimensionalities to do")
    ap.add_argument("--threads", type=at_least(0), default=0)
    ap.add_argument("--work", default="runs/task_distances")
    add_backend_args(ap)
    args = ap.parse_args(argv)

    def build() -> dict:
        from medmnist import INFO

        if args.steps < 1 or args.samples < FEATURES + 1:
            raise MedbenchError(f"--steps must be >= 1 and --samples >= {FEATURES + 1} "
                                "(a full-rank covariance)")
        present = sorted(n for n in INFO if (Path(args.data_root) / f"{n}.npz").is_file())
        if not present:
            raise MedbenchError(f"no MedMNIST .npz file under {args.data_root}")
        groups = {d: [f"medmnist/{n}" for n in present if n.endswith("3d") == (d == 3)]
                  for d in (2, 3)}
        jobs = [Job(f"fid{d}d-" + "-".join(t.split("/")[1] for t in ts),
                    {"dims": d, "tasks": ts, "steps": args.steps, "samples": args.samples})
                for d, ts in groups.items() if len(ts) >= 2 and d in args.dims]
        if not jobs:
            raise MedbenchError("distances need two sets of the same dimensionality")
        if args.threads:
            import torch

            torch.set_num_threads(args.threads)
        work = WorkDir(Path(args.work) / f"v{VERSION}")
        counts = run_jobs(work, jobs, partial(_job, data_root=args.data_root,
                                              steps=args.steps, samples=args.samples),
                          builder=BUILDER, version=VERSION, device=device_name("cpu"),
                          backend=args.backend, workers=args.workers,
                          cpus_per_job=args.threads or 1)
        return {**counts, "work": str(work.root), "jobs": [j.key for j in jobs]}

    return finish("builders.task_distances", build)


if __name__ == "__main__":
    sys.exit(main())
