"""Shared fixtures: fresh projects for CLI tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from baton_cli import run_baton


@pytest.fixture
def project_dir(tmp_path: Path) -> Path:
    """An initialised, empty project."""
    result = run_baton("init", str(tmp_path / "proj"), "--name", "proj")
    assert result.code == 0, result.stderr
    return tmp_path / "proj"
