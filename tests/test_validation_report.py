"""medbench report validation on the tiny synthetic release (see conftest.py)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from conftest import ARCHS, TASK, one_line_error

import medbench
from medbench.validation_report import split_hygiene, summary_lines, validate_task


def write_split(folder: Path, overlap: int = 0, sizes=(156, 52, 52)) -> Path:
    names = [f"hippocampus_{i:03d}" for i in range(sum(sizes))]
    n_train, n_val, _ = sizes
    split = {"train": names[:n_train], "val": names[n_train:n_train + n_val],
             "test": names[n_train + n_val:]}
    split["test"][:overlap] = split["train"][:overlap]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "msd_hippocampus.json"
    path.write_text(json.dumps(split))
    return path


def test_figures_of_a_task(release, tmp_path):
    write_split(tmp_path / "splits")
    with medbench.open(release) as store:
        v = validate_task(store, TASK, tmp_path / "splits")
    # 5 standalone architectures and one supernet row: each (space, arch, method) is one.
    assert v.n_archs == 6 and v.n_rows == sum(len(a[0]) for a in ARCHS.values()) + 1
    # The tiny release ranks every architecture the same on val and test.
    assert v.spearman == pytest.approx(1.0) and v.kendall == pytest.approx(1.0)
    assert v.selected == "unet3d c-large standalone" and v.selected_test_rank == 1
    two_seeds = [a for a in ARCHS.values() if len(a[0]) == 2]
    assert len(v.seed_std) == len(two_seeds)
    assert v.seed_std == pytest.approx([0.02 / 2 ** 0.5] * len(two_seeds))
    assert v.hygiene_ok is True
    text = "\n".join(summary_lines(v))
    assert "Spearman 1.000" in text and "split hygiene passed" in text
    assert "ranks 1 of 6 on test" in text


def test_each_space_and_method_is_reported_on_its_own(release, tmp_path):
    from medbench.validation_report import groups

    with medbench.open(release) as store:
        assert groups(store, TASK) == [("unet3d", "standalone"), ("unet3d", "supernet")]
        alone = validate_task(store, TASK, tmp_path / "nowhere", space="unet3d",
                              method="standalone")
        shared = validate_task(store, TASK, tmp_path / "nowhere", space="unet3d",
                               method="supernet")
        other = validate_task(store, TASK, tmp_path / "nowhere", space="mstf",
                              method="standalone")
    assert (alone.n_archs, shared.n_archs) == (5, 1)
    assert alone.n_rows == sum(len(a[0]) for a in ARCHS.values())
    assert alone.selected == "unet3d c-large standalone"
    assert "5 architectures (unet3d standalone)" in summary_lines(alone)[0]
    assert shared.spearman is None  # one architecture: no rank agreement to give
    assert other.n_archs == 0


def test_rank_disagreement_is_measured(release, tmp_path):
    from medbench.release import write_rows

    # Another task where test order reverses val order for three architectures.
    rows = [{"space": "unet3d", "arch_id": a, "task": "msd/heart", "method": "standalone",
             "seed": 0, "val_dice": v, "test_dice": t, "run_id": "run-test"}
            for a, v, t in (("a-small", 0.9, 0.5), ("b-mid", 0.8, 0.6), ("c-large", 0.7, 0.7))]
    write_rows(release, "evaluations", rows, "heart")
    (release / "MANIFEST.json").unlink()
    with medbench.open(release) as store:
        v = validate_task(store, "msd/heart", tmp_path / "nowhere")
    assert v.spearman == pytest.approx(-1.0) and v.kendall == pytest.approx(-1.0)
    assert v.selected_test_rank == 3 and v.seed_std == []
    assert v.hygiene_ok is None  # no tasks row, no split file: said, not passed


def test_split_hygiene_finds_overlap_size_and_checksum_problems(release, tmp_path):
    write_split(tmp_path / "a", overlap=2)
    with medbench.open(release) as store:
        ok, found = split_hygiene(store, TASK, tmp_path / "a")
        assert ok is False and any("2 case(s) in both train and test" in f for f in found)
        write_split(tmp_path / "b", sizes=(150, 55, 55))
        ok, found = split_hygiene(store, TASK, tmp_path / "b")
        assert ok is False and any("differ from the tasks row" in f for f in found)


def test_split_hygiene_checks_the_sha256_in_the_tasks_row(tmp_path):
    from conftest import build_release

    from medbench.release import write_rows

    root = build_release(tmp_path / "t")
    path = write_split(tmp_path / "s")
    other = hashlib.sha256(b"another split").hexdigest()
    for sha, expect in ((hashlib.sha256(path.read_bytes()).hexdigest(), True), (other, False)):
        for f in (root / "tasks").rglob("*.parquet"):
            f.unlink()
        write_rows(root, "tasks", [{"task": TASK, "collection": "msd", "name": "hippocampus",
                                    "dims": 3, "label_kind": "segmentation", "n_classes": 3,
                                    "n_train": 156,
                                    "n_val": 52, "n_test": 52, "metric": "dice",
                                    "split_sha256": sha, "run_id": "run-test"}], "t")
        (root / "MANIFEST.json").unlink(missing_ok=True)
        with medbench.open(root) as store:
            ok, found = split_hygiene(store, TASK, tmp_path / "s")
        assert ok is expect, found
        if not expect:
            assert any("made with another split" in f for f in found)


def test_repeated_images_across_splits_are_found(release, tmp_path):
    path = write_split(tmp_path / "s")
    split = json.loads(path.read_text())
    images = tmp_path / "data" / "Task04_Hippocampus" / "imagesTr"
    images.mkdir(parents=True)
    for part, cases in split.items():
        for case in cases:
            (images / f"{case}.nii.gz").write_bytes(case.encode())
    # The first test case is a copy of the first train case under another name.
    (images / f"{split['test'][0]}.nii.gz").write_bytes(split["train"][0].encode())
    with medbench.open(release) as store:
        ok, found = split_hygiene(store, TASK, tmp_path / "s", tmp_path / "data")
    assert ok is False
    assert any("1 image(s) repeated across splits" in f and split["test"][0] in f
               for f in found)


def test_cli_writes_the_report(release, tmp_path, cli):
    write_split(tmp_path / "splits")
    out = tmp_path / "report"
    r = cli(release, "report", "validation", "--out", str(out), "--splits-dir",
            str(tmp_path / "splits"))
    assert r.code == 0, r.err
    assert "## msd/hippocampus, unet3d standalone" in r.out and "Kendall tau 1.000" in r.out
    assert "## msd/hippocampus, unet3d supernet" in r.out
    assert (out / "validation.md").read_text() == r.out
    png = (out / "msd_hippocampus-unet3d-standalone.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000


def test_cli_report_on_empty_tables_is_one_line(tmp_path, cli):
    from medbench.release import write_manifest

    (tmp_path / "empty").mkdir()
    write_manifest(tmp_path / "empty")
    r = cli(tmp_path / "empty", "report", "validation", "--out", str(tmp_path / "o"))
    assert one_line_error(r), r.err


def test_failed_runs_are_told_apart_by_their_learning_curves():
    from medbench.validation_report import TaskValidation, failure_lines

    v = TaskValidation("msd/hippocampus", "dice", "unet3d-v2", "standalone", 3, 4,
                       [0.8, 0.4, 0.8], [0.8, 0.4, 0.8], [])
    flat = [0.1, 0.0, 0.0, 0.0, 0.01, 0.02, 0.03, 0.02]       # background only, never left
    late = [0.1, 0.0, 0.0, 0.0, 0.0, 0.2, 0.6, 0.8]           # left it at epoch 7
    steady = [0.2, 0.4, 0.5, 0.6, 0.7, 0.75, 0.8, 0.8]        # never in it
    one_class = [0.1, 0.3, 0.33, 0.33, 0.33, 0.33, 0.33, 0.33]  # one class only, early on
    v.curves = [("a", 0, flat), ("a", 1, late), ("b", 0, steady), ("c", 0, one_class)]
    lines = failure_lines(v)
    assert lines[0].startswith("- runs ending below 0.5 val dice: 2 of 4 (`a` seed 0: 0.020;")
    assert "`c` seed 0: 0.330" in lines[0]
    assert lines[1] == ("- background-only phase (val dice < 0.05 in one of the first 5 "
                        "epochs): 2 of 4 runs; 1 of them reached 0.5 later (at epoch 7-7, "
                        "median 7); 1 of the 2 runs ending below 0.5 went through it")
    v.curves = []
    assert failure_lines(v) == []


def test_failed_runs_are_counted_by_first_level_width_with_like_for_like_pairs():
    from medbench.validation_report import TaskValidation, width_lines

    narrow = "s2|c4-8-16|k3-3-5|b1-1-1|r0-1-1|n1-1-2"
    wide = "s2|c8-8-16|k3-3-5|b1-1-1|r0-1-1|n1-1-2"
    other = "s2|c4-8-16|k5-3-3|b1-1-1|r0-0-0|n1-1-1"
    v = TaskValidation("msd/hippocampus", "dice", "unet3d-v2", "standalone", 3, 6, [], [], [])
    v.curves = [(narrow, 0, [0.1, 0.3]), (narrow, 1, [0.2, 0.28]), (wide, 0, [0.5, 0.84]),
                (other, 0, [0.4, 0.8]), (other, 1, [0.1, 0.2]), (other, 2, [0.4, 0.81])]
    lines = width_lines(v)
    assert lines == [
        "- runs ending below 0.5 val dice by first-level width: 4 channels: 3 of 5 runs (2 of 2 "
        "architectures, 1 on every seed); 8 channels: 0 of 1 runs (0 of 1 architectures, 0 on "
        "every seed)",
        "- within 4 channels, by the first level's other choices: residual 0: 3 of 5 runs (2 of "
        "2 architectures, 1 on every seed); blocks 1: 3 of 5 runs (2 of 2 architectures, 1 on "
        "every seed); kernel 3: 2 of 2 runs (1 of 1 architectures, 1 on every seed); kernel 5: "
        "1 of 3 runs (1 of 1 architectures, 0 on every seed)",
        "- architectures differing in first-level width alone (mean final val dice): "
        "`s2|c*-8-16|k3-3-5|b1-1-1|r0-1-1|n1-1-2`: 4 channels 0.290 (2 of 2 below), "
        "8 channels 0.840 (0 of 1 below)"]
    v.curves = [(wide, 0, [0.5, 0.84])]  # nothing failed: nothing to break down
    assert width_lines(v) == []
    v.space, v.curves = "mstf", [("whatever", 0, [0.1])]  # no channels to read
    assert width_lines(v) == []


def test_width_twins_get_their_own_panel(tmp_path):
    pytest.importorskip("matplotlib")
    from medbench.validation_report import TaskValidation, _plot

    v = TaskValidation("msd/hippocampus", "dice", "unet3d-v2", "standalone", 2, 2,
                       [0.3, 0.8], [0.3, 0.8], [])
    v.curves = [("s2|c4-8-16|k3-3-5|b1-1-1|r0-1-1|n1-1-2", 0, [0.1, 0.3]),
                ("s2|c8-8-16|k3-3-5|b1-1-1|r0-1-1|n1-1-2", 0, [0.5, 0.84])]
    sizes = []
    for curves in (v.curves, v.curves[:1]):
        v.curves = curves
        _plot(v, tmp_path / "f.png")
        from PIL import Image

        sizes.append(Image.open(tmp_path / "f.png").size[0])
    assert sizes[0] > sizes[1]  # five panels with a pair, four without
