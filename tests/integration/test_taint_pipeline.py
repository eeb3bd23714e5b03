"""Taint analysis end to end on real processes on 127.0.0.1 (free ports): a circuit up with taint on, canaries
seeded through the CLI, a canary sent into a node outside its scope found by the adapter, judged by the
conductor's collector and shown by ``baton taint violations``, ``baton watch`` and ``events.jsonl``; the adapter host killed
with SIGKILL, restarted by the custodian, reloaded by the collector and detecting again; and a slotted service
that prints what it receives caught logging a canary by its log pump."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

import pytest

from baton_cli import BATON, free_port, ok, processes_under, run_baton, wait_for

pytestmark = pytest.mark.integration

# the conductor serves its tickers (taint collection every 0.5 s) and runs the custodian (probes every second)
ENV = {"BATON_NO_SCHEDULES": "0", "BATON_NO_CUSTODIAN": "0", "BATON_PROBE_INTERVAL_S": "1",
       "BATON_TAINT_POLL_S": "0.5"}

ECHO = """\
import os, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        print("received", body.decode("utf-8", "replace"), flush=True)  # the leak: a service logging its input
        self.do_GET()

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", int(os.environ["BATON_SERVICE_PORT"])), Handler).serve_forever()
"""


def _circuit(project: Path) -> dict[str, int]:
    """gateway (ingress) -> users [PII]; gateway -> payments [FINANCIAL]; payments -> audit (nothing declared)."""
    ports = {name: free_port() for name in ("gateway", "users", "payments", "audit")}
    nodes = "\n".join(f"  - {{name: {name}, port: {port}, management_port: {free_port()}"
                      f"{', role: ingress' if name == 'gateway' else ''}}}" for name, port in ports.items())
    (project / "baton.yaml").write_text(f"""\
name: taintdrill
version: 2
taint: {{enabled: true}}
nodes:
{nodes}
edges:
  - {{source: gateway, target: users, data_tiers_in_flight: [PII]}}
  - {{source: gateway, target: payments, data_tiers_in_flight: [FINANCIAL]}}
  - {{source: payments, target: audit}}
