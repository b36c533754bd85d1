"""``medbench explore``: the static site, its data, and the site in a real headless browser."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest

from medbench.explore import task_data, write_site

SHIPPED = Path(__file__).resolve().parent.parent / "tables"


def _data(path: Path) -> dict:
    text = path.read_text()
    return json.loads(text[text.index("=") + 1:].rstrip().rstrip(";"))


def test_site_files_and_data(release, tmp_path):
    import medbench

    out = tmp_path / "site"
    with medbench.open(release) as store:
        done = write_site(store, out)
        data, details = task_data(store, "msd/hippocampus")
        n_evaluations = store.n_rows("evaluations")
    assert done["tasks"] == ["msd/hippocampus"] and done["pages"] == 3
    for name in ("index.html", "task-msd-hippocampus.html", "arch-msd-hippocampus.html",
                 "assets/plotly.min.js", "assets/explore.js", "assets/explore.css",
                 "data/index.js", "data/task-msd-hippocampus.js"):
        assert (out / name).is_file(), name
    # every script a page loads is in the site: nothing comes from the network
    for page in out.glob("*.html"):
        for src in re.findall(r'src="([^"]+)"', page.read_text()):
            assert (out / src).is_file() and "//" not in src
    task = _data(out / "data" / "task-msd-hippocampus.js")
    assert task == json.loads(json.dumps(data))
    cols = {c: i for i, c in enumerate(task["columns"])}
    rows = {(r[cols["arch_id"]], r[cols["method"]]): r for r in task["rows"]}
    # seeds averaged as the query does: a-small's val 0.70 and 0.72 over 2 seeds
    assert rows[("a-small", "standalone")][cols["val"]] == pytest.approx(0.71)
    assert rows[("a-small", "standalone")][cols["n_seeds"]] == 2
    # the first setting is the query's default device: dev-a, ONNX Runtime, 1 thread
    assert task["settings"][0] == {"device": "dev-a", "runtime": "onnxruntime", "threads": 1,
                                   "n": 5}
    assert rows[("a-small", "standalone")][cols["hw"]]["0"] == [2.0, 4.0]
    assert rows[("a-small", "standalone")][cols["hw"]]["1"] == [20.0, None]  # dev-b
    assert len(details["details"]) == len(task["rows"])
    index = _data(out / "data" / "index.js")
    assert index["tasks"][0]["best"]["arch_id"] == "c-large"
    assert index["tables"]["evaluations"] == n_evaluations


def test_the_headline_best_is_a_searched_architecture_not_the_reference(release, tmp_path):
    """The DynUNet reference is listed with the rest, but the index's best by validation is the
    best of the searched spaces, as in the datasheet."""
    import medbench
    from medbench.release import write_manifest, write_rows

    from conftest import RUN, TASK

    write_rows(release, "evaluations", [
        {"space": "dynunet", "arch_id": "ref", "task": TASK, "method": "standalone",
         "seed": 0, "epochs": 2, "val_dice": 0.95, "test_dice": 0.9, "run_id": RUN}], "ref")
    write_manifest(release)
    out = tmp_path / "site"
    with medbench.open(release) as store:
        write_site(store, out)
    task = _data(out / "data" / "task-msd-hippocampus.js")
    assert ["dynunet", "ref"] in [r[:2] for r in task["rows"]]
    assert _data(out / "data" / "index.js")["tasks"][0]["best"]["arch_id"] == "c-large"


def test_bad_output_folders_and_tasks_are_one_line(release, tmp_path, cli):
    (tmp_path / "file").write_text("x")
    other = tmp_path / "other"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    for argv, words in ((["--out", str(tmp_path / "file")], "is a file"),
                        (["--out", str(other)], "holds other files"),
                        (["--out", str(tmp_path / "s"), "--task", "breastmnist"],
                         "has no results")):
        r = cli(release, "explore", *argv)
        assert r.code == 2 and len(r.err.strip().splitlines()) == 1 and words in r.err, r.err
    assert (other / "keep.txt").read_text() == "mine" and len(list(other.iterdir())) == 1
    r = cli(release, "explore", "--out", str(tmp_path / "s"))
    assert r.code == 0 and "index.html" in r.err
    assert cli(release, "explore", "--out", str(tmp_path / "s")).code == 0  # replaced


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.slow
def test_site_in_a_headless_browser(tmp_path):
    """The shipped tables' site in Chromium: plots render without console errors, a filter
    changes the rows shown, a row leads to its architecture's page; screenshots saved
    (in $MEDBENCH_SCREENSHOTS when set, else the test's folder)."""
    if not _chromium():
        if os.environ.get("CI"):
            pytest.fail("CI needs Debian's chromium for the browser test (.ci/run installs it)")
        pytest.skip("no chromium on this machine")
    playwright = pytest.importorskip("playwright.sync_api")
    import medbench

    site = tmp_path / "site"
    with medbench.open(SHIPPED) as store:
        write_site(store, site)
    shots = Path(os.environ.get("MEDBENCH_SCREENSHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    errors: list[str] = []
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=_chromium(), args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto((site / "index.html").as_uri())
        page.wait_for_selector("body[data-ready='1']")
        assert page.locator("#tasks tbody tr").count() >= 4
        page.click("a[href='task-msd-hippocampus.html']")
        page.wait_for_selector("body[data-ready='1']")
        # the plot rendered: Plotly drew its SVG with one point per shown row and a front
        page.wait_for_selector("#plot .main-svg")
        n_points = page.locator("#plot .scatterlayer .point").count()
        rows = page.locator("#rows tr")
        before = rows.count()
        assert before > 10 and n_points >= before
        page.screenshot(path=str(shots / "explore-hippocampus.png"))
        # trained results by default, as the query; the supernet's estimates one choice away
        methods = page.locator("#rows tr td:nth-child(3)")
        assert set(methods.all_inner_texts()) == {"standalone"}
        page.select_option("#method", "all")
        assert rows.count() > before and "supernet" in methods.all_inner_texts()
        page.select_option("#method", "standalone")
        # energy on the x axis: every row has it (tdp_model), the plot keeps its points
        page.select_option("#x-axis", "energy")
        assert "energy" in page.text_content("#plot .xtitle")
        assert page.locator("#plot .scatterlayer .point").count() == n_points
        page.select_option("#x-axis", "latency")
        latency = page.locator("#rows tr td:nth-child(10)")
        # an architecture trained but not yet measured shows "–"; the budget filter drops it
        values = [float(v) for v in latency.all_inner_texts() if v != "–"]
        assert len(values) > 10
        limit = sorted(values)[len(values) // 2]
        page.fill("#max-latency", str(limit))
        after = rows.count()
        assert 0 < after < before
        assert all(float(v) <= limit for v in latency.all_inner_texts())
        assert re.match(rf"{after} of \d+ rows", page.inner_text("#count"))
        # the superseded space is one tick away
        page.fill("#max-latency", "")
        assert rows.count() == before
        page.check("input[value='unet3d']")
        assert rows.count() > before
        # sorting by latency: ascending, rows without a measurement last
        page.click("th[data-col='latency_ms']")
        texts = latency.all_inner_texts()
        known = [float(v) for v in texts if v != "–"]
        assert known == sorted(known) and texts[:len(known)] == [t for t in texts if t != "–"]
        page.click("#rows tr:first-child a")
        page.wait_for_selector("body[data-ready='1']")
        page.wait_for_selector("#curves .main-svg")
        assert page.locator("#hardware tbody tr").count() >= 1
        assert "tdp_model" in page.inner_text("#hardware")
        page.screenshot(path=str(shots / "explore-architecture.png"), full_page=True)
        page.goto((site / "task-medmnist-breastmnist.html").as_uri())
        page.wait_for_selector("#plot .main-svg")
        page.select_option("#method", "supernet")
        assert all(m == "supernet" for m in page.locator("#rows tr td:nth-child(3)")
                   .all_inner_texts())
        browser.close()
    assert errors == []
