"""Which architectures builds train and measure: the ``unet3d`` and ``unet3d-v2`` standalone
plans, and the architectures a task's results and plan name (torch-free).

Shared by the builders that train (``builders.unet3d``), measure (``builders.hardware``) and
score (``builders.proxies``, ``builders.supernet``), so that they agree on the list.
"""

from __future__ import annotations

from pathlib import Path

from builders.data.msd import SPATIAL
from builders.jobs import Job

__all__ = ["DYNUNET_MEMBER", "DYNUNET_MEMBER_V2", "V2_BANDS", "plan", "plan_v2",
           "architectures_to_measure"]


#: The unet3d architecture that is the nnU-Net-style DynUNet, layer for layer.
DYNUNET_MEMBER = "s1|c32-64-128-256-320|k3-3-3-3-3|b1-1-1-1-1|r0-0-0-0-0"
#: The same in ``unet3d-v2``, whose affine instance norm the DynUNet has too.
DYNUNET_MEMBER_V2 = DYNUNET_MEMBER + "|n2-2-2-2-2"


def plan(n_archs: int, seeds: list[int], reference: bool, sample_seed: int = 0) -> list[Job]:
    """The version-1 (``unet3d``) jobs: ``n_archs`` architectures stratified over variant and
    size, times seeds.

    Every variant (first-level stride x levels) gets an equal share. Within a variant, 4,000
    architectures are drawn uniformly, those costing more than the nnU-Net-style DynUNet
    (33.2 GMACs at 48x64x48) are set aside, and the share is picked at evenly spaced points
    of log-MACs between the variant's cheapest and dearest, so networks from tens of MMACs
    to DynUNet's size are all present. A uniform sample would not do: most of the space
    is full-resolution 5x5x5 networks of 100+ GMACs. Depends only on the arguments.
    """
    import math

    import numpy as np

    from medbench.spaces import unet3d

    rng = np.random.default_rng(sample_seed)
    cap = unet3d.macs(unet3d.from_id(DYNUNET_MEMBER), 1, 3, SPATIAL)
    variants = unet3d.VARIANTS
    shares = [n_archs // len(variants) + (i < n_archs % len(variants))
              for i in range(len(variants))]
    chosen = []
    for i, ((stride, depth), k) in enumerate(zip(variants, shares)):
        lo = sum(32 ** d for _, d in variants[:i])
        pool = {}
        for index in rng.integers(lo, lo + 32 ** depth, size=4000):
            arch = unet3d.decode(int(index))
            m = unet3d.macs(arch, 1, 3, SPATIAL)
            if m <= cap:
                pool[arch] = math.log(m)
        _pick_spaced(sorted(pool, key=pool.get), pool, k, chosen)
    # Cheapest first, every seed of an architecture together: a partial build finishes
    # whole architectures, and as many as the compute allows.
    chosen.sort(key=lambda a: unet3d.macs(a, 1, 3, SPATIAL))
    jobs = [Job(f"{a.arch_index}-s{s}", {"space": "unet3d", "arch_id": a.arch_id, "seed": s})
            for a in chosen for s in seeds]
    return jobs + (_reference_jobs(seeds) if reference else [])


#: The v2 plan's cost bands: (upper bound in GMACs per forward pass at 48x64x48, share of the
#: architectures). Most architectures cost under 1 GMAC, where a CPU thread trains one in
#: minutes; the first band holds the U-Nets that can answer within a few milliseconds on a
#: 2-core CPU; the last reaches the DynUNet reference (33.2 GMACs).


#: The v2 plan's cost bands: (upper bound in GMACs per forward pass at 48x64x48, share of the
#: architectures). Most architectures cost under 1 GMAC, where a CPU thread trains one in
#: minutes; the first band holds the U-Nets that can answer within a few milliseconds on a
#: 2-core CPU; the last reaches the DynUNet reference (33.2 GMACs).
V2_BANDS = ((0.05, 0.25), (0.3, 0.37), (1.0, 0.21), (4.0, 0.12), (float("inf"), 0.05))


