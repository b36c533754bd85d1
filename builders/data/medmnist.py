"""MedMNIST data for the builders: the official ``.npz`` files, checked, as arrays.

``load("medmnist/breastmnist", data_root)`` reads ``<data_root>/breastmnist.npz`` (28-pixel
files, as the ``medmnist`` package downloads them) and checks its MD5 against the
``medmnist`` package's ``INFO``; without ``data_root`` it downloads with ``medmnist``. The
official train/val/test splits are used as they are.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medbench import catalog
from medbench.catalog import default_metric
from medbench.errors import MedbenchError

__all__ = ["MedMNISTTask", "load"]


@dataclass
class MedMNISTTask:
    task: str                 # medbench id, e.g. medmnist/breastmnist
    info: dict                # medmnist.INFO[name]
    arrays: dict              # train_images, train_labels, val_..., test_...
    sha256: str

    @property
    def name(self) -> str:
        return self.task.split("/", 1)[1]

    @property
    def dims(self) -> int:
        return 3 if self.name.endswith("3d") else 2

    @property
    def n_channels(self) -> int:
        return int(self.info["n_channels"])

    @property
    def n_classes(self) -> int:
        return len(self.info["label"])

    @property
    def label_kind(self) -> str:
        """The tasks table's label kind: medmnist's task, "multi-label, binary-class" as
        "multi-label"."""
        return "multi-label" if self.multi_label else self.info["task"]

    @property
    def multi_label(self) -> bool:
        return self.info["task"] == "multi-label, binary-class"

    def images(self, part: str) -> np.ndarray:
        """Images as float32 (N, channels, *spatial) scaled to [-1, 1]."""
        return scale_images(self.arrays[f"{part}_images"], self.dims)

    def labels(self, part: str) -> np.ndarray:
        y = self.arrays[f"{part}_labels"]
        return y.astype(np.float32) if self.multi_label else y.reshape(-1).astype(np.int64)

    def batch(self, size: int, seed: int):
        """A seeded training batch (torch tensors), with every class present when possible
        (epe_nas needs several samples per class): a class-stratified draw."""
        import torch

        rng = np.random.default_rng(seed)
        y = self.arrays["train_labels"]
        if self.multi_label:
            idx = rng.choice(len(y), size, replace=False)
        else:
            flat = y.reshape(-1)
            classes = np.unique(flat)
            per = [rng.permutation(np.flatnonzero(flat == c)) for c in classes]
            idx = []
            while len(idx) < size and any(len(p) for p in per):
                for k, p in enumerate(per):
                    if len(p) and len(idx) < size:
                        idx.append(int(p[0]))
                        per[k] = p[1:]
            idx = np.array(idx)
        x = torch.from_numpy(self.images("train")[idx])
        return x, torch.from_numpy(self.labels("train")[idx])

    def tasks_row(self, run_id: str) -> dict:
        n = {p: len(self.arrays[f"{p}_labels"]) for p in ("train", "val", "test")}
        size = self.arrays["train_images"].shape[1]
        return {
            "task": self.task, "collection": "medmnist", "name": self.name,
            "modality": catalog.TASKS[self.task].modality if self.task in catalog.TASKS
            else None,
            "dims": self.dims, "label_kind": self.label_kind, "n_classes": self.n_classes,
            "class_names": [self.info["label"][k] for k in sorted(self.info["label"], key=int)],
            "input_shape": [self.n_channels, *([size] * self.dims)],
            "n_train": n["train"], "n_val": n["val"], "n_test": n["test"],
            "metric": default_metric(self.task),
            "split": "official MedMNIST train/val/test split",
            "split_sha256": None, "data_sha256": self.sha256,
            "licence": self.info.get("license"),
            "source": f"MedMNIST v2 (Yang et al., Sci. Data 2023), {self.name}.npz",
            "run_id": run_id,
        }


def scale_images(images: np.ndarray, dims: int) -> np.ndarray:
    """uint8 images in MedMNIST's layout as float32 (N, channels, *spatial) in [-1, 1]."""
    x = images.astype(np.float32) / 255.0
    if x.ndim == 3 + (dims == 3):  # no channel axis: grayscale
        x = x[:, None]
    else:  # channels last (RGB)
        x = np.moveaxis(x, -1, 1)
    return (x - 0.5) / 0.5


def load(task: str, data_root: str | Path | None = None) -> MedMNISTTask:
    """Read and check one MedMNIST set; ``task`` is ``medmnist/<name>``."""
    try:
        from medmnist import INFO
    except ImportError:
        raise MedbenchError("MedMNIST tasks need the medmnist package: "
                            "pip install -e '.[build]'") from None
    name = task.split("/", 1)[-1]
    if name not in INFO:
        raise MedbenchError(f"{task} is not a MedMNIST set; sets: {', '.join(INFO)}")
    info = INFO[name]
    if data_root is None:
        import medmnist

        root = Path.home() / ".medmnist"
        root.mkdir(exist_ok=True)
        getattr(medmnist, info["python_class"])(split="train", download=True, root=str(root))
        path = root / f"{name}.npz"
    else:
        path = Path(data_root) / f"{name}.npz"
    if not path.is_file():
        raise MedbenchError(f"no {path.name} under {path.parent} (download it with the "
                            "medmnist package, or leave out --data-root)")
    raw = path.read_bytes()
    md5 = hashlib.md5(raw).hexdigest()
    if md5 != info["MD5"]:
        raise MedbenchError(f"{path} has MD5 {md5}, medmnist says {info['MD5']}: a damaged or "
                            "different file")
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    return MedMNISTTask(f"medmnist/{name}", info, arrays, hashlib.sha256(raw).hexdigest())