""")
    return ports


def _post(port: int, body: dict) -> int:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/orders", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:  # a mock without a contract may refuse the call: it was scanned anyway
        return exc.code


def _violations(project: Path) -> list[dict]:
    return ok(run_baton("taint", "violations", "--json", cwd=project, env=ENV)).json()["violations"]


def _state(project: Path) -> dict:
    return json.loads((project / ".baton" / "state.json").read_text())


def _all_current(project: Path) -> dict | None:
    report = ok(run_baton("taint", "status", "--json", cwd=project, env=ENV)).json()
    adapters = report["adapters"]
    return report if len(adapters) == 4 and all(a["current"] for a in adapters.values()) else None


@pytest.fixture
def project(tmp_path: Path):
    project = tmp_path / "taint"
    ok(run_baton("init", str(project), "--name", "taintdrill"))
    try:
        yield project
    finally:
        run_baton("down", "--all", cwd=project, env=ENV, timeout=120)


def test_a_leak_is_found_judged_and_found_again_after_the_adapter_host_is_killed(project: Path,
                                                                                  tmp_path: Path) -> None:
    ports = _circuit(project)
    ok(run_baton("up", "--mock", cwd=project, env=ENV, timeout=180))
    seeded = ok(run_baton("taint", "seed", "--node", "users", "--kinds", "email", "--json", cwd=project, env=ENV,
                          timeout=120)).json()
    assert seeded["loaded"] == ["audit", "gateway", "payments", "users"] and seeded["unreachable"] == {}
    canary = seeded["seeded"][0]
    assert canary["scope"] == ["users", "gateway"] and canary["origin"] == "users"
    assert _all_current(project)

    # 1. a canary of users sent into payments: outside its scope, over an edge that carries FINANCIAL only
    watched: list[dict] = []
    watcher = subprocess.Popen([str(BATON), "watch", "--json"], cwd=project, stdout=subprocess.PIPE, text=True,
                               env={**os.environ, **ENV})
    threading.Thread(target=lambda: [watched.append(json.loads(line)) for line in watcher.stdout], daemon=True).start()
    try:
        wait_for(lambda: watched, 30, "baton watch to start")
        _post(ports["payments"], {"customer": canary["value"]})
        found = wait_for(lambda: [v for v in _violations(project) if v["node"] == "payments"], 30,
                         "the violation at payments")
        told = wait_for(lambda: [w for w in watched if w.get("kind") == "taint"], 30, "baton watch to show it")
    finally:
        watcher.terminate()
        watcher.wait(10)
    assert told[0]["node"] == "payments" and told[0]["status"] == "violation"
    assert "outside its scope users, gateway" in told[0]["reason"]
    violation = found[0]
    assert (violation["edge"], violation["direction"], violation["source"], violation["fingerprint"]) == (
        "gateway -> payments", "request", "adapter", canary["fingerprint"])
    assert violation["reasons"] == ["PII canary of users seen at payments, outside its scope users, gateway",
                                    "edge gateway -> payments carries FINANCIAL, not PII"]
    events = [json.loads(line) for line in (project / ".baton" / "events.jsonl").read_text().splitlines()]
    assert any(e["kind"] == "taint" and e["status"] == "violation" and e["node_name"] == "payments" for e in events)
    status = ok(run_baton("status", "--json", cwd=project, env=ENV)).json()["taint"]
    assert status["canaries"] == 1 and status["violations"] >= 1 and status["last_violation"]["node"] == "payments"

    # 2. the adapter host killed: the custodian restarts it empty, the collector loads the canaries again
    host = next(iter(_state(project)["hosts"].values()))
    os.killpg(host["process"]["pgid"], signal.SIGKILL)
    wait_for(lambda: next(iter(_state(project)["hosts"].values()))["process"]["pid"] != host["process"]["pid"], 90,
             "the custodian to restart the adapter host")
    wait_for(lambda: _all_current(project), 60, "every restarted adapter to hold the current canaries again")
    before = len([v for v in _violations(project) if v["node"] == "payments"])
    _post(ports["payments"], {"customer": canary["value"]})
    wait_for(lambda: len([v for v in _violations(project) if v["node"] == "payments"]) > before, 30,
             "the violation at payments after the restart")

    # 3. a slotted service that prints what it receives: the log pump catches the canary in its stdout
    echo = tmp_path / "echo.py"
    echo.write_text(ECHO)
    ok(run_baton("slot", "audit", f"{sys.executable} {echo}", cwd=project, env=ENV, timeout=120))
    _post(ports["audit"], {"note": f"forwarded {canary['value']}"})
    logged = wait_for(lambda: [v for v in _violations(project) if v["source"] == "log"], 30, "the log violation")
    assert (logged[0]["node"], logged[0]["edge"], logged[0]["direction"]) == ("audit", "audit -> log", "log")
    assert logged[0]["reasons"] == ["PII canary of users printed to the stdout log of audit: PII must not be logged"]
    grouped = ok(run_baton("taint", "violations", "--json", cwd=project, env=ENV)).json()["groups"]
    edges = {g["edge"] for g in grouped}
    assert {"gateway -> payments", "audit -> log", "payments -> audit"} <= edges, grouped

    cleared = ok(run_baton("taint", "clear", "--json", cwd=project, env=ENV, timeout=120)).json()
    assert cleared["canaries"] == 1 and cleared["cleared"] == ["audit", "gateway", "payments", "users"]
    after = ok(run_baton("taint", "status", "--json", cwd=project, env=ENV)).json()
    assert after["active"] == 0 and after["violations"] >= 3  # violations are kept
    ok(run_baton("down", "--all", cwd=project, env=ENV, timeout=120))
    assert not processes_under(project)
