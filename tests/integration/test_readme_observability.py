"""The README's observability blocks run as written (on free ports) against a small running circuit: every
metrics, signals, events and dora command, then every dashboard command."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from baton_cli import ROOT, free_port, ok, processes_under, run_baton, wait_for

pytestmark = pytest.mark.integration


def blocks() -> list[str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = re.search(r"## Observability: .*?(?=\n## )", readme, re.S)
    assert section, "the README has no observability section"
    found = re.findall(r"```bash\n(.*?)```", section.group(0), re.S)
    return [b for b in found if b.lstrip().startswith("baton ")]


def test_the_observability_commands_run_as_written(tmp_path: Path) -> None:
    project = tmp_path / "obs"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "NO_COLOR": "1",
           "COLUMNS": "200", "BATON_NO_SCHEDULES": "0"}  # the conductor's pipelines run
    ok(run_baton("init", str(project), "--name", "obs"))
    gateway, api = free_port(), free_port()
    ok(run_baton("node", "add", "gateway", "--port", str(gateway), "--role", "ingress", cwd=project))
    ok(run_baton("node", "add", "api", "--port", str(api), cwd=project))
    ok(run_baton("edge", "add", "gateway", "api", cwd=project))
    metrics_block, dashboard_block = blocks()
    dashboard_block = dashboard_block.replace("9911", str(free_port()))  # the first --serve keeps 9900, as written
    try:
        ok(run_baton("up", "--mock", cwd=project, timeout=180, env={"BATON_NO_SCHEDULES": "0"}))
        for port in (gateway, api):
            for _ in range(10):
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/users/1", timeout=5) as resp:
                        resp.read()
                except urllib.error.HTTPError as exc:  # a contract-less mock: 404, still a request seen
                    exc.read()
        signals = project / ".baton" / "signals.jsonl"
        wait_for(lambda: signals.exists() and len(signals.read_text().splitlines()) >= 20, 30,
                 "the conductor's pipeline to record the 20 requests")
        done = subprocess.run(["bash", "-c", "set -euo pipefail\n" + metrics_block], cwd=project, env=env,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"stdout: {done.stdout[-3000:]}\nstderr: {done.stderr[-3000:]}"
        assert "# TYPE baton_requests_total counter" in done.stdout
        assert "/users" in done.stdout
        served = subprocess.run(["bash", "-c", "set -euo pipefail\n" + dashboard_block], cwd=project, env=env,
                                capture_output=True, text=True, timeout=300)
        assert served.returncode == 0, f"stdout: {served.stdout[-3000:]}\nstderr: {served.stderr[-3000:]}"
        assert re.search(r"http://127\.0\.0\.1:\d+/\?token=\S+", served.stdout), served.stdout[-1500:]  # 9900 as written
        assert '"nodes"' in served.stdout  # the --json line
    finally:
        run_baton("down", "--all", cwd=project, timeout=120)
    assert not processes_under(project)


def test_the_readme_curl_posts_a_service_event_with_the_events_token(tmp_path: Path) -> None:
    """The README's `curl` as a slotted service runs it: BATON_CONTROL_PORT and BATON_EVENTS_TOKEN from its
    environment (a service started by hand reads the token from .baton/events_token, as here)."""
    section = re.search(r"#### Service events from services\n.*?(?=\n#### )", (ROOT / "README.md").read_text(), re.S)
    assert section, "the README has no service events section"
    (curl,) = re.findall(r"```bash\n(.*?)```", section.group(0), re.S)
    project = tmp_path / "events"
    ok(run_baton("init", str(project), "--name", "events"))
    api = free_port()
    ok(run_baton("node", "add", "api", "--port", str(api), cwd=project))
    try:
        ok(run_baton("up", "--mock", cwd=project, timeout=180, env={"BATON_NO_SCHEDULES": "0"}))  # pipelines run
        node = ok(run_baton("status", "--json", cwd=project)).json()["nodes"][0]
        token = (project / ".baton" / "events_token").read_text().strip()
        env = {**os.environ, "BATON_CONTROL_PORT": str(node["management_port"]), "BATON_EVENTS_TOKEN": token}
        posted = subprocess.run(["bash", "-c", "set -euo pipefail\n" + curl], env=env, capture_output=True,
                                text=True, timeout=60)
        assert posted.returncode == 0, posted.stderr
        events = wait_for(lambda: [e for e in ok(run_baton("events", "--json", cwd=project)).json()["events"]
                                   if e.get("type") == "cache-warm"], 30, "the posted event in `baton events`")
        assert events[0]["message"] == "warmed 42 keys" and events[0]["node_name"] == "api"
    finally:
        run_baton("down", "--all", cwd=project, timeout=120)
