"""The README is a contract: its quickstart runs as written, and right after the demo (issue 13)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from baton_cli import ROOT, processes_under, run_baton

pytestmark = pytest.mark.integration


def quickstart_script() -> str:
    """The README's quickstart block, as a user pastes it (the venv is already on PATH here)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"## Quickstart\s+```bash\n(.*?)```", readme, re.S)
    assert block, "the README has no quickstart block"
    lines = [line for line in block.group(1).splitlines() if not line.startswith("source ")]
    return "set -euo pipefail\n" + "\n".join(lines) + "\n"


def _run_quickstart(where: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "NO_COLOR": "1",
           "BATON_NO_SCHEDULES": "1"}
    return subprocess.run(["bash", "-c", quickstart_script()], cwd=where, env=env, capture_output=True, text=True,
                          timeout=600)


def test_the_quickstart_runs_as_written(tmp_path: Path) -> None:
    result = _run_quickstart(tmp_path)
    try:
        assert result.returncode == 0, f"stdout: {result.stdout[-3000:]}\nstderr: {result.stderr[-3000:]}"
        assert "Swapped api" in result.stdout
        assert "swap-api" in result.stdout and "runs of demo carry the tag" in result.stdout
    finally:
        run_baton("down", "--all", cwd=tmp_path / "demo", timeout=120)
    assert not processes_under(tmp_path / "demo")


@pytest.mark.slow
def test_the_quickstart_works_right_after_the_demo(tmp_path: Path) -> None:
    demo = ROOT / ".demo" / "shop"
    try:
        ran = subprocess.run(["bash", str(ROOT / ".ci" / "demo")], cwd=ROOT, capture_output=True, text=True,
                             timeout=600, env={**os.environ, "NO_COLOR": "1"})
        assert ran.returncode == 0, ran.stderr[-3000:]
        result = _run_quickstart(tmp_path)  # the demo's circuit still runs on 8001-8004
        assert result.returncode == 0, f"stdout: {result.stdout[-3000:]}\nstderr: {result.stderr[-3000:]}"
    finally:
        run_baton("down", "--all", cwd=tmp_path / "demo", timeout=120)
        if (demo / "baton.yaml").exists():
            run_baton("down", "--all", cwd=demo, timeout=120)
    assert not processes_under(tmp_path / "demo") and not processes_under(demo)
