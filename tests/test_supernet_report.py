"""medbench report supernet-trust on the tiny synthetic release (see conftest.py)."""

from __future__ import annotations

from conftest import ARCHS, RUN, TASK, one_line_error

import medbench
from medbench.release import write_manifest, write_rows
from medbench.supernet_report import trust


def add_supernet_rows(root, order):
    """Supernet val Dice for every standalone architecture, ranked as ``order`` says."""
    rows = [{"space": "unet3d", "arch_id": a, "task": TASK, "method": "supernet", "seed": 1,
             "val_dice": 0.1 * (i + 1), "run_id": RUN} for i, a in enumerate(order)]
    write_rows(root, "evaluations", rows, "supernet")
    write_manifest(root)


def by_val(reverse=False):
    return sorted(ARCHS, key=lambda a: sum(ARCHS[a][0]) / len(ARCHS[a][0]), reverse=reverse)


def test_agreement_and_disagreement(tmp_path):
    from conftest import build_release

    agree, disagree = build_release(tmp_path / "a"), build_release(tmp_path / "b")
    add_supernet_rows(agree, by_val())                # same order as standalone
    add_supernet_rows(disagree, by_val(reverse=True))  # reversed
    for root, sign in ((agree, 1), (disagree, -1)):
        with medbench.open(root) as store:
            (t,) = trust(store, bootstrap=200)
        # the conftest's b-mid also has a supernet row (0.75): its mean joins the pairs
        assert t.n_archs == len(ARCHS) and t.metric == "dice"
        assert sign * t.spearman > 0.5 and sign * t.kendall > 0.3
        lo, hi = t.kendall_ci
        assert lo <= t.kendall <= hi
        # seeds 0 and 1 rank a-small < d-bad ... the same way: the ceiling is 1, over the 4
        # architectures with both seeds (e-oneseed has one)
        assert t.seed_kendall == 1.0 and t.seed_archs == 4


def test_report_command_and_datasheet(cli, release, tmp_path):
    from medbench.datasheet import generate

    add_supernet_rows(release, by_val())
    r = cli(release, "report", "supernet-trust", "--out", str(tmp_path / "o"),
            "--bootstrap", "50")
    assert r.code == 0, r.err
    assert "| unet3d | msd/hippocampus | 5 |" in r.out and "| 1.00 (4) |" in r.out
    assert (tmp_path / "o" / "unet3d_msd_hippocampus.png").read_bytes()[:4] == b"\x89PNG"
    with medbench.open(release) as store:
        assert "### Supernet against standalone training" in generate(store)


def test_no_pairs_is_one_line(cli, tmp_path):
    from conftest import build_release

    root = build_release(tmp_path / "t")
    # the tiny release has a single supernet row: fewer than 3 pairs
    r = cli(root, "report", "supernet-trust", "--out", str(tmp_path / "o"))
    assert one_line_error(r) and "nothing to report" in r.err
