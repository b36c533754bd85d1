"""The validation report: how far a release's numbers can be trusted, task by task.

    medbench report validation [--out reports/validation] [--splits-dir builders/splits]
                               [--data-root ../shared/data/msd]

In the spirit of a clinical validation report, for every task with results:

- **seed-to-seed variability**: the standard deviation of the validation metric over seeds
  of each architecture, and how it compares with the spread between architectures;
- **validation-vs-test agreement**: Spearman and Kendall rank correlations between the
  architectures' mean validation and mean test metric, and where the validation-selected
  architecture ranks on test; a search sees validation numbers only, so this says whether
  its choices hold on unseen cases;
- **distribution** of the metric over architectures (quantiles, and a histogram);
- **split hygiene**, checked against the committed split file: no case in two splits, the
  sizes and the file's sha256 equal to those in the ``tasks`` table, and (with the data at
  hand) no image file repeated across splits under another name;
- **subgroups**: per-subgroup results where the data set carries subgroup labels.

Writes ``validation.md`` and one PNG per task; :func:`summary_lines` gives the figures that
the datasheet's generated section quotes.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from medbench.errors import MedbenchError

__all__ = ["TaskValidation", "groups", "validate_task", "split_hygiene", "write_report",
           "summary_lines", "failure_lines", "width_lines", "default_splits_dir"]


def default_splits_dir() -> Path:
    """``builders/splits`` of the source checkout medbench runs from."""
    return Path(__file__).resolve().parent.parent / "builders" / "splits"


@dataclass
class TaskValidation:
    """The figures of one task (mean over seeds per architecture unless said otherwise)."""

    task: str
    metric: str
    space: str | None                     # one space (None: every space)
    method: str | None                    # one training method (None: every method)
    n_archs: int
    n_rows: int
    val: list[float]                      # per architecture, mean over seeds
    test: list[float]                     # same order; NaN where no test value
    seed_std: list[float]                 # per architecture with 2+ seeds
    spearman: float | None = None
    kendall: float | None = None
    selected: str | None = None           # best by mean validation metric
    selected_test_rank: int | None = None  # its rank by mean test metric (1 = best)
    n_test_ranked: int = 0
    hygiene: list[str] = field(default_factory=list)
    hygiene_ok: bool | None = None
    subgroups: str = ""
    #: per run with a learning curve (Dice tasks): (arch_id, seed, val per epoch)
    curves: list[tuple[str, int, list[float]]] = field(default_factory=list)

    @property
    def label(self) -> str:
        """e.g. ``mednns supernet``: the space and method the figures cover."""
        return " ".join(x for x in (self.space, self.method) if x)


def _per_arch(store, task: str, metric: str, space: str | None,
              method: str | None) -> list[tuple]:
    rows = store.fetchall(f"""
        SELECT space || ' ' || arch_id || ' ' || method AS name,
               avg(val_{metric}), avg(test_{metric}), stddev_samp(val_{metric}), count(*)
        FROM evaluations WHERE task = ? AND val_{metric} IS NOT NULL
          AND (? IS NULL OR space = ?) AND (? IS NULL OR method = ?)
        GROUP BY ALL ORDER BY name""", [task, space, space, method, method])
    return rows


def _curves(store, task: str, space: str | None, method: str | None
            ) -> list[tuple[str, int, list[float]]]:
    store.views("curves")
    return [(a, seed, list(vals)) for a, seed, vals in store.fetchall("""
        SELECT arch_id, seed, list(val_dice ORDER BY epoch) FROM curves
        WHERE task = ? AND val_dice IS NOT NULL AND (? IS NULL OR space = ?)
          AND (? IS NULL OR method = ?)
        GROUP BY ALL ORDER BY ALL""", [task, space, space, method, method])]


#: Below this final validation Dice a run counts as failed; a run that is under
#: :data:`BACKGROUND` in its first epochs predicted (almost) nothing but background there.
LOW, BACKGROUND, EARLY = 0.5, 0.05, 5


def failure_lines(v: TaskValidation) -> list[str]:
    """How many runs ended below :data:`LOW` validation Dice, and whether they are runs that
    fell into the background-only phase early and left it late or never (read from the
    learning curves)."""
    if not v.curves:
        return []
    early = [(a, s, c) for a, s, c in v.curves if min(c[:EARLY]) < BACKGROUND]
    low = [(a, s, c) for a, s, c in v.curves if c[-1] < LOW]
    out = [f"- runs ending below {LOW} val dice: {len(low)} of {len(v.curves)}" + (
        " (" + "; ".join(f"`{a}` seed {s}: {c[-1]:.3f}" for a, s, c in low[:6])
        + ("; ..." if len(low) > 6 else "") + ")" if low else "")]
    if early:
        left = [next(i + 1 for i, x in enumerate(c) if x >= LOW and i >= EARLY - 1)
                for _, _, c in early if max(c[EARLY - 1:]) >= LOW]
        out.append(
            f"- background-only phase (val dice < {BACKGROUND} in one of the first {EARLY} "
            f"epochs): {len(early)} of {len(v.curves)} runs; {len(left)} of them reached "
            f"{LOW} later" + (f" (at epoch {min(left)}-{max(left)}, median "
                              f"{sorted(left)[len(left) // 2]})" if left else "")
            + f"; {sum(1 for x in low if x in early)} of the {len(low)} runs ending below "
            f"{LOW} went through it")
    return out


def _archs(v: TaskValidation) -> dict:
    """Each curve's architecture, for a space whose architectures have channels per level
    (the U-Nets); empty for any other."""
    if not v.space or not v.curves:
        return {}
    from medbench import spaces

    try:
        space = spaces.get_space(v.space)
        archs = {a: space.from_id(a) for a in {a for a, _, _ in v.curves}}
    except Exception:  # noqa: BLE001 - a space without arch ids to parse has no widths
        return {}
    return archs if all(hasattr(x, "channels") for x in archs.values()) else {}


def _width_twins(archs: dict) -> dict[str, list[str]]:
    """Architectures that differ in first-level width alone, narrowest first, keyed by their
    common rest (``c*`` for the width)."""
    def rest(a: str) -> str:
        return a.replace(f"|c{archs[a].channels[0]}-", "|c*-", 1)

    twins: dict[str, list[str]] = {}
    for a in sorted(archs, key=lambda a: (archs[a].channels[0], a)):
        twins.setdefault(rest(a), []).append(a)
    return {k: ids for k, ids in sorted(twins.items()) if len(ids) > 1}


def width_lines(v: TaskValidation) -> list[str]:
    """Runs ending below :data:`LOW` by first-level width, for a space whose architectures
    have channels per level (the U-Nets): how many runs and architectures each width loses;
    within the narrowest width that loses any, the same by the other first-level choices
    (residual, blocks, kernel); and every pair of architectures that differ in that width
    alone (a like-for-like comparison)."""
    archs = _archs(v)
    if not archs or not any(c[-1] < LOW for _, _, c in v.curves):
        return []
    by_arch: dict[str, list[float]] = {}
    for a, _, c in v.curves:
        by_arch.setdefault(a, []).append(c[-1])

    def counts(ids: list[str]) -> str:
        finals = [f for a in ids for f in by_arch[a]]
        lost = [a for a in ids if min(by_arch[a]) < LOW]
        return (f"{sum(f < LOW for f in finals)} of {len(finals)} runs ({len(lost)} of "
                f"{len(ids)} architectures, {sum(max(by_arch[a]) < LOW for a in lost)} on "
                "every seed)")

    widths = sorted({x.channels[0] for x in archs.values()})
    out = ["- runs ending below {} val dice by first-level width: {}".format(LOW, "; ".join(
        f"{w} channels: " + counts([a for a in by_arch if archs[a].channels[0] == w])
        for w in widths))]
    narrow = next(w for w in widths if any(min(by_arch[a]) < LOW for a in by_arch
                                           if archs[a].channels[0] == w))
    ids = [a for a in by_arch if archs[a].channels[0] == narrow]
    parts = []
    for name, field_ in (("residual", "residual"), ("blocks", "blocks"), ("kernel", "kernels")):
        values = sorted({getattr(archs[a], field_)[0] for a in ids})
        parts += [f"{name} {x}: " + counts([a for a in ids if getattr(archs[a], field_)[0] == x])
                  for x in values]
    out.append(f"- within {narrow} channels, by the first level's other choices: "
               + "; ".join(parts))
    twins = _width_twins(archs)
    if twins:
        def show(a: str) -> str:
            f = by_arch[a]
            return (f"{archs[a].channels[0]} channels {sum(f) / len(f):.3f} "
                    f"({sum(x < LOW for x in f)} of {len(f)} below)")

        out.append("- architectures differing in first-level width alone (mean final val "
                   "dice): " + "; ".join(f"`{k}`: " + ", ".join(map(show, ids))
                                         for k, ids in twins.items()))
    return out


def groups(store, task: str) -> list[tuple[str, str]]:
    """The (space, training method) pairs with results for ``task``, each reported on its
    own: a supernet's subnets and standalone networks rank on different scales, and two
    spaces are two populations."""
    store.views("evaluations")
    return store.fetchall("SELECT DISTINCT space, method FROM evaluations WHERE task = ? "
                          "ORDER BY ALL", [task])


def validate_task(store, task: str, splits_dir: str | Path | None = None,
                  data_root: str | Path | None = None,
                  space: str | None = None, method: str | None = None,
                  hygiene: tuple[bool | None, list[str]] | None = None) -> TaskValidation:
    """Every figure of the report for one task of the release open in ``store``, over the
    results of one ``space`` and training ``method`` (None: all of them together).
    ``hygiene``: the task's :func:`split_hygiene`, where the caller has it already (it is
    the same for every space and method, and may hash every image file)."""
    import math

    from medbench import catalog

    store.views("evaluations", "tasks")
    row = store.fetchone("SELECT metric FROM tasks WHERE task = ?", [task])
    metric = (row[0] if row and row[0] else None) or catalog.default_metric(task)
    rows = _per_arch(store, task, metric, space, method)
    v = TaskValidation(task, metric, space, method, len(rows), sum(r[4] for r in rows),
                       [r[1] for r in rows], [math.nan if r[2] is None else r[2] for r in rows],
                       [r[3] for r in rows if r[4] >= 2 and r[3] is not None])
    paired = [(r[0], r[1], r[2]) for r in rows if r[2] is not None]
    if rows:
        v.selected = max(rows, key=lambda r: r[1])[0]
    if len(paired) >= 3:
        from scipy import stats

        vals = [p[1] for p in paired]
        tests = [p[2] for p in paired]
        v.spearman = float(stats.spearmanr(vals, tests).statistic)
        v.kendall = float(stats.kendalltau(vals, tests).statistic)
    if paired and v.selected is not None:
        by_test = sorted(paired, key=lambda p: -p[2])
        names = [p[0] for p in by_test]
        v.n_test_ranked = len(names)
        if v.selected in names:
            v.selected_test_rank = names.index(v.selected) + 1
    if metric == "dice":
        v.curves = _curves(store, task, space, method)
    v.hygiene_ok, v.hygiene = hygiene or split_hygiene(store, task, splits_dir, data_root)
    v.subgroups = ("none: the data set carries no subgroup labels (e.g. sex, age, site) "
                   "for its cases, so no per-subgroup results can be given")
    return v


def split_hygiene(store, task: str, splits_dir: str | Path | None = None,
                  data_root: str | Path | None = None) -> tuple[bool | None, list[str]]:
    """(ok, findings) of the task's committed split; ok is None when there is no split file.

    Checks that no case is in two splits, that the split sizes and the file's sha256 equal
    the ``tasks`` row, and, given ``data_root`` (the folder of ``TaskXX_Name/``), that every
    case's image exists and that no image file's bytes recur in two splits.
    """
    store.views("tasks")
    row = store.fetchone("SELECT n_train, n_val, n_test, split_sha256, split FROM tasks "
                         "WHERE task = ?", [task])
    folder = Path(splits_dir) if splits_dir else default_splits_dir()
    path = folder / f"{task.replace('/', '_')}.json"
    if row is None:
        return None, ["no tasks row: the split cannot be checked"]
    if not path.is_file():
        # the file's name only: the report and the datasheet must not depend on the checkout
        return None, [f"no split file {path.name} (the task's split: "
                      f"{row[4] or 'not recorded'})"]
    raw = path.read_bytes()
    split = json.loads(raw)
    found, ok = [], True
    names = {k: set(split.get(k, ())) for k in ("train", "val", "test")}
    for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
        both = names[a] & names[b]
        if both:
            ok = False
            found.append(f"{len(both)} case(s) in both {a} and {b}: {sorted(both)[:3]}")
    for k in names:
        if len(names[k]) != len(split.get(k, ())):
            ok = False
            found.append(f"{k} lists a case twice")
    sizes = tuple(len(split.get(k, ())) for k in ("train", "val", "test"))
    if sizes != tuple(row[:3]):
        ok = False
        found.append(f"split sizes {sizes} differ from the tasks row {tuple(row[:3])}")
    digest = hashlib.sha256(raw).hexdigest()
    if row[3] and digest != row[3]:
        ok = False
        found.append(f"{path.name} sha256 {digest[:12]}… differs from the tasks row "
                     f"{row[3][:12]}…: the results were made with another split")
    if ok:
        found.append(f"{path.name}: train/val/test {sizes[0]}/{sizes[1]}/{sizes[2]} cases, "
                     "disjoint, sizes and sha256 equal to the tasks row")
    if data_root is not None:
        ok = _check_images(task, Path(data_root), split, found) and ok
    return ok, found


def _check_images(task: str, data_root: Path, split: dict, found: list[str]) -> bool:
    from medbench import catalog

    info = catalog.TASKS.get(task)
    folder = next((p for p in sorted(data_root.glob("Task*")) if info and p.name.lower()
                   .endswith(info.name.lower())), None) if data_root.is_dir() else None
    if folder is None:
        found.append(f"images not checked: no Task folder for {task} under {data_root}")
        return True
    digests: dict[str, tuple[str, str]] = {}
    missing, repeated = [], []
    for part, cases in split.items():
        for case in cases:
            image = folder / "imagesTr" / f"{case}.nii.gz"
            if not image.is_file():
                missing.append(case)
                continue
            d = hashlib.sha256(image.read_bytes()).hexdigest()
            if d in digests and digests[d][0] != part:
                repeated.append(f"{digests[d][1]} ({digests[d][0]}) = {case} ({part})")
            digests.setdefault(d, (part, case))
    if missing:
        found.append(f"{len(missing)} case(s) of the split have no image: {missing[:3]}")
    if repeated:
        found.append(f"{len(repeated)} image(s) repeated across splits: {repeated[:3]}")
    if not missing and not repeated:
        found.append(f"{len(digests)} image files hashed: none repeated across splits")
    return not missing and not repeated


def _q(values: list[float], q: float) -> float:
    import numpy as np

    return float(np.quantile(np.asarray(values, float), q))


def _fmt(x: float | None, digits: int = 3) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def summary_lines(v: TaskValidation) -> list[str]:
    """The figures of one task as Markdown bullet points (the datasheet quotes these)."""
    m = v.metric
    of = f" ({v.label})" if v.label else ""
    out = [f"- {v.n_archs} architectures{of}, {v.n_rows} evaluations; val {m} over "
           f"architectures (mean over seeds): min {_fmt(min(v.val))}, median "
           f"{_fmt(_q(v.val, .5))}, max {_fmt(max(v.val))}" if v.val else f"- no {m} results"]
    if v.seed_std:
        spread = _q(v.val, .75) - _q(v.val, .25)
        out.append(f"- seed-to-seed std of val {m}: median {_fmt(_q(v.seed_std, .5))}, max "
                   f"{_fmt(max(v.seed_std))} over {len(v.seed_std)} architectures with 2+ "
                   f"seeds (interquartile range between architectures: {_fmt(spread)})")
    if v.spearman is not None:
        out.append(f"- val-vs-test rank agreement over {v.n_test_ranked} architectures: "
                   f"Spearman {_fmt(v.spearman)}, Kendall tau {_fmt(v.kendall)}; the "
                   f"validation-selected architecture ranks {v.selected_test_rank} of "
                   f"{v.n_test_ranked} on test")
    out += failure_lines(v)
    out += width_lines(v)
    verdict = {True: "passed", False: "FAILED", None: "not checked"}[v.hygiene_ok]
    out.append(f"- split hygiene {verdict}: " + "; ".join(v.hygiene))
    out.append(f"- subgroups: {v.subgroups}")
    return out


def _plot(v: TaskValidation, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    twins = _width_twins(_archs(v))
    panels = 3 + bool(v.curves) + bool(twins)
    fig, ax = plt.subplots(1, panels, figsize=(13 + 4 * (panels - 3), 3.8))
    ax[0].hist(v.val, bins=min(20, max(5, len(v.val))), color="#4878a8")
    ax[0].set(title=f"val {v.metric} over architectures", xlabel=f"mean val {v.metric}",
              ylabel="architectures")
    pairs = [(a, b) for a, b in zip(v.val, v.test) if b == b]
    if pairs:
        xs, ys = zip(*pairs)
        ax[1].scatter(xs, ys, s=14, color="#4878a8")
        lo, hi = min(xs + ys), max(xs + ys)
        ax[1].plot([lo, hi], [lo, hi], color="grey", lw=0.8, ls="--")
    title = "val vs test" + (f" (Kendall tau {v.kendall:.2f})" if v.kendall is not None else "")
    ax[1].set(title=title, xlabel=f"mean val {v.metric}", ylabel=f"mean test {v.metric}")
    if v.seed_std:
        ax[2].hist(v.seed_std, bins=min(20, max(5, len(v.seed_std))), color="#a86848")
    ax[2].set(title="seed-to-seed std", xlabel=f"std of val {v.metric} over seeds",
              ylabel="architectures")
    if v.curves:
        for _, _, c in sorted(v.curves, key=lambda r: r[2][-1] < LOW):  # failed runs on top
            bad = c[-1] < LOW
            ax[3].plot(range(1, len(c) + 1), c, lw=1.2 if bad else 0.6, alpha=0.9 if bad else
                       0.35, color="#c03030" if bad else "grey")
        ax[3].axhline(LOW, color="black", lw=0.6, ls=":")
        ax[3].set(title=f"learning curves (red: final val {v.metric} < {LOW})",
                  xlabel="epoch", ylabel=f"val {v.metric}")
    if twins:  # one colour per pair, the narrower first level dashed
        import itertools

        colours = itertools.cycle(plt.rcParams["axes.prop_cycle"].by_key()["color"])
        for ids, colour in zip(twins.values(), colours):
            for i, a in enumerate(ids):
                for arch, _, c in v.curves:
                    if arch == a:
                        ax[4].plot(range(1, len(c) + 1), c, color=colour, lw=0.9,
                                   ls="--" if i < len(ids) - 1 else "-")
        ax[4].axhline(LOW, color="black", lw=0.6, ls=":")
        ax[4].set(title="same but first-level width (dashed: narrower)", xlabel="epoch",
                  ylabel=f"val {v.metric}")
    fig.suptitle(v.task + (f" ({v.label})" if v.label else ""))
    fig.tight_layout()
    fig.savefig(path, dpi=90, metadata={"Software": None})
    plt.close(fig)


def write_report(store, out: str | Path, splits_dir: str | Path | None = None,
                 data_root: str | Path | None = None) -> Path:
    """Write ``validation.md`` and one PNG per task under ``out``; returns the Markdown path."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    store.views("evaluations")
    tasks = [t for (t,) in store.fetchall("SELECT DISTINCT task FROM evaluations ORDER BY 1")]
    if not tasks:
        raise MedbenchError("no evaluation rows in the tables: nothing to report")
    lines = ["# medbench validation report", "",
             "Generated by `medbench report validation` from the tables; see "
             "`medbench/validation_report.py` for what each figure means.", ""]
    for task in tasks:
        hygiene = split_hygiene(store, task, splits_dir, data_root)
        for space, method in groups(store, task):
            v = validate_task(store, task, space=space, method=method, hygiene=hygiene)
            png = f"{task.replace('/', '_')}-{space}-{method}.png"
            _plot(v, out / png)
            lines += [f"## {task}, {v.label} (metric: {v.metric})", "", *summary_lines(v),
                      "", f"![{task} {v.label}]({png})", ""]
    md = out / "validation.md"
    md.write_text("\n".join(lines))
    return md
