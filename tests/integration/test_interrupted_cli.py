"""An interrupted CLI never leaves its command queued to run later (issue 13)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from baton_cli import BATON, ok, processes_under, run_baton, wait_for

pytestmark = pytest.mark.integration

SLOW = """
import http.server, os, time
time.sleep(3)  # slow to start: its slot holds the conductor's turn meanwhile
http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["BATON_SERVICE_PORT"])),
                                http.server.SimpleHTTPRequestHandler).serve_forever()
"""


def _health(project: Path) -> dict:
    found = json.loads((project / ".baton" / "conductor.json").read_text())
    request = urllib.request.Request(f"http://{found['host']}:{found['port']}/health",
                                     headers={"Authorization": f"Bearer {found['token']}"})
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


def test_a_command_interrupted_while_queued_never_runs(tmp_path: Path) -> None:
    project = tmp_path / "queued"
    ok(run_baton("init", str(project)))
    ok(run_baton("node", "add", "api", "--port", "8938", cwd=project))
    (tmp_path / "slow.py").write_text(SLOW)
    env = {**os.environ, "NO_COLOR": "1", "BATON_NO_SCHEDULES": "1", "BATON_NO_CUSTODIAN": "1"}
    try:
        ok(run_baton("up", "--mock", cwd=project))
        slot = subprocess.Popen([str(BATON), "slot", "api", f"{sys.executable} {tmp_path / 'slow.py'}"], cwd=project,
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_for(lambda: _health(project)["busy"], 30, "the slot to hold the conductor's turn")
        queued = subprocess.Popen([str(BATON), "route", "lock", "api"], cwd=project, env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_for(lambda: _health(project)["runs"] == 2, 30, "the lock to queue behind the slot")
        queued.send_signal(signal.SIGINT)  # Ctrl-C while it waits for its turn
        assert queued.wait(30) == 130
        out, err = slot.communicate(timeout=60)
        assert slot.returncode == 0, err
        wait_for(lambda: _health(project)["runs"] == 0, 30, "the conductor to be idle")
        assert ok(run_baton("route", "show", "api", "--json", cwd=project)).json()["locked"] is False
        names = [r["name"] for r in ok(run_baton("history", "--json", cwd=project)).json()["runs"]]
        assert "slot-api" in names and "route-lock-api" not in names, names
    finally:
        run_baton("down", "--all", cwd=project, timeout=120)
    assert not processes_under(project)
