"""The datasheet's generated section is what the tables say."""

from __future__ import annotations

from pathlib import Path

import medbench
from medbench.datasheet import END, START, generate, splice

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
    assert "fastest 1.00 ms (`e-oneseed`)" in section


def test_splice_replaces_only_the_marked_part():
    doc = f"intro\n{START}\nold\n{END}\noutro\n"
    assert splice(doc, "new\n") == f"intro\n{START}\nnew\n{END}\noutro\n"
