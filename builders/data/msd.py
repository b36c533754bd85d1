"""Medical Segmentation Decathlon tasks: data, checksums, the fixed split, MONAI transforms.

Any MSD task is read from its ``dataset.json`` (so tasks downloaded with MONAI's
``DecathlonDataset`` work the same way). MSD test labels are not public, so the labelled cases
are split once, seeded, 60 / 20 / 20 % into train / val / test, and the split is committed
under ``builders/splits/`` and recorded in the ``tasks`` table with its sha256.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from medbench.catalog import TASKS
from medbench.errors import MedbenchError
from medbench.manifest import atomic_write_bytes, sha256_file

__all__ = ["MsdTask", "load_task", "make_split", "SPLIT_FRACTIONS", "SPLIT_SEED", "SPLITS_DIR",
           "SPATIAL"]

#: The size MSD hippocampus volumes are zero-padded to (every case fits): the networks' input.
SPATIAL = (48, 64, 48)

SPLIT_FRACTIONS = (0.6, 0.2, 0.2)
SPLIT_SEED = 0
SPLITS_DIR = Path(__file__).resolve().parent.parent / "splits"


@dataclass
class MsdTask:
    """One MSD task on disk, checked and split."""

    task: str  # medbench id, e.g. msd/hippocampus
    root: Path
    meta: dict
    split: dict  # {"train": [case ids], "val": [...], "test": [...]}
    split_sha256: str
    data_sha256: str

    @property
    def class_names(self) -> list[str]:
        labels = self.meta["labels"]
        return [labels[str(i)] for i in range(len(labels))]

    @property
    def n_channels(self) -> int:
        return len(self.meta["modality"])

    def files(self, part: str) -> list[dict]:
        """MONAI-style dicts ``{"image", "label", "case"}`` of one split part."""
        by_case = {_case(e["image"]): e for e in self.meta["training"]}
        return [{"image": str(self.root / by_case[c]["image"]),
                 "label": str(self.root / by_case[c]["label"]), "case": c}
                for c in self.split[part]]

    def tasks_row(self, input_shape: list[int], run_id: str) -> dict:
        info = TASKS.get(self.task)
        return {
            "task": self.task, "collection": "msd", "name": self.task.split("/")[1],
            "modality": ", ".join(self.meta["modality"].values()), "dims": 3,
            "label_kind": "segmentation", "n_classes": len(self.class_names),
            "class_names": self.class_names, "input_shape": input_shape,
            "n_train": len(self.split["train"]), "n_val": len(self.split["val"]),
            "n_test": len(self.split["test"]), "metric": "dice",
            "split": f"labelled cases split {'/'.join(str(int(f * 100)) for f in SPLIT_FRACTIONS)}"
                     f" % train/val/test with numpy seed {SPLIT_SEED} "
                     f"(builders/splits/{self.task.replace('/', '_')}.json)",
            "split_sha256": self.split_sha256, "data_sha256": self.data_sha256,
            "licence": self.meta.get("licence"),
            "source": "Medical Segmentation Decathlon (Antonelli et al., Nat. Commun. 2022), "
                      f"{info.folder if info else self.root.name}; "
                      f"reference: {self.meta.get('reference', '').strip()}",
            "run_id": run_id,
        }


def _case(path: str) -> str:
    return Path(path).name.split(".")[0]


def verify_checksums(root: Path, sums: Path) -> str:
    """Check every file of the task folder listed in ``sums``; returns the list's own sha256.

    Raises:
        MedbenchError: naming the first file that is missing or differs.
    """
    prefix = root.name + "/"
    lines = sorted(ln for ln in sums.read_text().splitlines() if f"  {prefix}" in ln)
    if not lines:
        raise MedbenchError(f"{sums} lists no file of {root.name}")
    for line in lines:
        digest, rel = line.split("  ", 1)
        path = root.parent / rel
        if not path.is_file():
            raise MedbenchError(f"{path} is listed in {sums.name} but missing")
        if sha256_file(path) != digest:
            raise MedbenchError(f"{path} does not match its sha256 in {sums.name}")
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def make_split(cases: list[str], seed: int = SPLIT_SEED,
               fractions: tuple[float, float, float] = SPLIT_FRACTIONS) -> dict:
    """A seeded train/val/test split of case ids (sorted within each part)."""
    import numpy as np

    cases = sorted(cases)
    order = np.random.default_rng(seed).permutation(len(cases))
    n_train = round(fractions[0] * len(cases))
    n_val = round(fractions[1] * len(cases))
    parts = {"train": order[:n_train], "val": order[n_train:n_train + n_val],
             "test": order[n_train + n_val:]}
    return {k: sorted(cases[i] for i in v) for k, v in parts.items()}


def load_task(task: str, data_root: str | Path | None, cache_dir: str | Path = "runs/data",
              splits_dir: Path = SPLITS_DIR) -> MsdTask:
    """Find, verify and split an MSD task.

    Args:
        task: medbench task id, e.g. ``msd/hippocampus``.
        data_root: folder holding ``TaskXX_Name/`` (and ``SHA256SUMS``); None downloads the
            task with MONAI's ``DecathlonDataset`` into ``cache_dir``.
        splits_dir: where the committed split files live.

    Raises:
        MedbenchError: unknown task, missing data, checksum mismatch, or a committed split
            that no longer matches the data's cases.
    """
    info = TASKS.get(task)
    if info is None or info.collection != "msd":
        raise MedbenchError(f"{task} is not an MSD task; known: "
                            + ", ".join(t for t, i in TASKS.items() if i.collection == "msd"))
    if data_root is None:
        from monai.apps import DecathlonDataset

        DecathlonDataset(str(cache_dir), info.folder, "training", download=True, cache_rate=0)
        data_root = cache_dir
    root = Path(data_root) / info.folder
    if not (root / "dataset.json").is_file():
        raise MedbenchError(f"no {info.folder}/dataset.json under {data_root}")
    meta = json.loads((root / "dataset.json").read_text())
    sums = Path(data_root) / "SHA256SUMS"
    data_sha = verify_checksums(root, sums) if sums.is_file() else \
        hashlib.sha256((root / "dataset.json").read_bytes()).hexdigest()
    cases = [_case(e["image"]) for e in meta["training"]]
    split_file = splits_dir / f"{task.replace('/', '_')}.json"
    split = make_split(cases)
    if split_file.exists():
        committed = json.loads(split_file.read_text())
        if sorted(sum(committed.values(), [])) != sorted(cases):
            raise MedbenchError(f"{split_file} does not cover the cases of {root}")
        split = committed
    else:
        atomic_write_bytes(split_file, (json.dumps(split, indent=1) + "\n").encode())
    return MsdTask(task, root, meta, split, sha256_file(split_file), data_sha)


def transforms(spatial_size: tuple[int, int, int], train: bool):
    """MONAI transforms: load, channel first, z-normalise non-zero voxels, pad; a left-right
    flip and intensity jitter for training."""
    from monai import transforms as T

    keys = ["image", "label"]
    pre = [T.LoadImaged(keys, image_only=True), T.EnsureChannelFirstd(keys),
           T.EnsureTyped(keys, dtype="float32"),
           T.NormalizeIntensityd("image", nonzero=True, channel_wise=True),
           T.SpatialPadd(keys, spatial_size=spatial_size)]
    # Plain tensors out: a MetaTensor carries its metadata through every op of the network,
    # its loss and its metrics (nothing downstream reads it); the values are the same.
    plain = [T.EnsureTyped(keys, track_meta=False)]
    if not train:
        return T.Compose(pre + plain)
    # Flips along axis 0 only: on MSD hippocampus axis 1 runs anterior-posterior and the two
    # labels are its two ends (their centroids lie 16-20 voxels apart along it), so flipping
    # it (or the vertical axis 2) would move a label's part to where the other one lies.
    return T.Compose(pre + [
        T.RandFlipd(keys, prob=0.5, spatial_axis=0),
        T.RandScaleIntensityd("image", factors=0.1, prob=0.5),
        T.RandShiftIntensityd("image", offsets=0.1, prob=0.5),
    ] + plain)
