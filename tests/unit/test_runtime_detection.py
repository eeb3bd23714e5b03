"""Service runtime detection: each rule, their order, and the error when nothing matches."""

from __future__ import annotations

from pathlib import Path

import pytest

from baton.errors import UsageError
from baton.images.runtime import detect_runtime


def make(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        target = tmp_path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    return tmp_path


@pytest.mark.parametrize(("files", "kind", "command"), [
    ({"Dockerfile": "FROM x", "app.py": ""}, "dockerfile", ()),
    ({"pyproject.toml": "[project]\nname='s'\n[project.scripts]\nserve='s:main'\n", "app.py": ""}, "python", ("serve",)),
    ({"app.py": "", "main.py": ""}, "python", ("python3", "app.py")),
    ({"main.py": ""}, "python", ("python3", "main.py")),
    ({"svc/__init__.py": "", "svc/__main__.py": ""}, "python", ("python3", "-m", "svc")),
    ({"package.json": '{"scripts": {"start": "node s.js"}, "main": "x.js"}'}, "node", ("npm", "start")),
    ({"package.json": '{"main": "lib/server.js"}'}, "node", ("node", "lib/server.js")),
    ({"server.js": ""}, "node", ("node", "server.js")),
])
def test_detection_rules(tmp_path: Path, files: dict[str, str], kind: str, command: tuple[str, ...]) -> None:
    runtime = detect_runtime(make(tmp_path, files))
    assert (runtime.kind, runtime.command) == (kind, command)


def test_requirements_are_noticed(tmp_path: Path) -> None:
    assert detect_runtime(make(tmp_path, {"app.py": "", "requirements.txt": "aiohttp\n"})).requirements == "requirements.txt"


def test_nothing_to_run_is_one_clear_sentence(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot tell how to start the service"):
        detect_runtime(make(tmp_path, {"README.md": "hi"}))
    with pytest.raises(UsageError, match="not valid JSON"):
        detect_runtime(make(tmp_path / "n", {"package.json": "{oops"}))
    with pytest.raises(UsageError, match="not a directory"):
        detect_runtime(tmp_path / "missing")
