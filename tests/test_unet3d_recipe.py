"""The unet3d builder's recipe options: learning-rate warm-up, the work folder a recipe
names, which released runs count as done, and training chosen architectures."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from builders.unet3d import Recipe, main, released

TABLES = Path(__file__).resolve().parents[1] / "tables"
ARCH = "s2|c4-8-16|k3-3-5|b1-1-1|r0-1-1|n1-1-2"


def lrs(recipe: Recipe) -> list[float]:
    torch = pytest.importorskip("torch")
    from builders.unet3d import lr_schedule

    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=recipe.lr)
    sched, seen = lr_schedule(opt, recipe), []
    for _ in range(recipe.epochs):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return seen


def test_warmup_ramps_linearly_then_follows_the_cosine():
    seen = lrs(Recipe(epochs=10, lr=1.0, warmup_epochs=4))
    assert seen[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    # the ramp's last epoch is the cosine's first, over the 7 epochs from there
    assert seen[3:] == pytest.approx([0.5 * (1 + math.cos(math.pi * i / 7)) for i in range(7)])
    assert all(a > b for a, b in zip(seen[3:], seen[4:]))


def test_without_warmup_the_schedule_is_the_released_cosine():
    torch = pytest.importorskip("torch")
    seen = lrs(Recipe(epochs=8, lr=2e-3))
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=2e-3)
    cosine, want = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=8), []
    for _ in range(8):
        want.append(opt.param_groups[0]["lr"])
        opt.step()
        cosine.step()
    assert seen == want


def test_a_recipe_names_its_work_folder_by_what_differs():
    assert Recipe().folder_suffix() == "" == Recipe(epochs=3).folder_suffix()
    assert Recipe(warmup_epochs=5).folder_suffix() == "-wu5"
    assert Recipe(lr=1e-3, spatial_size=(32, 32, 32)).folder_suffix() == "-32x32x32-lr0.001"


@pytest.mark.skipif(not (TABLES / "runs").is_dir(), reason="needs the bundled tables")
def test_released_runs_recorded_before_warmup_existed_count_as_its_default():
    import medbench

    with medbench.open(TABLES) as store:
        recipes = [json.loads(a)["recipe"] for (a,) in store.fetchall(
            f"""SELECT args FROM "{store.view('runs')}" WHERE builder = 'builders.unet3d'
                AND builder_version = '2.0' AND status = 'ok'""")]
    assert any("warmup_epochs" not in r for r in recipes)  # released before the field
    done = released(str(TABLES), "msd/hippocampus", Recipe())
    assert len(done) == len(recipes)
    assert released(str(TABLES), "msd/hippocampus", Recipe(warmup_epochs=5)) == set()


def test_arch_ids_replace_the_plan(tmp_path, capsys):
    from medbench.spaces import unet3d_v2

    argv = ["--arch-ids", ARCH, "--seeds", "0", "2", "--work", str(tmp_path), "--tables", "",
            "--dry-run"]
    assert main(argv) == 0
    index = unet3d_v2.from_id(ARCH).arch_index
    lines = capsys.readouterr().out.splitlines()
    assert lines[:2] == [f"todo     {index}-s0 {ARCH}", f"todo     {index}-s2 {ARCH}"]
    assert json.loads(lines[2]) == {"dry_run": {"todo": 2}}
    assert main(["--arch-ids", "s2|c5-8-16|k3-3-3|b1-1-1|r0-0-0|n1-1-1", "--dry-run"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "5" in err