def plan_v2(n_archs: int, seeds: list[int], reference: bool, sample_seed: int = 0
            ) -> list[Job]:
    """The ``unet3d-v2`` jobs: ``n_archs`` architectures stratified over cost bands.

    The architectures up to the DynUNet reference's MACs form a pool: 60,000 draws from each
    stride-2 variant (where the cheapest live) and 20,000 from each stride-1 one. Each
    band of :data:`V2_BANDS` gets its share of ``n_archs`` (rounded, the remainder to the
    widest band), picked at evenly spaced points of log-MACs across the band, the nearest
    not yet taken. Cheapest first, every seed of an architecture together, so a partial
    build finishes whole architectures. Depends only on the arguments.
    """
    import math

    import numpy as np

    from medbench.spaces import unet3d_v2 as space

    rng = np.random.default_rng(sample_seed)
    cap = space.macs(space.from_id(DYNUNET_MEMBER_V2), 1, 3, SPATIAL)
    pool: dict = {}
    for i, (stride, depth) in enumerate(space.VARIANTS):
        lo = sum(space.n_per_level() ** d for _, d in space.VARIANTS[:i])
        size = space.n_per_level() ** depth
        for index in rng.integers(lo, lo + size, size=60000 if stride == 2 else 20000):
            arch = space.decode(int(index))
            m = space.macs(arch, 1, 3, SPATIAL)
            if m <= cap:
                pool[arch] = math.log(m)
    counts = [round(n_archs * share) for _, share in V2_BANDS]
    counts[1] += n_archs - sum(counts)
    chosen, lower, short = [], 0.0, 0
    for (upper, _), k in zip(V2_BANDS, counts):
        band = sorted((a for a, m in pool.items() if lower < math.exp(m) / 1e9 <= upper),
                      key=pool.get)
        lower = upper
        k, short = min(k + short, len(band)), max(k + short - len(band), 0)  # to the next
        if k:
            _pick_spaced(band, pool, k, chosen)
    chosen.sort(key=lambda a: pool[a])
    jobs = [Job(f"{a.arch_index}-s{s}", {"space": space.NAME, "arch_id": a.arch_id, "seed": s})
            for a in chosen for s in seeds]
    return jobs + (_reference_jobs(seeds) if reference else [])


def _pick_spaced(archs: list, log_macs: dict, k: int, chosen: list) -> None:
    """Append to ``chosen`` the ``k`` architectures of ``archs`` (sorted by cost) nearest to
    evenly spaced points of log-MACs between the cheapest and the dearest, each the nearest
    not taken yet."""
    import numpy as np

    logs = np.array([log_macs[a] for a in archs])
    for target in np.linspace(logs[0], logs[-1], k):
        j = int(np.abs(logs - target).argmin())
        while archs[j] in chosen:  # the nearest not yet taken
            j = j + 1 if j + 1 < len(archs) else 0
        chosen.append(archs[j])


def _reference_jobs(seeds: list[int]) -> list[Job]:
    from medbench.spaces import dynunet

    return [Job(f"dynunet-s{s}", {"space": "dynunet", "arch_id": dynunet.ARCH_ID, "seed": s})
            for s in seeds]


def architectures_to_measure(tables: str | None, task: str, plan_archs: int,
                             space: str | None = None, method: str | None = None
                             ) -> list[tuple]:
    """(space, arch_id) with results for ``task`` in ``tables`` (by ``method`` only, if given),
    plus the standalone plan of ``space`` (``unet3d-v2`` unless ``unet3d`` is asked for);
    only ``space``'s if given."""
    out = set()
    if tables and Path(tables).is_dir():
        import medbench

        with medbench.open(tables) as store:
            out |= set(store.fetchall(
                f'SELECT DISTINCT space, arch_id FROM "{store.view("evaluations", task)}" '
                "WHERE task = ? AND (? IS NULL OR method = ?)", [task, method, method]))
    if plan_archs:
        make = plan if space == "unet3d" else plan_v2
        out |= {(j.args["space"], j.args["arch_id"]) for j in make(plan_archs, [0], True)}
    return sorted(a for a in out if space is None or a[0] == space)
