"""The package's architecture, enforced: layers import only downwards, there are no import
circles, and no module imports another module's private (``_name``) helpers.

The layers are declared once, in :data:`LAYERS` (top first), and described in the README's
architecture section. Modules in one row are independent of each other. Every import
counts: module level, inside functions and under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, List, Set, Tuple

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "greensim"

#: top first; each row may import only rows below it (and itself: a sub-package imports
#: its own modules); names in one row are independent of each other.
LAYERS: List[List[str]] = [
    ["cli"],
    ["api", "tools"],
    ["planning"],
    ["assembly"],
    ["policies", "results"],
    ["carbon"],
    ["hardware", "workloads"],
    ["experiment"],
    ["core"],
    ["base"],
]


def _modules() -> Dict[str, Path]:
    out = {}
    for p in PACKAGE.rglob("*.py"):
        parts = ("greensim",) + p.relative_to(PACKAGE).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = p
    return out


MODULES = _modules()


def _resolve(node: ast.ImportFrom, module: str, path: Path) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports_of(module: str) -> List[Tuple[str, str, int]]:
    """(imported greensim module, imported name or '', line) for every import in ``module``."""
    path = MODULES[module]
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(a.name, "", node.lineno) for a in node.names if a.name.split(".")[0] == "greensim"]
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(node, module, path)
            if target.split(".")[0] != "greensim":
                continue
            for a in node.names:
                sub = f"{target}.{a.name}"
                out.append((sub, "", node.lineno) if sub in MODULES else (target, a.name, node.lineno))
    return out


def _layer(module: str) -> Tuple[int, str] | None:
    parts = module.split(".")
    if len(parts) < 2:
        return None  # the top-level facade
    for i, row in enumerate(LAYERS):
        if parts[1] in row:
            return i, parts[1]
    return None


def test_every_subpackage_has_a_layer():
    subs = {m.split(".")[1] for m in MODULES if m.count(".") >= 1}
    missing = {s for s in subs if not any(s in row for row in LAYERS)}
    assert not missing, f"sub-packages without a layer in LAYERS (and the README): {sorted(missing)}"


def test_imports_go_downwards_only():
    bad = []
    for m in MODULES:
        me = _layer(m)
        if me is None:
            continue
        for target, _, line in imports_of(m):
            other = _layer(target)
            if other is None:
                bad.append(f"{m}:{line} imports the top-level package ({target}); import from the layer itself")
            elif other[1] == me[1]:
                continue
            elif other[0] <= me[0]:
                bad.append(
                    f"{m}:{line} imports {target} ({other[1]} is {'beside' if other[0] == me[0] else 'above'} {me[1]})"
                )
    assert not bad, "imports against the layers:\n" + "\n".join(bad)


def _graph() -> Dict[str, Set[str]]:
    g: Dict[str, Set[str]] = {m: set() for m in MODULES}
    for m in MODULES:
        for target, _, _ in imports_of(m):
            if target in MODULES and target != m:
                g[m].add(target)
    return g


def find_cycles(graph: Dict[str, Set[str]]) -> List[List[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on: Set[str] = set()
    out: List[List[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
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
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_circles():
    cycles = find_cycles(_graph())
    assert not cycles, "import circles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_cycle_finder_finds_a_planted_circle():
    g = _graph()
    g["greensim.core.simulation"] = set(g["greensim.core.simulation"]) | {"greensim.api.run"}
    assert any("greensim.core.simulation" in c and "greensim.api.run" in c for c in find_cycles(g))


#: what the command line may import: the api (and results for tables and plots it writes),
#: tools for `greensim profile`, base for errors, and its own modules.
CLI_ALLOWED = ("greensim.api", "greensim.results", "greensim.tools", "greensim.base", "greensim.cli")


def test_cli_calls_only_the_api_results_tools_and_base():
    """The CLI is a thin shell: anything a command needs from lower layers goes through
    greensim.api, so notebooks get the same functions."""
    cli = [m for m in MODULES if m == "greensim.cli" or m.startswith("greensim.cli.")]
    assert "greensim.cli.main" in cli
    bad = [
        f"{m}:{line} imports {target}"
        for m in cli
        for target, _, line in imports_of(m)
        if not any(target == a or target.startswith(a + ".") for a in CLI_ALLOWED)
    ]
    assert not bad, "the CLI imports below the api (add what it needs to greensim.api):\n" + "\n".join(bad)


def test_no_private_names_imported_across_modules():
    bad = [
        f"{m}:{line} imports {name} from {target}"
        for m in MODULES
        for target, name, line in imports_of(m)
        if name.startswith("_") and not name.startswith("__")
    ]
    assert not bad, "private helpers imported from another module (make them public or move them):\n" + "\n".join(bad)


@pytest.mark.parametrize("layer", ["core", "base"])
def test_lowest_layers_import_no_third_party_plotting_or_tables(layer):
    """The engine and the foundation stay light: no pandas, matplotlib or pydantic."""
    bad = []
    for m, p in MODULES.items():
        if m.split(".")[1:2] != [layer]:
            continue
        for node in ast.walk(ast.parse(p.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else ([node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            )
            bad += [f"{m} imports {n}" for n in names if n.split(".")[0] in ("pandas", "matplotlib", "pydantic")]
    assert not bad, bad
