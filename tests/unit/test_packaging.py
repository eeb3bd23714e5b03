"""What the wheel needs: every third-party package the control plane imports is declared, and the files it
reads at run time (Dockerfile templates, prefect.yaml) are package data."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("baton", "flows", "tasks", "providers")


def _imported_top_levels() -> set[str]:
    found: set[str] = set()
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    found |= {alias.name.split(".")[0] for alias in node.names}
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    found.add(node.module.split(".")[0])
    return found - set(sys.stdlib_module_names) - set(PACKAGES) - {"__future__", "dockerfiles"}


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_imported_third_party_package_is_declared() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {_normalise(re.split(r"[<>=!~;\[ ]", d, maxsplit=1)[0]) for d in project["dependencies"]}
    distributions = importlib.metadata.packages_distributions()
    undeclared = {}
    for module in sorted(_imported_top_levels()):
        names = {_normalise(d) for d in distributions.get(module, [module])}
        if not names & declared:
            undeclared[module] = sorted(names)
    assert not undeclared, f"imported but not in [project.dependencies]: {undeclared}"


def test_runtime_files_are_package_data() -> None:
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert "dockerfiles" in setuptools["packages"]["find"]["include"]
    assert (ROOT / "dockerfiles" / "__init__.py").is_file()  # a package, so its data lands in the wheel
    data = setuptools["package-data"]
    assert "prefect.yaml" in data["flows"] and "*.Dockerfile.j2" in data["dockerfiles"]
    assert sorted(p.name for p in (ROOT / "dockerfiles").glob("*.Dockerfile.j2")) == [
        "node.Dockerfile.j2", "python.Dockerfile.j2"]
