"""The package's shape: no import cycle, no import from a later pipeline stage into an earlier one.

The pipeline is ``io -> simulate -> model -> (data, train, evaluate) -> store -> pick -> classes
-> query -> benchmark -> campaign -> segment -> report -> demo -> cli`` over a foundation (``errors``,
``geometry``, ``defaults``, ``files``) that every stage may use (docs/architecture.md). Imports
inside ``if TYPE_CHECKING:`` are for annotations only and are not counted; imports inside
functions are.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = {"cosnet_index": ROOT / "cosnet_index", "cosnet_index.cli": ROOT / "cli"}

# stage of each top-level part of the package: a module may import its own stage and earlier ones
STAGES = [
    {"", "errors", "geometry", "defaults", "files", "frozen", "weights"},
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


def _runtime_imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement outside ``if TYPE_CHECKING:`` blocks."""
    out: list[ast.Import | ast.ImportFrom] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import | ast.ImportFrom):
            out.append(node)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return out


def import_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports (``from pkg import name`` counts ``pkg.name``
    when that is a module, else ``pkg``)."""
    modules = _modules()
    graph: dict[str, set[str]] = defaultdict(set)
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in _runtime_imports(ast.parse(path.read_text())):
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
