"""The README's Docker section is a contract: its block runs as written on the shop example (on free ports:
the example's own 8001-8004 may be taken by a demo on this machine)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from baton_cli import ROOT, run_baton
from shop import copy_shop

pytestmark = pytest.mark.docker


def docker_block() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"## Service images and the Docker provider\n.*?```bash\n(.*?)```", readme, re.S)
    assert block, "the README's Docker section has no bash block"
    return block.group(1)


def test_the_docker_section_runs_as_written(docker_client, adapter_image, prefect_api, tmp_path: Path) -> None:
    from providers.docker import project_label

    moved = copy_shop(tmp_path / "examples" / "shop")
    script = docker_block()
    for old, new in moved.items():
        script = script.replace(f"127.0.0.1:{old}/", f"127.0.0.1:{new}/")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "NO_COLOR": "1",
           "COLUMNS": "200", "BATON_NO_SCHEDULES": "1", "BATON_NO_CUSTODIAN": "1"}
    project = tmp_path / "shop"
    try:
        result = subprocess.run(["bash", "-c", "set -euo pipefail\n" + script], cwd=tmp_path, env=env,
                                capture_output=True, text=True, timeout=900)
        assert result.returncode == 0, f"stdout: {result.stdout[-3000:]}\nstderr: {result.stderr[-3000:]}"
        assert "Deployed shop on docker: 4 nodes answering" in result.stdout
        assert "slotted baton-shop-users:" in result.stdout and "Ada Lovelace" in result.stdout
        assert "Swapped users" in result.stdout
        assert re.search(r"Torn down on docker: removed 5 containers, 1 network, 0 volumes", result.stdout), \
            result.stdout[-2000:]
        assert "ensure-adapter-image: completed" in result.stderr  # the step lines of the deploy
    finally:
        run_baton("teardown", cwd=project, timeout=300)
        run_baton("down", "--all", cwd=project, timeout=120)
    label = f"baton.project={project_label(project)}"
    assert docker_client.containers.list(all=True, filters={"label": label}) == []
    assert docker_client.networks.list(filters={"label": label}) == []
