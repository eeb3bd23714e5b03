"""Which runtime a service directory needs and how it starts: pure detection,
one detector per runtime in a registry (users may add their own)."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from baton.errors import UsageError

__all__ = ["Runtime", "detect_runtime", "register_detector"]


@dataclass(frozen=True)
class Runtime:
    """How to build and start a service."""

    kind: str  # "python" | "node" | "dockerfile" | a registered detector's kind
    command: tuple[str, ...]  # what the container runs
    reason: str  # what the detection found, for the user
    requirements: str = ""  # python: requirements.txt or "." (a pyproject to install)
    extra: dict[str, str] = field(default_factory=dict)


Detector = Callable[[Path], "Runtime | None"]
_DETECTORS: list[tuple[str, Detector]] = []


def register_detector(name: str, detector: Detector) -> None:
    """Add a detector; earlier ones win (a user's own Dockerfile always wins)."""
    _DETECTORS.append((name, detector))


def _dockerfile(path: Path) -> Runtime | None:
    if (path / "Dockerfile").is_file():
        return Runtime("dockerfile", (), "the service's own Dockerfile")
    return None


def _python(path: Path) -> Runtime | None:
    requirements = "requirements.txt" if (path / "requirements.txt").is_file() else ""
    pyproject = path / "pyproject.toml"
    if pyproject.is_file():
        try:
            project = tomllib.loads(pyproject.read_text()).get("project", {})
        except tomllib.TOMLDecodeError as exc:
            raise UsageError(f"{pyproject} is not valid TOML ({exc}); fix it so the runtime can be detected.") from None
        scripts = project.get("scripts") or {}
        if scripts:
            name = sorted(scripts)[0]
            return Runtime("python", (name,), f"[project.scripts] {name} in pyproject.toml", requirements or ".")
    for entry in ("app.py", "main.py"):
        if (path / entry).is_file():
            return Runtime("python", ("python3", entry), f"{entry}", requirements)
    for package in sorted(p for p in path.iterdir() if p.is_dir()):
        if (package / "__main__.py").is_file() and (package / "__init__.py").is_file():
            return Runtime("python", ("python3", "-m", package.name), f"package {package.name} with __main__",
                           requirements or ("." if pyproject.is_file() else ""))
    return None


def _node(path: Path) -> Runtime | None:
    manifest = path / "package.json"
    if manifest.is_file():
        try:
            package = json.loads(manifest.read_text())
        except ValueError as exc:
            raise UsageError(f"{manifest} is not valid JSON ({exc}); fix it so the runtime can be detected.") from None
        if (package.get("scripts") or {}).get("start"):
            return Runtime("node", ("npm", "start"), "package.json scripts.start")
        if package.get("main"):
            return Runtime("node", ("node", str(package["main"])), f"package.json main ({package['main']})")
    for entry in ("index.js", "server.js", "app.js"):
        if (path / entry).is_file():
            return Runtime("node", ("node", entry), entry)
    return None


register_detector("dockerfile", _dockerfile)
register_detector("python", _python)
register_detector("node", _node)


def detect_runtime(path: Path) -> Runtime:
    """The first detector that recognises ``path``; a clear error when none does."""
    path = Path(path)
    if not path.is_dir():
        raise UsageError(f"{path} is not a directory; pass the service's source directory with --path.")
    for _, detector in _DETECTORS:
        runtime = detector(path)
        if runtime is not None:
            return runtime
    raise UsageError(
        f"cannot tell how to start the service in {path}: expected a Dockerfile, a Python entry "
        "([project.scripts], app.py, main.py or a package with __main__) or a Node entry (package.json start/main, "
        "index.js, server.js, app.js); add one of them."
    )
