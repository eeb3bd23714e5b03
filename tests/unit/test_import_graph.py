"""The adapter's static import graph has no cycle; the graph builder counts every import statement."""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path

from import_graph import import_cycles, import_graph

ROOT = Path(__file__).resolve().parents[2]
ADAPTER = ROOT / "adapter_image" / "baton_adapter"
CONTROL_PLANE = ("baton", "flows", "tasks", "providers")


def _package(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root / "pkg"


def test_the_adapter_has_no_import_cycle() -> None:
    cycles = import_cycles(ADAPTER, "baton_adapter")
    assert cycles == [], "import cycles in baton_adapter:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_the_adapter_imports_nothing_of_the_control_plane() -> None:
    offenders = []
    for path in sorted(ADAPTER.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or ""]
            else:
                continue
            offenders += [f"{path.relative_to(ROOT)}: {n}" for n in names if n.split(".")[0] in CONTROL_PLANE]
    assert offenders == []


def test_imports_under_type_checking_and_in_functions_make_edges(tmp_path: Path) -> None:
    pkg = _package(tmp_path, {
        "pkg/__init__.py": "from .a import A\n",
        "pkg/a.py": """
            from typing import TYPE_CHECKING
            if TYPE_CHECKING:
                from .b import B
            class A: ...
        """,
        "pkg/b.py": """
            import json
            def late():
                from . import a
                return a
        """,
        "pkg/sub/__init__.py": "",
        "pkg/sub/c.py": """
            from .. import b
            import pkg.a
            from ..sub import d
            from . import name_in_init
        """,
        "pkg/sub/d.py": "from ..missing import x\n",
    })
    graph = import_graph(pkg, "pkg")
    assert graph == {
        "pkg": {"pkg.a"},
        "pkg.a": {"pkg.b"},
        "pkg.b": {"pkg.a"},
        "pkg.sub": set(),
        "pkg.sub.c": {"pkg.a", "pkg.b", "pkg.sub", "pkg.sub.d"},
        "pkg.sub.d": {"pkg"},  # an unknown module resolves to the package that would hold it
    }
    assert import_cycles(pkg, "pkg") == [["pkg.a", "pkg.b", "pkg.a"]]


def test_every_module_of_a_tangle_is_on_a_reported_cycle(tmp_path: Path) -> None:
    pkg = _package(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/node.py": "from . import protocols\ndef start():\n    from .management import serve\n",
        "pkg/protocols.py": "from .server import Handler\n",
        "pkg/server.py": "from .exchange import Exchange\n",
        "pkg/exchange.py": "from .server import Handler\nfrom .node import Node\n",
        "pkg/management.py": "from .node import RoutingLocked\n",
        "pkg/config.py": "",
    })
    cycles = import_cycles(pkg, "pkg")
    on_cycles = {m for c in cycles for m in c}
    assert on_cycles == {"pkg.node", "pkg.protocols", "pkg.server", "pkg.exchange", "pkg.management"}
    for cycle in cycles:
        assert cycle[0] == cycle[-1] == min(cycle)
    assert ["pkg.exchange", "pkg.server", "pkg.exchange"] in cycles
    assert ["pkg.management", "pkg.node", "pkg.management"] in cycles


def test_a_dag_has_no_cycles(tmp_path: Path) -> None:
    pkg = _package(tmp_path, {
        "pkg/__init__.py": "from .high import run\n",
        "pkg/high.py": "from .low import x\nfrom . import low\n",
        "pkg/low.py": "import os\n",
    })
    assert import_cycles(pkg, "pkg") == []


def _top_level_imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_the_control_plane_has_no_import_cycle() -> None:
    for package in CONTROL_PLANE:
        cycles = import_cycles(ROOT / package, package)
        assert cycles == [], f"import cycles in {package}:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_dependencies_point_one_way() -> None:
    """flows -> tasks -> providers -> baton, never back; only the CLI (baton/cli) reaches flows and tasks."""
    forbidden = {"baton": {"flows", "tasks", "providers"}, "providers": {"flows", "tasks"}, "tasks": {"flows"}}
    offenders = []
    for package, banned in forbidden.items():
        for path in sorted((ROOT / package).rglob("*.py")):
            if package == "baton" and "cli" in path.relative_to(ROOT / package).parts:
                continue
            offenders += [f"{path.relative_to(ROOT)} imports {name}" for name in _top_level_imports(path) & banned]
    assert offenders == []
