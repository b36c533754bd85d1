"""A MedNNS-style meta-space over a model zoo, judged leave one data set out from the tables.

    python -m builders.metaspace [--tables tables] [--space mednns] [--method supernet]
                                 [--seeds 0 1 2 3 4] [--out reports/metaspace]

MedNNS recommends a network for a new data set from a learned "meta-space" in which data sets
and subnets are embedded together (rank, FID and performance losses). Its training code is
not public; this is the reconstruction ``../shared/REFERENCE.md`` gives (after TANS, which
MedNNS extends), trained on the released tables only:

- data set encoder: a linear map of the set's mean encoder feature (``task_features``, the
  features its ``task_distances`` came from) to ``--dims``, L2-normalised (TANS's query
  encoder averages a linear map of each image's features: the same map of the mean);
- subnet encoder: a linear map of the one-hot of the subnet's MedNNS ``(d, e, w)`` encoding,
  L2-normalised; the score of a subnet for a set is the dot product of their embeddings;
- performance loss: sigmoid(linear([set, subnet])) regressed on the subnet's validation
  metric on that set (MSE);
- rank loss: for random pairs of subnets on one set, hinge ``max(0, margin - (s_i - s_j))``
  where subnet i has the higher validation metric;
- FID loss: the distance between two sets' embeddings regressed on their Fréchet distance
  divided by the largest among the training sets (MSE).

For every set with results, the meta-space is trained on the others (``--seeds`` times) and
ranks the zoo for the held-out set by score; the report gives the held-out set's *test*
metric of the top-ranked subnet and Kendall tau between the scores and the test metric over
the zoo, beside the rule ``medbench recommend`` uses (the nearest other set's validation
ranking), the mean validation ranking of all other sets, a random subnet (mean) and the best
subnet. Output: ``metaspace.json`` (every figure, with how it was made) and ``metaspace.md``
under ``--out``. Needs torch (the build extra); reads no image.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from builders.jobs import at_least
from medbench.errors import MedbenchError

__all__ = ["Zoo", "load_zoo", "topology", "train", "scores", "leave_one_out", "main",
           "VERSION"]

VERSION = "1.0"
BUILDER = "builders.metaspace"


def topology(space: str, arch_id: str) -> np.ndarray:
    """The subnet encoder's input: the one-hot of MedNNS's ``(d, e, w)`` encoding, three
    choices per slot (stem depth 0 or 2, stage depths 0-2, 18 expand ratios, 6 widths)."""
    if space != "mednns":
        raise MedbenchError(f"the meta-space encodes mednns subnets only, not {space}")
    from medbench.spaces import mednns

    enc = mednns.from_id(arch_id).mednns_encoding()
    slots = list(enc["d"]) + [mednns.EXPANDS.index(e) for e in enc["e"]] + list(enc["w"])
    out = np.zeros((len(slots), 3))
    out[np.arange(len(slots)), slots] = 1.0
    return out.ravel()


@dataclass
class Zoo:
    """The zoo of one space and training method over the sets that have features."""
    space: str
    method: str
    metric: str
    distance_method: str
    tasks: list[str]
    arch_ids: list[str]          # sorted; results on every task
    topology: np.ndarray         # (archs, 87)
    val: np.ndarray              # (tasks, archs), mean over seeds
    test: np.ndarray             # (tasks, archs)
    features: np.ndarray         # (tasks, features): each set's mean encoder feature
    fid: np.ndarray              # (tasks, tasks), NaN where not measured
    run_ids: list[str] = field(default_factory=list)


def load_zoo(store, space: str = "mednns", method: str = "supernet") -> Zoo:
    """The zoo as arrays: the architectures with ``method`` results on every set that has
    them and has encoder features (the features' method covering most such sets)."""
    from medbench.query import task_metric

    space = store.resolve_space(space)
    store.views("evaluations", "task_features", "task_distances")
    with_results = [t for (t,) in store.fetchall(
        "SELECT DISTINCT task FROM evaluations WHERE space = ? AND method = ? ORDER BY 1",
        [space, method])]
    row = store.fetchone(
        "SELECT method, count(*) FROM task_features WHERE task IN (SELECT unnest(?)) "
        "GROUP BY method ORDER BY 2 DESC, method DESC LIMIT 1", [with_results])
    if row is None or row[1] < 2:
        raise MedbenchError(f"the meta-space needs two or more sets with {space} {method} "
                            f"results and encoder features (results: "
                            f"{', '.join(with_results) or 'none'})")
    dmethod = row[0]
    feats = dict(store.fetchall("SELECT task, feature_mean FROM task_features WHERE method = ? "
                                "AND task IN (SELECT unnest(?))", [dmethod, with_results]))
    tasks = sorted(feats)
    metrics = {task_metric(store, t) for t in tasks}
    if len(metrics) != 1:
        raise MedbenchError(f"the sets' metrics differ ({', '.join(sorted(metrics))})")
    metric = metrics.pop()
    rows = store.fetchall(f"""
        SELECT task, arch_id, avg(val_{metric}), avg(test_{metric})
        FROM evaluations WHERE space = ? AND method = ? AND task IN (SELECT unnest(?))
        GROUP BY ALL""", [space, method, tasks])
    per_task: dict[str, dict[str, tuple]] = {t: {} for t in tasks}
    for t, a, v, te in rows:
        if v is not None and te is not None:
            per_task[t][a] = (v, te)
    arch_ids = sorted(set.intersection(*(set(d) for d in per_task.values())))
    if len(arch_ids) < 2:
        raise MedbenchError(f"fewer than two {space} architectures have {method} results on "
                            f"every one of {', '.join(tasks)}")
    val = np.array([[per_task[t][a][0] for a in arch_ids] for t in tasks])
    test = np.array([[per_task[t][a][1] for a in arch_ids] for t in tasks])
    fid = np.full((len(tasks), len(tasks)), np.nan)
    for a, b, d in store.fetchall("SELECT task_a, task_b, distance FROM task_distances "
                                  "WHERE method = ?", [dmethod]):
        if a in tasks and b in tasks:
            fid[tasks.index(a), tasks.index(b)] = d
    run_ids = [r for (r,) in store.fetchall(
        "SELECT DISTINCT run_id FROM evaluations WHERE space = ? AND method = ? AND task IN "
        "(SELECT unnest(?)) ORDER BY 1", [space, method, tasks])]
    return Zoo(space, method, metric, dmethod, tasks, arch_ids,
               np.stack([topology(space, a) for a in arch_ids]), val, test,
               np.array([feats[t] for t in tasks], dtype=float), fid, run_ids)


@dataclass(frozen=True)
class Setting:
    dims: int = 32
    steps: int = 500
    lr: float = 1e-2
    margin: float = 0.05
    pairs: int = 2048        # subnet pairs per set and step for the rank loss


def _model(n_features: int, n_topology: int, dims: int):
    from torch import nn

    class MetaSpace(nn.Module):
        def __init__(self):
            super().__init__()
            self.query = nn.Linear(n_features, dims)
            self.subnet = nn.Linear(n_topology, dims)
            self.performance = nn.Linear(2 * dims, 1)

        def embed(self, features, topo):
            from torch.nn.functional import normalize

            return normalize(self.query(features), dim=-1), normalize(self.subnet(topo), dim=-1)

    return MetaSpace()


def _inputs(zoo: Zoo):
    import torch

    f = zoo.features / np.linalg.norm(zoo.features, axis=1, keepdims=True)
    return torch.tensor(f, dtype=torch.float32), torch.tensor(zoo.topology, dtype=torch.float32)


def train(zoo: Zoo, train_tasks: list[int], seed: int, setting: Setting = Setting()):
    """The meta-space trained on the sets ``train_tasks`` (indices into ``zoo.tasks``)."""
    import torch
    from torch.nn.functional import mse_loss

    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    feats, topo = _inputs(zoo)
    model = _model(feats.shape[1], topo.shape[1], setting.dims)
    opt = torch.optim.Adam(model.parameters(), lr=setting.lr)
    idx = torch.tensor(train_tasks)
    val = torch.tensor(zoo.val[train_tasks], dtype=torch.float32)
    fid = zoo.fid[np.ix_(train_tasks, train_tasks)]
    pair_a, pair_b = np.triu_indices(len(train_tasks), 1)
    known = ~np.isnan(fid[pair_a, pair_b])
    target = torch.tensor(fid[pair_a, pair_b][known] / np.nanmax(fid[pair_a, pair_b])
                          if known.any() else [], dtype=torch.float32)
    pair_a, pair_b = torch.tensor(pair_a[known]), torch.tensor(pair_b[known])
    n_sets, n_archs = val.shape
    for _ in range(setting.steps):
        q, m = model.embed(feats[idx], topo)
        both = torch.cat([q[:, None].expand(-1, n_archs, -1),
                          m[None].expand(n_sets, -1, -1)], -1)
        loss = mse_loss(torch.sigmoid(model.performance(both)).squeeze(-1), val)
        s = q @ m.t()
        i, j = torch.randint(n_archs, (2, n_sets, setting.pairs), generator=gen)
        sign = torch.sign(val.gather(1, i) - val.gather(1, j))  # 0 for ties: no pair
        gap = (s.gather(1, i) - s.gather(1, j)) * sign
        loss = loss + (torch.relu(setting.margin - gap) * sign.abs()).sum() / \
            sign.abs().sum().clamp(min=1)
        if len(target):
            loss = loss + mse_loss((q[pair_a] - q[pair_b]).norm(dim=-1), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model


def scores(model, zoo: Zoo, task: int) -> np.ndarray:
    """Every zoo subnet's score for set ``task`` (an index into ``zoo.tasks``): higher first."""
    import torch

    feats, topo = _inputs(zoo)
    with torch.no_grad():
        q, m = model.embed(feats[task:task + 1], topo)
        return (q @ m.t())[0].double().numpy()


def _top(score: np.ndarray) -> int:
    """The top-ranked subnet: highest score, ties to the first ``arch_id`` (as recommend)."""
    return int(np.flatnonzero(score == score.max())[0])


def leave_one_out(zoo: Zoo, seeds: list[int], setting: Setting = Setting()) -> list[dict]:
    """Per held-out set: the held-out test metric of each rule's top subnet and Kendall tau of
    each rule's ranking with the held-out test metric over the zoo."""
    from scipy.stats import kendalltau

    out = []
    for t, task in enumerate(zoo.tasks):
        others = [o for o in range(len(zoo.tasks)) if o != t]
        test = zoo.test[t]
        dist = zoo.fid[t, others]
        rules = {}
        if not np.isnan(dist).all():
            near = others[int(np.nanargmin(dist))]
            rules["nearest"] = [zoo.val[near]]
        rules["pooled"] = [zoo.val[others].mean(0)]
        rules["metaspace"] = [scores(train(zoo, others, s, setting), zoo, t) for s in seeds]
        row = {"task": task, "nearest_task": zoo.tasks[near] if "nearest" in rules else None,
               "random": float(test.mean()), "best": float(test.max()),
               "n_archs": len(zoo.arch_ids)}
        for name, runs in rules.items():
            tops = [float(test[_top(r)]) for r in runs]
            taus = [float(kendalltau(r, test).statistic) for r in runs]
            row[name] = {"top1": float(np.mean(tops)), "top1_runs": tops,
                         "tau": float(np.mean(taus)), "tau_runs": taus}
        out.append(row)
    return out


def _fmt_rule(r: dict | None, key: str) -> str:
    if r is None:
        return "–"
    runs = r[f"{key}_runs"]
    return f"{r[key]:.3f}" + (f" ± {np.std(runs):.3f}" if len(runs) > 1 else "")


def report_lines(result: dict) -> list[str]:
    """The Markdown table of a :func:`main` result."""
    lines = [f"Leave one data set out, {result['space']} zoo ({result['method']}), metric "
             f"{result['metric']} (held-out set's test split); meta-space: mean ± sd over "
             f"{len(result['seeds'])} training seeds.", "",
             "| held-out set | nearest | top-1: nearest | pooled | meta-space | random | best "
             "| tau: nearest | pooled | meta-space |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        lines.append(
            f"| {r['task']} | {r['nearest_task'] or '–'} | {_fmt_rule(r.get('nearest'), 'top1')} | "
            f"{_fmt_rule(r['pooled'], 'top1')} | {_fmt_rule(r['metaspace'], 'top1')} | "
            f"{r['random']:.3f} | {r['best']:.3f} | {_fmt_rule(r.get('nearest'), 'tau')} | "
            f"{_fmt_rule(r['pooled'], 'tau')} | {_fmt_rule(r['metaspace'], 'tau')} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m builders.metaspace",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--tables", default="tables")
    ap.add_argument("--space", default="mednns")
    ap.add_argument("--method", default="supernet", help="the zoo's training method")
    ap.add_argument("--seeds", type=at_least(0), nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--steps", type=int, default=Setting.steps)
    ap.add_argument("--dims", type=int, default=Setting.dims)
    ap.add_argument("--out", default="reports/metaspace")
    args = ap.parse_args(argv)
    try:
        import medbench
        import torch

        from builders.jobs import device_name, git_commit

        if args.steps < 1 or args.dims < 1:
            raise MedbenchError("--steps and --dims must be >= 1")
        torch.set_num_threads(1)
        t0 = time.time()
        with medbench.open(args.tables) as store:
            zoo = load_zoo(store, args.space, args.method)
        setting = Setting(dims=args.dims, steps=args.steps)
        rows = leave_one_out(zoo, args.seeds, setting)
        result = {"builder": BUILDER, "builder_version": VERSION, "git_commit": git_commit(),
                  "date": time.strftime("%Y-%m-%d"), "device": device_name("cpu"),
                  "seconds": round(time.time() - t0, 1), "space": zoo.space,
                  "method": zoo.method, "metric": zoo.metric,
                  "distance_method": zoo.distance_method, "tasks": zoo.tasks,
                  "seeds": args.seeds, "setting": setting.__dict__,
                  "evaluation_runs": len(zoo.run_ids), "rows": rows}
    except MedbenchError as e:
        print(f"builders.metaspace: error: {e}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metaspace.json").write_text(json.dumps(result, indent=1) + "\n")
    md = ["# Meta-space against the nearest-dataset rule", "",
          f"`python -m builders.metaspace` (version {VERSION}, {result['date']}, "
          f"{result['seconds']} s on {result['device']}); every figure in "
          "[metaspace.json](metaspace.json).", "", *report_lines(result)]
    (out / "metaspace.md").write_text("\n".join(md) + "\n")
    print("\n".join(report_lines(result)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
