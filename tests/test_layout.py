"""The code's layout, read from the source (nothing imported): no import circles, no private
names imported across modules, pure spaces without torch, builders that do not import each
other."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("medbench", "builders")


def _modules() -> dict[str, Path]:
    out = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


MODULES = _modules()


def _runtime_imports(path: Path, name: str) -> list[tuple[str, str]]:
    """(module, imported name or '') of every import that runs (``if TYPE_CHECKING:`` blocks
    left out), at module level or inside functions."""
    tree = ast.parse(path.read_text())
    skip = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
            and getattr(node.test, "id", getattr(node.test, "attr", None)) == "TYPE_CHECKING"
            for n in ast.walk(node)}
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            out += [(a.name, "") for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            for a in node.names:
                full = f"{base}.{a.name}"
                out.append((full, "") if full in MODULES else (base, a.name))
    return out


def _graph() -> dict[str, set[str]]:
    return {m: {t for t, _ in _runtime_imports(p, m) if t in MODULES and t != m}
            for m, p in MODULES.items()}


def test_no_import_circles():
    graph, index, low, stack, on, cycles = _graph(), {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    assert cycles == []


def test_no_private_name_is_imported_from_another_module():
    bad = [(m, t, n) for m, p in MODULES.items() for t, n in _runtime_imports(p, m)
           if t in MODULES and t != m and (n or t.rpartition(".")[2]).startswith("_")
           and not (n or t.rpartition(".")[2]).startswith("__")]
    assert bad == []


def test_pure_spaces_need_no_torch_and_never_import_their_networks():
    for m, p in MODULES.items():
        if m.startswith("medbench.spaces") and not m.startswith("medbench.spaces.nets"):
            names = [t for t, _ in _runtime_imports(p, m)]
            assert not [t for t in names if t.split(".")[0] in ("torch", "monai")
                        or t.startswith("medbench.spaces.nets")], m


def test_builders_do_not_import_each_other():
    """A top-level module of ``builders/`` is one builder (or a command such as ``release``);
    what several share lives a floor below (``builders.measure``, ``builders.data``, and
    ``builders.jobs``, ``builders.release``, ``builders.plans``)."""
    shared = {"builders.jobs", "builders.release", "builders.plans"}
    top = {m for m, p in MODULES.items() if p.parent == ROOT / "builders"
           and p.name != "__init__.py"} - shared
    # the recipe probe tries the unet3d builder's own recipe before a build: it reads it
    allowed = {("builders.recipe_probe", "builders.unet3d")}
    for m in top:
        imported = {t for t, _ in _runtime_imports(MODULES[m], m)
                    if (m, t) not in allowed}
        assert not (imported & top) - {m}, (m, sorted((imported & top) - {m}))
