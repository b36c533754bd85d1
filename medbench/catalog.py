"""Names medbench knows before any table is built: tasks and search spaces, with their aliases.

The catalogue holds identities only (collection, name, dimensions, kind of label, modality),
so that ``--task hippocampus`` resolves and an unknown name gets the list of known ones even
when no builder has run yet. Every number (class counts, split sizes, checksums) comes from the
builders and lives in the ``tasks`` and ``spaces`` tables.
"""

from __future__ import annotations

from dataclasses import dataclass

from medbench.errors import UnknownNameError

__all__ = ["TaskInfo", "SpaceInfo", "TASKS", "SPACES", "resolve_task", "resolve_space",
           "superseded",
           "default_metric"]


@dataclass(frozen=True)
class TaskInfo:
    """Identity of a task: ``task`` is ``<collection>/<name>``; ``folder`` is the data's own
    name."""

    collection: str
    name: str
    dims: int
    label_kind: str
    modality: str
    folder: str

    @property
    def task(self) -> str:
        return f"{self.collection}/{self.name}"


@dataclass(frozen=True)
class SpaceInfo:
    """Identity of a search space; ``superseded_by`` names the space that replaces it (its
    rows stay queryable with ``--space``, but default queries leave them out); ``reference``
    marks a fixed reference network rather than a space to search: queries list it, but a
    search's default space and the best-of-the-spaces headline leave it out."""

    space: str
    description: str
    superseded_by: str | None = None
    reference: bool = False


def _msd(number: int, folder_name: str, modality: str) -> TaskInfo:
    return TaskInfo("msd", folder_name.lower(), 3, "segmentation", modality,
                    f"Task{number:02d}_{folder_name}")


def _mnist(name: str, dims: int, label_kind: str, modality: str) -> TaskInfo:
    return TaskInfo("medmnist", name, dims, label_kind, modality, name)


_ALL_TASKS = (
    # Medical Segmentation Decathlon (Antonelli et al., Nat. Commun. 2022), CC-BY-SA 4.0.
    _msd(1, "BrainTumour", "MRI"),
    _msd(2, "Heart", "MRI"),
    _msd(3, "Liver", "CT"),
    _msd(4, "Hippocampus", "MRI"),
    _msd(5, "Prostate", "MRI"),
    _msd(6, "Lung", "CT"),
    _msd(7, "Pancreas", "CT"),
    _msd(8, "HepaticVessel", "CT"),
    _msd(9, "Spleen", "CT"),
    _msd(10, "Colon", "CT"),
    # MedMNIST v2 (Yang et al., Sci. Data 2023): 12 2D and 6 3D sets.
    _mnist("pathmnist", 2, "multi-class", "pathology"),
    _mnist("chestmnist", 2, "multi-label", "X-ray"),
    _mnist("dermamnist", 2, "multi-class", "dermatoscopy"),
    _mnist("octmnist", 2, "multi-class", "OCT"),
    _mnist("pneumoniamnist", 2, "binary-class", "X-ray"),
    _mnist("retinamnist", 2, "ordinal-regression", "fundus"),
    _mnist("breastmnist", 2, "binary-class", "ultrasound"),
    _mnist("bloodmnist", 2, "multi-class", "microscopy"),
    _mnist("tissuemnist", 2, "multi-class", "microscopy"),
    _mnist("organamnist", 2, "multi-class", "CT"),
    _mnist("organcmnist", 2, "multi-class", "CT"),
    _mnist("organsmnist", 2, "multi-class", "CT"),
    _mnist("organmnist3d", 3, "multi-class", "CT"),
    _mnist("nodulemnist3d", 3, "binary-class", "CT"),
    _mnist("adrenalmnist3d", 3, "binary-class", "CT"),
    _mnist("fracturemnist3d", 3, "multi-class", "CT"),
    _mnist("vesselmnist3d", 3, "binary-class", "MRA"),
    _mnist("synapsemnist3d", 3, "binary-class", "electron microscopy"),
)

TASKS: dict[str, TaskInfo] = {t.task: t for t in _ALL_TASKS}

SPACES: dict[str, SpaceInfo] = {s.space: s for s in (
    SpaceInfo("unet3d", "U-Nets from MONAI blocks: levels, and per level channels, kernel, "
                        "blocks and residual-or-plain (MED-NAS-Bench); version 1, superseded: "
                        "its instance norm has no scale and shift",
              superseded_by="unet3d-v2"),
    SpaceInfo("unet3d-v2", "unet3d version 2: affine instance norm everywhere, and one or two "
                           "convolutions per block, down to U-Nets for edge devices"),
    SpaceInfo("dynunet", "MONAI DynUNet configured nnU-Net-style: the reference for unet3d",
              reference=True),
    SpaceInfo("mednns", "OFA-style ResNets with elastic depth, expand ratio and width (MedNNS)"),
    SpaceInfo("mstf", "DARTS-like cells with multiscale pooling reduction cells (MSTF-NAS)"),
)}


def _norm(name: str) -> str:
    return name.strip().lower().replace("-", "_").replace(" ", "_")


def _aliases(info: TaskInfo) -> set[str]:
    names = {info.task, f"{info.collection}_{info.name}", info.name, info.folder,
             f"{info.collection}/{info.folder}"}
    return {_norm(n) for n in names}


def resolve_task(name: str, extra: tuple[str, ...] = ()) -> str:
    """The canonical task id for ``name`` or one of its aliases.

    Args:
        name: ``msd/hippocampus``, ``hippocampus``, ``Task04_Hippocampus``, ``msd_hippocampus``, ...
        extra: task ids found in the tables but not in the catalogue (resolved exactly or by
            their part after the slash).

    Raises:
        UnknownNameError: listing the known tasks.
    """
    key = _norm(name)
    for info in TASKS.values():
        if key in _aliases(info):
            return info.task
    for task in extra:
        if key in {_norm(task), _norm(task.replace("/", "_")), _norm(task.split("/")[-1])}:
            return task
    known = sorted(set(TASKS) | set(extra))
    raise UnknownNameError("task", name, known)


def resolve_space(name: str, extra: tuple[str, ...] = ()) -> str:
    """The canonical space name (case-insensitive); raises UnknownNameError listing the known
    ones."""
    key = _norm(name)
    for space in (*SPACES, *extra):
        if _norm(space) == key:
            return space
    raise UnknownNameError("space", name, sorted(set(SPACES) | set(extra)))


def superseded() -> dict[str, str]:
    """Space -> the newer version that replaces it (default queries leave the older out
    where the newer has results)."""
    return {s.space: s.superseded_by for s in SPACES.values() if s.superseded_by}


def references() -> set[str]:
    """Spaces that hold a fixed reference network, not architectures to search over."""
    return {s.space for s in SPACES.values() if s.reference}


def default_metric(task: str) -> str:
    """Primary metric of a catalogued task: Dice for segmentation, accuracy otherwise."""
    info = TASKS.get(task)
    if info is None or info.label_kind == "segmentation":
        return "dice"
    return "acc"
