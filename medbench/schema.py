"""The table contract: every medbench table, its columns, types, units, keys and allowed values.

This module is the single place where the layout of the released Parquet tables is defined.
Builders write with :func:`arrow_schema`, the store creates its DuckDB views from
:data:`TABLES`, and ``medbench validate`` checks files against it, so they cannot drift apart.

Types are declared as DuckDB SQL type names so that the query path never has to import
pyarrow; :func:`arrow_schema` maps them to Arrow types on demand.

Conventions:
    * long format, one fact per row, key columns first;
    * units are part of column names (``latency_ms``, ``energy_mj``, ``train_seconds``);
    * missing is NULL, never a made-up fill;
    * every fact row carries ``run_id``, a reference to the ``runs`` row of the job that made it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "SCHEMA_VERSION",
    "Column",
    "Reference",
    "Table",
    "TABLES",
    "TABLE_NAMES",
    "get_table",
    "arrow_type",
    "arrow_schema",
    "partition_dir",
    "partition_segment",
]

#: Version of the table contract. Bump the minor part for added nullable columns or tables,
#: the major part for anything that changes the meaning or type of a released column.
SCHEMA_VERSION = "1.4"


@dataclass(frozen=True)
class Column:
    """One column of a table.

    Args:
        name: snake_case column name; units are suffixes (``_ms``, ``_mj``, ``_seconds``, ``_mb``).
        type: DuckDB SQL type name (``VARCHAR``, ``BIGINT``, ``INTEGER``, ``DOUBLE``, ``BOOLEAN``,
            ``TIMESTAMP`` (UTC), or a list such as ``DOUBLE[]``).
        description: one line saying what the value is and how it was obtained.
        unit: physical unit, if any.
        nullable: whether NULL is allowed (key columns never are).
        allowed: the closed set of allowed values, if any.
        min: inclusive lower bound for numeric values (list elements included).
        max: inclusive upper bound for numeric values (list elements included).
        fill: a later run may fill this column into released rows where it is NULL (energy
            modelled after the latency was measured); ``builders.release`` changes no other
            value of a released row.
    """

    name: str
    type: str
    description: str
    unit: str | None = None
    nullable: bool = True
    allowed: tuple[str | int, ...] | None = None
    min: float | None = None
    max: float | None = None
    fill: bool = False


@dataclass(frozen=True)
class Reference:
    """A foreign key: ``columns`` of this table must appear as ``target_columns`` of ``table``."""

    columns: tuple[str, ...]
    table: str
    target_columns: tuple[str, ...]


@dataclass(frozen=True)
class Table:
    """A released table.

    Args:
        name: table name; also its folder under ``tables/`` and its DuckDB view name.
        description: what one row means.
        columns: the columns, key columns first.
        key: columns that identify a row; unique and never NULL.
        partition_by: columns whose values name the sub-folders of a table's files
            (``space=unet3d/task=msd%2Fhippocampus``); the values are also stored in the files.
        references: foreign keys into other tables.
    """

    name: str
    description: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    partition_by: tuple[str, ...] = ()
    references: tuple[Reference, ...] = field(default_factory=tuple)

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"table {self.name} has no column {name!r}")


# -- shared column definitions ---------------------------------------------------------------

_RUN_ID = Column("run_id", "VARCHAR", "id of the runs row of the job that produced this row",
                 nullable=False)
_SPACE = Column("space", "VARCHAR", "search space name, e.g. unet3d, mednns, mstf", nullable=False)
_ARCH_ID = Column("arch_id", "VARCHAR",
                  "canonical architecture id, a pure function of the architecture's choices",
                  nullable=False)
_TASK = Column("task", "VARCHAR", "task id <collection>/<name>, e.g. msd/hippocampus",
               nullable=False)
_METHOD = Column("method", "VARCHAR",
                 "how the network was trained: standalone (own weights) or supernet "
                 "(weights inherited from a weight-sharing supernet)",
                 nullable=False, allowed=("standalone", "supernet"))
_SEED = Column("seed", "INTEGER", "seed of initialisation, sampling and augmentation",
               nullable=False, min=0)


def _prob(name: str, what: str) -> Column:
    return Column(name, "DOUBLE", what, min=0.0, max=1.0)


def _per_class(name: str, what: str, lo: float = 0.0, hi: float | None = 1.0,
               unit: str | None = None) -> Column:
    return Column(name, "DOUBLE[]", what + ", one value per foreground class in tasks.class_names "
                  "order", unit=unit, min=lo, max=hi)


_ARCH_REF = Reference(("space", "arch_id"), "architectures", ("space", "arch_id"))
_TASK_REF = Reference(("task",), "tasks", ("task",))
_RUN_REF = Reference(("run_id",), "runs", ("run_id",))


def _eval_metrics(split: str) -> tuple[Column, ...]:
    s = split
    return (
        _prob(f"{s}_dice", f"{s} Dice, mean over foreground classes and cases"),
        _prob(f"{s}_jaccard", f"{s} Jaccard (IoU), mean over foreground classes and cases"),
        Column(f"{s}_hd95_mm", "DOUBLE",
               f"{s} 95th-percentile Hausdorff distance, mean over foreground classes and cases",
               unit="mm", min=0.0),
        _per_class(f"{s}_dice_per_class", f"{s} Dice per class"),
        _per_class(f"{s}_jaccard_per_class", f"{s} Jaccard per class"),
        _per_class(f"{s}_hd95_mm_per_class", f"{s} HD95 per class", hi=None, unit="mm"),
        _prob(f"{s}_acc", f"{s} accuracy (medmnist Evaluator)"),
        _prob(f"{s}_auc", f"{s} area under the ROC curve (medmnist Evaluator)"),
        Column(f"{s}_loss", "DOUBLE", f"{s} loss of the training objective", min=0.0),
    )


TABLES: dict[str, Table] = {}


def _register(t: Table) -> Table:
    for k in t.key:
        if t.column(k).nullable:
            raise ValueError(f"schema error: key column {t.name}.{k} is nullable")
    TABLES[t.name] = t
    return t


_register(Table(
    name="tasks",
    description="one row per task: data set, split and primary metric",
    key=("task",),
    columns=(
        _TASK,
        Column("collection", "VARCHAR", "data collection, e.g. msd, medmnist", nullable=False),
        Column("name", "VARCHAR", "task name inside its collection", nullable=False),
        Column("modality", "VARCHAR", "imaging modality, e.g. MRI, CT, X-ray, fundus"),
        Column("dims", "INTEGER", "spatial dimensions of the input", nullable=False,
               allowed=(2, 3)),
        Column("label_kind", "VARCHAR", "kind of label", nullable=False,
               allowed=("segmentation", "binary-class", "multi-class", "multi-label",
                        "ordinal-regression")),
        Column("n_classes", "INTEGER", "number of classes (segmentation: including background)",
               nullable=False, min=1),
        Column("class_names", "VARCHAR[]", "class names in label order"),
        Column("input_shape", "INTEGER[]",
               "network input shape as channels followed by spatial sizes"),
        Column("n_train", "INTEGER", "cases in the train split", min=0),
        Column("n_val", "INTEGER", "cases in the validation split", min=0),
        Column("n_test", "INTEGER", "cases in the test split", min=0),
        Column("metric", "VARCHAR", "primary metric; searches see val_<metric> only",
               nullable=False, allowed=("dice", "acc", "auc")),
        Column("split", "VARCHAR", "how the split was made (official, or seeded and by whom)"),
        Column("split_sha256", "VARCHAR", "sha256 of the committed split file, if any"),
        Column("data_sha256", "VARCHAR", "sha256 of the data files' checksum list"),
        Column("licence", "VARCHAR", "licence of the source data"),
        Column("source", "VARCHAR", "where the data comes from (citation or URL)"),
        _RUN_ID,
    ),
    references=(_RUN_REF,),
))

_register(Table(
    name="spaces",
    description="one row per search space",
    key=("space",),
    columns=(
        _SPACE,
        Column("description", "VARCHAR", "what the space contains"),
        Column("n_archs", "BIGINT", "number of architectures in the space", min=1),
        Column("encoding", "VARCHAR", "how arch_id encodes the choices"),
        Column("builder", "VARCHAR", "module that enumerates and builds the space"),
        _RUN_ID,
    ),
    references=(_RUN_REF,),
))

_register(Table(
    name="architectures",
    description="one row per architecture of a space that has any result",
    key=("space", "arch_id"),
    partition_by=("space",),
    columns=(
        _SPACE,
        _ARCH_ID,
        Column("arch_index", "BIGINT", "position in the space's enumeration (dense arrays)",
               nullable=False, min=0),
        Column("config", "VARCHAR", "the architecture's choices as canonical JSON",
               nullable=False),
        _RUN_ID,
    ),
    references=(_RUN_REF,),
))

_register(Table(
    name="evaluations",
    description="final metrics of one architecture trained once (one seed) on one task",
    key=("space", "arch_id", "task", "method", "seed"),
    partition_by=("space", "task"),
    columns=(
        _SPACE, _ARCH_ID, _TASK, _METHOD, _SEED,
        Column("epochs", "INTEGER", "training epochs (supernet: epochs of the supernet)", min=0),
        *_eval_metrics("val"),
        *_eval_metrics("test"),
        Column("train_seconds", "DOUBLE", "wall-clock training time of this job", unit="s",
               min=0.0),
        Column("device", "VARCHAR", "device the job ran on (devices.device or a description)"),
        _RUN_ID,
    ),
    references=(_ARCH_REF, _TASK_REF, _RUN_REF),
))

_register(Table(
    name="curves",
    description="per-epoch learning curve of one training job",
    key=("space", "arch_id", "task", "method", "seed", "epoch"),
    partition_by=("space", "task"),
    columns=(
        _SPACE, _ARCH_ID, _TASK, _METHOD, _SEED,
        Column("epoch", "INTEGER", "epoch number, starting at 1", nullable=False, min=1),
        Column("train_loss", "DOUBLE", "mean training loss over the epoch", min=0.0),
        _prob("val_dice", "validation Dice after the epoch"),
        _prob("val_acc", "validation accuracy after the epoch"),
        _prob("val_auc", "validation AUC after the epoch"),
        Column("elapsed_seconds", "DOUBLE",
               "training seconds from the start of the job to the end of this epoch "
               "(the simulated clock's source)", unit="s", min=0.0),
        _RUN_ID,
    ),
    references=(_ARCH_REF, _TASK_REF, _RUN_REF),
))

_register(Table(
    name="costs",
    description="size and compute of one architecture at one task's input shape",
    key=("space", "arch_id", "task"),
    partition_by=("space", "task"),
    columns=(
        _SPACE, _ARCH_ID, _TASK,
        Column("params", "BIGINT", "trainable parameters", min=0),
        Column("macs", "BIGINT", "multiply-accumulates of one forward pass at batch 1", min=0),
        Column("activation_mb", "DOUBLE", "peak activation memory of one forward pass at batch 1",
               unit="MB", min=0.0),
        Column("input_shape", "INTEGER[]", "input shape used: channels followed by spatial sizes"),
        _RUN_ID,
    ),
    references=(_ARCH_REF, _TASK_REF, _RUN_REF),
))

_register(Table(
    name="hardware",
    description="latency and energy of one architecture on one device and runtime",
    key=("space", "arch_id", "task", "device", "runtime", "threads", "batch"),
    partition_by=("space", "task", "device"),
    columns=(
        _SPACE, _ARCH_ID, _TASK,
        Column("device", "VARCHAR", "device id (devices.device)", nullable=False),
        Column("runtime", "VARCHAR", "inference runtime, e.g. torch, onnxruntime",
               nullable=False),
        Column("threads", "INTEGER", "intra-op threads (0 = all cores)", nullable=False, min=0),
        Column("batch", "INTEGER", "batch size", nullable=False, min=1),
        Column("latency_ms", "DOUBLE", "median latency of one batch", unit="ms", min=0.0),
        Column("latency_p10_ms", "DOUBLE", "10th percentile latency", unit="ms", min=0.0),
        Column("latency_p90_ms", "DOUBLE", "90th percentile latency", unit="ms", min=0.0),
        Column("n_repeats", "INTEGER", "timed repeats behind the percentiles", min=0),
        Column("latency_method", "VARCHAR",
               "measured on the device, or predicted by a per-block lookup table",
               allowed=("measured", "lut")),
        Column("energy_mj", "DOUBLE", "energy of one batch: power_w x latency_ms", unit="mJ",
               min=0.0, fill=True),
        Column("energy_method", "VARCHAR",
               "nvml / rapl: the device's energy counter (measured); tdp_model: the TDP share "
               "of the cores used (estimated, see devices.tdp_source)",
               allowed=("nvml", "rapl", "tdp_model"), fill=True),
        Column("power_w", "DOUBLE", "mean power behind energy_mj: measured (nvml, rapl) or "
               "the model's (tdp_model)", unit="W", min=0.0, fill=True),
        Column("peak_mem_mb", "DOUBLE", "peak memory during inference", unit="MB", min=0.0),
        _RUN_ID,
        Column("energy_run_id", "VARCHAR", "the runs row of the job that filled energy_mj in "
               "later (NULL: run_id's job measured it, or none did)", fill=True),
    ),
    references=(_ARCH_REF, _TASK_REF, Reference(("device",), "devices", ("device",)), _RUN_REF,
                Reference(("energy_run_id",), "runs", ("run_id",))),
))

_register(Table(
    name="latency_lut",
    description="latency of one block of a space, measured alone (per-block lookup table)",
    key=("space", "task", "device", "runtime", "threads", "block"),
    partition_by=("space", "task", "device"),
    columns=(
        _SPACE, _TASK,
        Column("device", "VARCHAR", "device id (devices.device)", nullable=False),
        Column("runtime", "VARCHAR", "inference runtime", nullable=False),
        Column("threads", "INTEGER", "intra-op threads (0 = all cores)", nullable=False, min=0),
        Column("block", "VARCHAR", "the block's key, e.g. enc|l1|s1|i8|c16|k3|b1|r0; "
               "'overhead' is the per-network constant fitted on measured networks",
               nullable=False),
        Column("latency_ms", "DOUBLE", "median latency of the block alone at batch 1",
               unit="ms"),
        Column("n_repeats", "INTEGER", "timed repeats behind the median", min=0),
        _RUN_ID,
    ),
    references=(_TASK_REF, Reference(("device",), "devices", ("device",)), _RUN_REF),
))

_register(Table(
    name="devices",
    description="one row per measured device, probed from the system",
    key=("device",),
    columns=(
        Column("device", "VARCHAR", "device id", nullable=False),
        Column("kind", "VARCHAR", "cpu, gpu or edge board", allowed=("cpu", "gpu", "edge")),
        Column("cpu_model", "VARCHAR", "CPU model name"),
        Column("cpu_cores", "INTEGER", "logical CPU cores visible to the process", min=1),
        Column("memory_gb", "DOUBLE", "system memory", unit="GB", min=0.0),
        Column("gpu_model", "VARCHAR", "GPU model name, if any"),
        Column("cpu_signature", "VARCHAR", "x86 family/model/stepping or ARM implementer/part/"
               "variant/revision from /proc/cpuinfo (NULL: not recorded, before schema 1.3)"),
        Column("cpu_isa", "VARCHAR", "vector instruction sets the CPU reports, fastest first "
               "(e.g. 'avx512f avx2 avx sse4_2'; NULL: not recorded, before schema 1.3)"),
        Column("cache_kb", "BIGINT", "the 'cache size' /proc/cpuinfo reports (L2 per core on "
               "AMD, last level on Intel; NULL: not reported, or before schema 1.3)",
               unit="KB", min=0),
        Column("tdp_w", "DOUBLE", "thermal design power of the CPU package the tdp_model "
               "shares out (NULL: a GPU, or a CPU no reference part covers and no one gave "
               "--tdp-watts for: its rows have no tdp_model energy)", unit="W", min=0.0,
               fill=True),
        Column("tdp_cores", "INTEGER", "physical cores that tdp_w is shared among", min=1,
               fill=True),
        Column("tdp_source", "VARCHAR", "where tdp_w and tdp_cores come from: the reference "
               "CPU and its vendor specification, or --tdp-watts", fill=True),
        Column("os", "VARCHAR", "operating system and kernel"),
        Column("python_version", "VARCHAR", "Python version"),
        Column("torch_version", "VARCHAR", "PyTorch version"),
        Column("onnxruntime_version", "VARCHAR", "ONNX Runtime version"),
        Column("probed_at", "TIMESTAMP", "when the device was probed (UTC)"),
        _RUN_ID,
    ),
    references=(_RUN_REF,),
))

_register(Table(
    name="proxies",
    description="zero-cost proxy score of one untrained architecture on one task",
    key=("space", "arch_id", "task", "proxy", "seed"),
    partition_by=("space", "task"),
    columns=(
        _SPACE, _ARCH_ID, _TASK,
        Column("proxy", "VARCHAR", "proxy name, e.g. synflow, jacov, nwot", nullable=False),
        _SEED,
        Column("score", "DOUBLE", "proxy score (NULL when the proxy failed)"),
        Column("seconds", "DOUBLE", "time to compute the score", unit="s", min=0.0),
        Column("batch_size", "INTEGER", "inputs in the scoring batch", min=1),
        _RUN_ID,
    ),
    references=(_ARCH_REF, _TASK_REF, _RUN_REF),
))

_register(Table(
    name="task_distances",
    description="distance between two tasks' data distributions",
    key=("task_a", "task_b", "method"),
    columns=(
        Column("task_a", "VARCHAR", "first task", nullable=False),
        Column("task_b", "VARCHAR", "second task (or a named pooled reference)", nullable=False),
        Column("method", "VARCHAR", "distance and feature extractor, e.g. fid/<encoder>",
               nullable=False),
        Column("distance", "DOUBLE", "the distance", min=0.0),
        Column("n_samples_a", "INTEGER", "samples drawn from task_a", min=1),
        Column("n_samples_b", "INTEGER", "samples drawn from task_b", min=1),
        _RUN_ID,
    ),
    references=(Reference(("task_a",), "tasks", ("task",)), _RUN_REF),
))

_register(Table(
    name="task_features",
    description="Gaussian fitted to one task's encoder features, as its task_distances used "
                "them (so a new data set's distance to it needs only its own features)",
    key=("task", "method"),
    columns=(
        _TASK,
        Column("method", "VARCHAR", "the task_distances method (names the encoder)",
               nullable=False),
        Column("n_samples", "INTEGER", "images the features came from", min=1),
        Column("feature_mean", "DOUBLE[]", "mean of the features"),
        Column("feature_cov", "DOUBLE[]", "covariance of the features, row-major (n x n)"),
        _RUN_ID,
    ),
    references=(_TASK_REF, _RUN_REF),
))

_register(Table(
    name="encoders",
    description="one tensor of the trained feature encoder a task_distances method names",
    key=("method", "tensor"),
    columns=(
        Column("method", "VARCHAR", "the task_distances method whose features it gives",
               nullable=False),
        Column("tensor", "VARCHAR", "the tensor's name in the encoder's PyTorch state_dict",
               nullable=False),
        Column("shape", "INTEGER[]", "the tensor's shape", min=0),
        Column("weights", "DOUBLE[]", "the tensor's values, row-major (float32, exact)"),
        _RUN_ID,
    ),
    references=(_RUN_REF,),
))

_register(Table(
    name="runs",
    description="one row per builder job, failures included",
    key=("run_id",),
    columns=(
        _RUN_ID,
        Column("builder", "VARCHAR", "builder module, e.g. builders.unet3d", nullable=False),
        Column("builder_version", "VARCHAR", "version of the builder", nullable=False),
        Column("git_commit", "VARCHAR", "commit of the repository the builder ran from"),
        Column("args", "VARCHAR", "the job's arguments as JSON"),
        Column("seed", "INTEGER", "the job's seed, if any", min=0),
        Column("device", "VARCHAR", "device the job ran on"),
        Column("status", "VARCHAR", "ok or failed", nullable=False, allowed=("ok", "failed")),
        Column("error", "VARCHAR", "one-line error of a failed job"),
        Column("started_at", "TIMESTAMP", "start time (UTC)"),
        Column("finished_at", "TIMESTAMP", "end time (UTC)"),
        Column("seconds", "DOUBLE", "wall-clock seconds of the job", unit="s", min=0.0),
        Column("rows_written", "BIGINT", "fact rows the job wrote", min=0),
    ),
))

TABLE_NAMES: tuple[str, ...] = tuple(TABLES)


def get_table(name: str) -> Table:
    """Return the table definition called ``name``.

    Raises:
        medbench.errors.UnknownNameError: if there is no such table.
    """
    try:
        return TABLES[name]
    except KeyError:
        from medbench.errors import UnknownNameError

        raise UnknownNameError("table", name, TABLE_NAMES) from None


_SCALAR_ARROW = {
    "VARCHAR": "string",
    "BIGINT": "int64",
    "INTEGER": "int32",
    "DOUBLE": "float64",
    "BOOLEAN": "bool_",
}


def arrow_type(sql_type: str):
    """Map a DuckDB type name of this schema to a pyarrow type (imports pyarrow)."""
    import pyarrow as pa

    if sql_type.endswith("[]"):
        return pa.list_(arrow_type(sql_type[:-2]))
    if sql_type == "TIMESTAMP":
        return pa.timestamp("us")
    try:
        return getattr(pa, _SCALAR_ARROW[sql_type])()
    except KeyError:
        raise ValueError(f"schema error: no Arrow type for {sql_type!r}") from None


def arrow_schema(table: str | Table):
    """The pyarrow schema of a table, with units and descriptions as field metadata."""
    import pyarrow as pa

    t = table if isinstance(table, Table) else get_table(table)
    fields = []
    for c in t.columns:
        meta = {"description": c.description}
        if c.unit:
            meta["unit"] = c.unit
        fields.append(pa.field(c.name, arrow_type(c.type), nullable=c.nullable, metadata=meta))
    return pa.schema(fields, metadata={"medbench.table": t.name,
                                       "medbench.schema_version": SCHEMA_VERSION})


def partition_dir(table: str | Table, row: dict) -> str:
    """Sub-folder (relative to ``tables/<table>``) of a row, e.g.
    ``space=unet3d/task=msd%2Fhippocampus``."""
    t = table if isinstance(table, Table) else get_table(table)
    return "/".join(partition_segment(col, row[col]) for col in t.partition_by)


def partition_segment(column: str, value: object) -> str:
    """One folder name of a partition path, e.g. ``task=msd%2Fhippocampus``.

    Values are percent-encoded, which DuckDB's and pyarrow's hive partitioning decode: a
    user reading ``tables/evaluations/**/*.parquet`` directly (DuckDB detects hive folders
    by default) gets ``task = 'msd/hippocampus'``, the column's true value.
    """
    from urllib.parse import quote

    return f"{column}={quote(str(value), safe='')}"
