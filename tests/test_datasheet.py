"""The datasheet's generated section is what the tables say."""

from __future__ import annotations

from pathlib import Path

import medbench
from medbench.datasheet import END, START, generate, splice

from conftest import RUN, TASK

ROOT = Path(__file__).resolve().parents[1]


def test_shipped_datasheet_matches_the_shipped_tables():
    with medbench.open(ROOT / "tables") as store:
        expected = generate(store)
    text = (ROOT / "DATASHEET.md").read_text()
    assert splice(text, expected) == text, (
        "DATASHEET.md is stale: run python -m medbench.datasheet --write DATASHEET.md")


def test_generated_section_reports_counts_compute_and_results(release):
    with medbench.open(release) as store:
        section = generate(store)
    assert "| evaluations | 10 |" in section and "| curves | 0 |" in section
    assert "| tests | 0 | 1 | 0 |" in section  # builder, version, jobs ok, failed
    assert "best architecture: `unet3d` `c-large`" in section
    assert "DynUNet reference: not trained yet" in section
    assert "seed-to-seed std of val dice" in section and "val-vs-test rank agreement" in section
    assert "fastest 1.00 ms (`e-oneseed`, standalone)" in section


def test_segmentation_headline_per_class_and_latency_by_method(release):
    """The best architecture's test Dice per class (mean over seeds, beside nnU-Net's per-class
    figures); latency counted by method and how it was obtained; the 4 ms line counts what
    the default query lists, trained architectures without a latency counted apart."""
    from medbench.release import write_manifest, write_rows

    write_rows(release, "architectures", [{"space": "unet3d", "arch_id": "f-best",
                                           "arch_index": 9, "config": "{}", "run_id": RUN}],
               "more")
    write_rows(release, "evaluations", [
        {"space": "unet3d", "arch_id": "f-best", "task": TASK, "method": "standalone",
         "seed": seed, "epochs": 2, "val_dice": 0.9, "test_dice": sum(t) / 2,
         "test_dice_per_class": t, "run_id": RUN}
        for seed, t in enumerate(([0.8, 0.9], [0.9, 0.7]))], "more")
    write_manifest(release)
    with medbench.open(release) as store:
        section = generate(store)
    assert "best architecture: `unet3d` `f-best` (standalone, 2 seeds): val 0.9000, test " \
           "0.8250 ± 0.0354; test per class: anterior 0.8500, posterior 0.8000" in section
    assert ("6 architectures with results and a latency, by method and how it was obtained: "
            "5 standalone measured, 1 supernet measured; fastest 1.00 ms (`e-oneseed`, "
            "standalone); 1 of the 6 standalone ones have none there") in section
    assert ("--max-latency 4ms`): 3 standalone architectures, the best by validation `b-mid` "
            "(2 seeds)") in section and "; 1 more of other methods (`--method all`)" in section


def test_the_reference_network_stands_beside_the_best_architecture_not_in_its_place(release):
    """The DynUNet is a fixed reference, not an architecture of a searched space: even when it
    scores best, the headline stays the best searched architecture and the reference gets a
    line of its own, with its test Dice per class (one seed: no spread to give)."""
    from medbench.release import write_manifest, write_rows

    write_rows(release, "evaluations", [
        {"space": "dynunet", "arch_id": "ref", "task": TASK, "method": "standalone",
         "seed": 0, "epochs": 2, "val_dice": 0.95, "test_dice": 0.9,
         "test_dice_per_class": [0.92, 0.88], "run_id": RUN}], "ref")
    write_manifest(release)
    with medbench.open(release) as store:
        section = generate(store)
    assert "best architecture: `unet3d` `c-large` (standalone, 2 seeds)" in section
    assert ("- reference, MONAI DynUNet configured nnU-Net-style: `dynunet` `ref` (standalone, "
            "1 seed): val 0.9500, test 0.9000; test per class: anterior 0.9200, posterior "
            "0.8800") in section
    assert "not trained yet" not in section


def test_splice_replaces_only_the_marked_part():
    doc = f"intro\n{START}\nold\n{END}\noutro\n"
    assert splice(doc, "new\n") == f"intro\n{START}\nnew\n{END}\noutro\n"
