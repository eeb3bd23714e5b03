"""The static import graph of a package, and the cycles in it (a test helper, not a test module).

Every ``import``/``from`` statement of every module counts, wherever it stands: at the top, inside a
function, under ``if TYPE_CHECKING:``. A cycle a type checker or a lazy import hides today is one refactoring
away from an ``ImportError`` at start-up, and it couples the modules on it as tightly as a real one.

Only imports between modules of the package itself make edges. ``from . import x`` points at the submodule
``x`` when there is one, else at the package; ``from .a import b`` points at ``a.b`` when that is a
submodule, else at ``a``. Importing a submodule does not count as importing its parent packages (their
``__init__`` runs, but a package that imports its own submodules would otherwise always be on a cycle).
"""

from __future__ import annotations

import ast
from pathlib import Path

__all__ = ["import_cycles", "import_graph"]


def _module_names(package_dir: Path, package_name: str) -> dict[str, Path]:
    """Map every module of the package (``__init__`` as the package's own name) to its file."""
    modules: dict[str, Path] = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = list(path.relative_to(package_dir).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join([package_name, *parts])] = path
    return modules


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The longest prefix of dotted ``name`` that is a module of the package."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in modules:
            return candidate
        parts.pop()
    return None


def _imported(module: str, path: Path, tree: ast.AST, modules: dict[str, Path]) -> set[str]:
    """Modules of the package that ``module`` (read from ``path``) imports anywhere in its body."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = module.split(".")
                if not is_package:
                    anchor.pop()  # a module's relative imports start from its package
                if node.level > 1:
                    anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            else:
                base = node.module or ""
            names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        else:
            continue
        for name in names:
            target = _resolve(name, modules)
            if target is not None and target != module:
                found.add(target)
    return found


def import_graph(package_dir: Path, package_name: str) -> dict[str, set[str]]:
    """``{module: modules of the same package it imports}`` for every module under ``package_dir``."""
    modules = _module_names(package_dir, package_name)
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        graph[module] = _imported(module, path, tree, modules)
    return graph


def _strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm (iterative), components in a deterministic order."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(sorted(component))
    return components


def _shortest_cycle(graph: dict[str, set[str]], inside: set[str], start: str) -> list[str]:
    """A shortest cycle through ``start`` within ``inside`` (its strongly connected component), closed."""
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for child in sorted(graph[node] & inside):
                if child == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return [*reversed(path), start]
                if child not in previous:
                    previous[child] = node
                    following.append(child)
        frontier = following
    raise AssertionError(f"{start} is on no cycle within {sorted(inside)}")  # unreachable for a component


def _rotated(cycle: list[str]) -> list[str]:
    """The closed ``cycle`` rotated to start at its smallest module (one spelling per cycle)."""
    ring = cycle[:-1]
    first = ring.index(min(ring))
    ring = ring[first:] + ring[:first]
    return [*ring, ring[0]]


def import_cycles(package_dir: Path, package_name: str) -> list[list[str]]:
    """Import cycles among the modules of a package, each closed: ``[a, b, ..., a]``; empty for a DAG.

    For every module on a cycle, a shortest cycle through it is reported (duplicates dropped, each rotated to
    start at its smallest module, sorted), so each tangle shows every module on it without enumerating all
    of its possibly exponentially many cycles.
    """
    graph = import_graph(package_dir, package_name)
    cycles: set[tuple[str, ...]] = set()
    for component in _strongly_connected(graph):
        if len(component) > 1:
            inside = set(component)
            cycles.update(tuple(_rotated(_shortest_cycle(graph, inside, m))) for m in component)
    return [list(c) for c in sorted(cycles)]
