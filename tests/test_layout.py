"""The package's shape: no import cycle, no import from a later pipeline stage into an earlier one.

The pipeline is ``io -> simulate -> model -> (data, train, evaluate) -> store -> pick -> classes
-> query -> benchmark -> campaign -> segment -> report -> demo -> cli`` over a foundation
(``errors``, ``geometry``, ``defaults``, ``files``, ``frozen``) that every stage may use
(docs/architecture.md). Every import statement counts: at module level, inside functions, and
inside ``if TYPE_CHECKING:`` (a cycle hidden there, or in a function, is still a cycle).
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = {"cosnet_index": ROOT / "cosnet_index", "cosnet_index.cli": ROOT / "cli"}

# stage of each top-level part of the package: a module may import its own stage and earlier ones
STAGES = [
    {"", "errors", "geometry", "defaults", "files", "frozen", "threads", "weights"},
    {"io"},
    {"simulate"},
    {"model"},
    {"data"},
    {"train", "_template_matching", "evaluate"},
    {"store", "migrations"},
    {"pick"},  # candidates for index without coordinates: detectors + the store's indexer
    {"classes"},
    {"query"},
    {"benchmark"},  # evaluate plus the query scores: after both
    {"campaign"},  # training chunks scored on the hard benchmark's tables
    {"segment"},
    {"report"},
    {"demo"},
    {"cli"},
]
RANK = {part: rank for rank, parts in enumerate(STAGES) for part in parts}


def _modules() -> dict[str, Path]:
    found = {}
    for prefix, folder in FOLDERS.items():
        for path in folder.rglob("*.py"):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join([prefix, *parts])] = path
    return found


def _imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement of a module: top level, in functions, under ``TYPE_CHECKING``."""
    return [node for node in ast.walk(tree) if isinstance(node, ast.Import | ast.ImportFrom)]


def import_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports (``from pkg import name`` counts ``pkg.name``
    when that is a module, else ``pkg``)."""
    modules = _modules()
    graph: dict[str, set[str]] = defaultdict(set)
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in _imports(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*up, base] if base else up)
                targets = [
                    f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                    for a in node.names
                ]
            graph[name] |= {t for t in targets if t in modules and t != name}
    return graph


def _stage(module: str) -> int:
    parts = module.split(".")
    return RANK[parts[1] if len(parts) > 1 else ""]


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_every_part_of_the_package_has_a_stage() -> None:
    assert {m.split(".")[1] for m in _modules() if "." in m} <= set(RANK)


def test_no_import_cycle() -> None:
    assert _cycles(import_graph()) == []


def test_the_cycle_check_sees_hidden_imports() -> None:
    """A cycle closed by a function-level or a ``TYPE_CHECKING`` import is found."""
    source = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from pkg.b import B\n"
        "def f():\n    from pkg.c import C\n"
    )
    found = {node.module for node in _imports(ast.parse(source))}
    assert {"pkg.b", "pkg.c"} <= found
    assert _cycles({"a": {"b"}, "b": {"a"}, "c": set()}) == [["a", "b"]]


# The imaging settings and the records they are made of: they import nothing of the code that
# images with them (the old cycle ran imaging -> _imaging_fourier / _projection -> imaging)
SETTINGS_LEAVES = {
    "cosnet_index.simulate.microscope.imaging",
    "cosnet_index.simulate.microscope.presets",
    "cosnet_index.simulate.microscope.ctf",
    "cosnet_index.simulate.microscope.tilt_scheme",
    "cosnet_index.simulate.config",
}


def _reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for target in graph.get(todo.pop(), ()):
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


@pytest.mark.parametrize("module", sorted(SETTINGS_LEAVES))
def test_imaging_settings_import_only_their_records(module: str) -> None:
    graph = import_graph()
    assert module in graph or module in _modules()
    foundation = {f"cosnet_index.{part}" for part in STAGES[0] if part}
    assert _reachable(graph, module) <= SETTINGS_LEAVES | foundation


def test_no_import_from_a_later_stage() -> None:
    graph = import_graph()
    backwards = sorted(
        f"{module} -> {target}"
        for module, targets in graph.items()
        for target in targets
        if _stage(target) > _stage(module)
    )
    assert backwards == []


def test_the_graph_sees_imports() -> None:
    """The checks above would pass on an empty graph: make sure it is not one."""
    graph = import_graph()
    assert "cosnet_index.store.tables" in graph["cosnet_index.store.store"]
    assert "cosnet_index.query" in graph["cosnet_index.cli.query"]  # a lazy import counts


def test_no_sql_outside_the_store() -> None:
    """Only ``store/`` opens SQL sessions or connections and builds queries; the rest of the
    package asks typed ``Store`` methods (``store/catalog.py``)."""
    import re

    sql = re.compile(
        r"\bsqlalchemy\b|\.session\(\)|\.engine\b|\bselect\(|\bSession\b|read_sql|execute\("
    )
    offenders = []
    for name, path in _modules().items():
        if name.startswith(("cosnet_index.store", "cosnet_index.migrations")):
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if sql.search(line):
                offenders.append(f"{name}:{number}: {line.strip()}")
    assert offenders == []


# simulate/ from what is imaged to what a user reads: a part imports its own modules and parts
# of a lower rank only (docs/architecture.md, "The simulator")
SIMULATE_RANKS = [
    {"_fourier", "_pose", "microscope", "molecules"},  # helpers, parameters, what is imaged
    {"config"},  # the fast path's recipe (reads microscope.ctf)
    {"specimen", "reconstruction"},  # where molecules sit; what comes out
    {"subtomograms", "tomogram", "split"},  # the entry points
    {"dataset"},  # datasets of subtomograms
    {""},  # simulate/__init__.py: the public names
]


def _simulate_rank(module: str) -> tuple[str, int]:
    parts = module.split(".")
    part = parts[2] if len(parts) > 2 else ""
    return part, next(k for k, names in enumerate(SIMULATE_RANKS) if part in names)


def test_the_simulator_imports_only_downward() -> None:
    graph = import_graph()
    upward = []
    for module, targets in graph.items():
        if not module.startswith("cosnet_index.simulate"):
            continue
        part, rank = _simulate_rank(module)
        for target in targets:
            if not target.startswith("cosnet_index.simulate"):
                continue
            target_part, target_rank = _simulate_rank(target)
            if target_part != part and target_rank >= rank:
                upward.append(f"{module} -> {target}")
    assert upward == []
    parts = {m.split(".")[2] for m in _modules() if m.startswith("cosnet_index.simulate.")}
    assert parts <= set().union(*SIMULATE_RANKS)  # every part has a rank
