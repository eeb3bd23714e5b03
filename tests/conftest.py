"""Shared fixtures: the ``baton`` CLI run as a real subprocess, and fresh projects."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
BATON = Path(sys.executable).with_name("baton")


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    def json(self):
        return json.loads(self.stdout)


def run_baton(*args: str, cwd: Path | None = None, timeout: float = 60) -> Result:
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200"}
    proc = subprocess.run([str(BATON), *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)
    return Result(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def baton_cli():
    return run_baton


@pytest.fixture
def project_dir(tmp_path: Path) -> Path:
    """An initialised, empty project."""
    result = run_baton("init", str(tmp_path / "proj"), "--name", "proj")
    assert result.code == 0, result.stderr
    return tmp_path / "proj"
