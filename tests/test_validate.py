"""medbench validate: faults injected into a release, each caught with a one-line message."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.compute  # noqa: F401 - pa.compute
import pyarrow.parquet as pq
import pytest

from medbench.manifest import write_manifest
from medbench.validate import validate


def first(release, table):
    return next((release / table).rglob("*.parquet"))


def rewrite(release, table, transform):
    """Rewrite a table's first file through ``transform(pa.Table) -> pa.Table``, then refresh
    the manifest so that it is consistent and only the schema or row checks can catch the fault."""
    path = first(release, table)
    pq.write_table(transform(pq.read_table(path)), path)
    write_manifest(release)


def set_value(column, index, value):
    def transform(t):
        values = t.column(column).to_pylist()
        values[index] = value
        i = t.column_names.index(column)
        return t.set_column(i, t.schema.field(i).with_nullable(True),
                            pa.array(values, t.schema.field(i).type))
    return transform


def flip_byte(release):
    p = first(release, "evaluations")
    data = bytearray(p.read_bytes())
    data[len(data) // 3] ^= 0x01
    p.write_bytes(bytes(data))


def truncate(release):
    p = first(release, "hardware")
    p.write_bytes(p.read_bytes()[:-100])


def drop_column(release):
    rewrite(release, "costs", lambda t: t.drop_columns(["macs"]))


def duplicate_key(release):
    rewrite(release, "architectures", lambda t: pa.concat_tables([t, t.slice(0, 1)]))


def dice_out_of_range(release):
    rewrite(release, "evaluations", set_value("val_dice", 0, 1.7))


def nan_metric(release):
    rewrite(release, "evaluations", set_value("test_dice", 1, float("nan")))


def per_class_nan(release):
    rewrite(release, "evaluations", set_value("test_hd95_mm_per_class", 2, [1.0, float("nan")]))


def per_class_out_of_range(release):
    rewrite(release, "evaluations", set_value("val_dice_per_class", 0, [0.5, -0.2]))


def orphan_run_id(release):
    rewrite(release, "hardware", set_value("run_id", 0, "run-that-never-ran"))


def orphan_architecture(release):
    rewrite(release, "costs", set_value("arch_id", 0, "z-unknown"))


def unknown_device(release):
    rewrite(release, "devices", lambda t: t.filter(pa.compute.equal(t.column("device"),
                                                                    "dev-a")))


def bad_allowed_value(release):
    rewrite(release, "hardware", set_value("energy_method", 0, "guessed"))


def null_key(release):
    rewrite(release, "runs", set_value("run_id", 0, None))


def wrong_type(release):
    def transform(t):
        i = t.column_names.index("seed")
        return t.set_column(i, "seed", pc_cast(t.column(i)))
    pc_cast = lambda col: col.cast(pa.int64())  # noqa: E731
    rewrite(release, "evaluations", transform)


def metric_not_the_catalogues(release):
    rewrite(release, "tasks", set_value("metric", 0, "auc"))


def wrong_partition_folder(release):
    p = first(release, "hardware")
    target = release / "hardware" / "space=unet3d" / "task=msd%2Fliver" / "device=dev-a" / p.name
    target.parent.mkdir(parents=True)
    p.rename(target)
    write_manifest(release)


def missing_file(release):
    first(release, "devices").unlink()


def unlisted_file(release):
    p = first(release, "devices")
    (p.parent / "extra.parquet").write_bytes(p.read_bytes())


def manifest_row_count(release):
    m = json.loads((release / "MANIFEST.json").read_text())
    m["files"][0]["rows"] += 1
    (release / "MANIFEST.json").write_text(json.dumps(m))


def seed_gap(release):
    # a-small keeps seed 1 but loses seed 0, and no failed run says why.
    rewrite(release, "evaluations", lambda t: t.filter(pa.compute.invert(pa.compute.and_(
        pa.compute.equal(t.column("arch_id"), "a-small"), pa.compute.equal(t.column("seed"), 0)))))


def manifest_garbage(release):
    (release / "MANIFEST.json").write_text("{not json")


FAULTS = [flip_byte, truncate, drop_column, duplicate_key, dice_out_of_range, nan_metric,
          per_class_out_of_range, per_class_nan, orphan_run_id, orphan_architecture, unknown_device,
          bad_allowed_value, null_key, wrong_type, metric_not_the_catalogues,
          wrong_partition_folder, missing_file, unlisted_file,
          manifest_row_count, manifest_garbage, seed_gap]

EXPECTED = {
    "flip_byte": "sha256 differs", "truncate": "bytes, the manifest says",
    "drop_column": "missing column(s) macs", "duplicate_key": "duplicate key",
    "dice_out_of_range": "val_dice outside [0.0, 1.0]", "nan_metric": "test_dice outside",
    "per_class_out_of_range": "val_dice_per_class outside",
    "per_class_nan": "test_hd95_mm_per_class outside", "orphan_run_id": "no row in runs",
    "orphan_architecture": "no row in architectures", "unknown_device": "no row in devices",
    "bad_allowed_value": "'guessed'", "null_key": "NULL run_id", "wrong_type": "column seed",
    "metric_not_the_catalogues": "the catalogue ranks it by 'dice'",
    "wrong_partition_folder": "filed outside hardware/space=unet3d/task=msd%2Fhippocampus",
    "missing_file": "listed in the manifest but missing",
    "unlisted_file": "not listed in the manifest", "manifest_row_count": "rows, the manifest",
    "manifest_garbage": "not a readable JSON manifest",
    "seed_gap": "lacks seed 0 but has a higher one",
}


def test_clean_release_validates(release):
    report = validate(release)
    assert report.ok, report.problems
    assert report.files_checked == 8 and report.rows_checked > 0


@pytest.mark.parametrize("fault", FAULTS, ids=lambda f: f.__name__)
def test_each_fault_is_caught_in_one_line(release, fault):
    fault(release)
    report = validate(release)
    assert not report.ok
    assert all("\n" not in p for p in report.problems)
    assert any(EXPECTED[fault.__name__] in p for p in report.problems), report.problems


def test_fault_count(release, tmp_path):
    """All faults, each on a fresh copy: every one is caught."""
    from conftest import build_release

    caught = 0
    for i, fault in enumerate(FAULTS):
        root = build_release(tmp_path / f"r{i}")
        fault(root)
        caught += not validate(root).ok
    assert caught == len(FAULTS) == 21


def test_a_failed_run_explains_a_seed_gap(release):
    from medbench.release import write_rows

    seed_gap(release)
    write_rows(release, "runs", [{"run_id": "run-failed", "builder": "tests",
                                  "builder_version": "0", "status": "failed", "seed": 0,
                                  "args": json.dumps({"arch_id": "a-small", "seed": 0}),
                                  "error": "RuntimeError: out of memory"}], "failed")
    write_manifest(release)
    report = validate(release)
    assert report.ok, report.problems


def test_missing_top_seeds_are_a_partial_build_not_a_gap(release):
    # b-mid loses its highest seed: seeds 0.. are still contiguous.
    rewrite(release, "evaluations", lambda t: t.filter(pa.compute.invert(pa.compute.and_(
        pa.compute.equal(t.column("arch_id"), "b-mid"), pa.compute.equal(t.column("seed"), 1)))))
    report = validate(release)
    assert report.ok, report.problems
