"""The README's protocols block runs as written (on free ports): a circuit with a grpc, a soap, a protobuf and
a tcp node, booted mocked from the contracts in examples/protocols/, called by a real grpcio client, curl and a
socket."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from baton_cli import ROOT, free_port, processes_under, run_baton

pytestmark = pytest.mark.integration


def block() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = re.search(r"## Protocols\n.*?(?=\n## )", readme, re.S)
    assert section, "the README has no protocols section"
    (found,) = re.findall(r"```bash\n(.*?)```", section.group(0), re.S)
    return found


def test_the_protocols_block_runs_as_written(tmp_path: Path) -> None:
    (tmp_path / "examples").symlink_to(ROOT / "examples")  # the block runs from the repository's root
    text = block()
    for port in ("9402", "9403", "9404", "9405"):
        text = text.replace(port, str(free_port()))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "NO_COLOR": "1",
           "COLUMNS": "200"}
    project = tmp_path / "wire-demo"
    try:
        done = subprocess.run(["bash", "-c", "set -euo pipefail\n" + text], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"stdout: {done.stdout[-3000:]}\nstderr: {done.stderr[-3000:]}"
        lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
        quote = next(line["GetQuote"] for line in lines if "GetQuote" in line)
        assert quote and set(quote) <= {"sku", "available", "price", "warehouseEmail", "checkedAt"}, quote
        assert len([line for line in lines if "WatchQuotes" in line]) == 3
        assert "<id>INV-1001</id>" in done.stdout
        assert "b'ping'" in done.stdout
    finally:
        run_baton("down", "--all", cwd=project, timeout=120)
    assert not processes_under(project), "the block left processes behind"
