"""The taint soak test end to end, as the README's taint section runs it: the shop example (on free ports) with
its real orders service slotted passes; the same service with its planted leak (``--leak-pii``: the customer's
email sent to the third-party payments node) fails with the leak named, edge and kind; the report is kept on the
run and in ``.baton/taint_report.json``; the soak clears what it seeded."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from baton_cli import ROOT, ok, processes_under, run_baton
from shop import copy_shop

pytestmark = pytest.mark.integration


def taint_block() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"## Taint analysis: canary PII\n.*?```bash\n(.*?)```", readme, re.S)
    assert block, "the README's taint section has no bash block"
    return block.group(1)


def test_the_taint_section_runs_as_written_and_finds_the_planted_leak(tmp_path: Path) -> None:
    moved = copy_shop(tmp_path / "examples" / "shop")
    script = taint_block()
    for old, new in moved.items():
        script = script.replace(f"127.0.0.1:{old}/", f"127.0.0.1:{new}/")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "NO_COLOR": "1",
           "COLUMNS": "200", "BATON_NO_SCHEDULES": "1"}
    project = tmp_path / "shop"
    try:
        result = subprocess.run(["bash", "-c", "set -euo pipefail\n" + script], cwd=tmp_path, env=env,
                                capture_output=True, text=True, timeout=600)
        out = result.stdout
        assert result.returncode == 0, f"stdout: {out[-4000:]}\nstderr: {result.stderr[-4000:]}"
        # the clean service passes, the leaky one fails naming the edge and the kind
        assert "No canary crossed a boundary." in out, out[-3000:]
        assert "the soak failed, as it should" in out
        assert re.search(r"orders -> payments: email x\d+", out), out[-3000:]
        assert "outside its scope" in out and "carries FINANCIAL, not PII" in out
        report = json.loads((project / ".baton" / "taint_report.json").read_text())
        assert report["passed"] is False and report["violations"]["total"] >= 1
        assert set(report["violations"]["by_edge"]) == {"orders -> payments"}
        assert report["requests"]["sent"] > 0 and report["requests"]["failed"] == 0
        first = report["violations"]["first"][0]
        assert first["node"] == "payments" and first["origin"] == "users" and first["direction"] == "request"
        # what the soak seeded is gone again
        status = ok(run_baton("taint", "status", "--json", cwd=project)).json()
        assert status["canaries"] == [] or status.get("active", 1) == 0, status
        # both runs are in history: the clean one Completed, the leaky one Failed (red for a schedule too)
        runs = ok(run_baton("history", "--action", "taint-soak", "--json", cwd=project)).json()["runs"]
        assert sorted(r["state"] for r in runs) == ["Completed", "Failed"], runs
    finally:
        run_baton("down", "--all", cwd=project, timeout=120)
    assert not processes_under(project)
