"""The custodian end to end: real services killed with SIGKILL, healed by repair flows in the conductor,
watched with `baton watch`, recorded in `baton history`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from baton_cli import BATON, get_json, ok, run_baton, wait_for

pytestmark = pytest.mark.integration

SERVICE = f"{sys.executable} {Path(__file__).resolve().parent / 'services' / 'versioned.py'}"
FAST = {"BATON_NO_CUSTODIAN": "0", "BATON_PROBE_INTERVAL_S": "1"}




def _status(project: Path) -> dict:
    return ok(run_baton("status", "--json", cwd=project)).json()["nodes"][0]


def _answer(url: str) -> dict | None:
    try:
        return get_json(url, timeout=2)
    except OSError:
        return None


@pytest.fixture
def circuit(tmp_path: Path):
    project = tmp_path / "heal"
    ok(run_baton("init", str(project)))
    try:
        ok(run_baton("node", "add", "api", cwd=project))
        yield project
    finally:
        run_baton("down", "--all", cwd=project, timeout=120)


def _up(project: Path, env: dict[str, str]) -> str:
    ok(run_baton("up", "--mock", cwd=project, timeout=180, env=env))
    return f"http://127.0.0.1:{_status(project)['port']}/"


def test_a_killed_service_is_restarted_and_the_repair_is_in_history(circuit: Path) -> None:
    project = circuit
    url = _up(project, FAST)
    ok(run_baton("slot", "api", f"{SERVICE} v1", cwd=project, env=FAST))
    watcher = subprocess.Popen([str(BATON), "watch", "--json"], cwd=project, stdout=subprocess.PIPE, text=True,
                               env={**os.environ, **FAST})
    try:
        first = json.loads(watcher.stdout.readline())
        assert "snapshot" in first
        wait_for(lambda: (_status(project)["custodian"] or {}).get("status") == "healthy", 30, "a healthy verdict")
        state = json.loads((project / ".baton" / "state.json").read_text())
        pid = state["adapters"]["api"]["service"]["process"]["pid"]
        killed_at = time.monotonic()
        os.killpg(pid, signal.SIGKILL)
        answer = wait_for(lambda: _answer(url) if (_answer(url) or {}).get("version") == "v1" and
                           _status(project)["service"]["port"] != state["adapters"]["api"]["service"]["port"]
                           else None, 60, "the restarted service")
        healed_after = time.monotonic() - killed_at
        assert answer["version"] == "v1"
        lines = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any(l.get("status") == "healthy" and l.get("reason") == "recovered"
                                                      for l in lines):
            lines.append(json.loads(watcher.stdout.readline()))
        statuses = [l.get("status") for l in lines if "status" in l]
        assert "failing" in statuses and "restarting" in statuses and "restarted" in statuses, lines
        assert any(l.get("reason") == "restart 1: the service exited" for l in lines), lines
    finally:
        watcher.terminate()
        watcher.wait(10)
    print(f"healed {healed_after:.2f} s after kill -9 (probe interval 1 s)")
    runs = ok(run_baton("history", "--node", "api", "--json", cwd=project)).json()["runs"]
    heal = [r for r in runs if r["name"] == "heal-restart-api"]
    assert heal and heal[0]["actor"] == "custodian" and heal[0]["state"] == "Completed"
    assert heal[0]["parameters"]["reason"] == "the service exited"
    assert ok(run_baton("status", "--check", cwd=project)).code == 0


def test_a_service_that_crashes_on_start_ends_up_served_by_its_mock(circuit: Path, tmp_path: Path) -> None:
    project = circuit
    url = _up(project, FAST)
    marker = tmp_path / "ran-once"
    ok(run_baton("slot", "api", f"{SERVICE} v1 once {marker}", cwd=project, env=FAST))
    wait_for(lambda: (_status(project)["custodian"] or {}).get("status") == "healthy", 30, "a healthy verdict")
    state = json.loads((project / ".baton" / "state.json").read_text())
    os.killpg(state["adapters"]["api"]["service"]["process"]["pid"], signal.SIGKILL)
    node = wait_for(lambda: (lambda n: n if (n["custodian"] or {}).get("status") == "mocked" else None)(
        _status(project)), 120, "the custodian to mock the node")
    assert node["state"] == "mock" and node["custodian"]["failed_restarts"] >= 1
    assert node["custodian"]["failures"] >= 6
    answer = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", url], capture_output=True,
                            text=True, timeout=10).stdout
    assert answer and answer != "000"  # the adapter answers from the mock: callers keep working
    check = run_baton("status", "--check", cwd=project)
    assert check.code == 1 and "api: mocked by the custodian" in check.stderr
    runs = ok(run_baton("history", "--node", "api", "--json", cwd=project)).json()["runs"]
    names = [(r["name"], r["state"]) for r in runs]
    assert ("heal-mock-api", "Completed") in names and ("heal-restart-api", "Failed") in names, names


def test_a_conductor_killed_mid_backoff_resumes_without_a_duplicate_repair(circuit: Path, tmp_path: Path) -> None:
    project = circuit
    env = {**FAST, "BATON_BACKOFF_INITIAL_S": "8"}
    _up(project, env)
    marker = tmp_path / "ran-once"
    ok(run_baton("slot", "api", f"{SERVICE} v1 once {marker}", cwd=project, env=env))
    wait_for(lambda: (_status(project)["custodian"] or {}).get("status") == "healthy", 30, "a healthy verdict")
    state = json.loads((project / ".baton" / "state.json").read_text())
    os.killpg(state["adapters"]["api"]["service"]["process"]["pid"], signal.SIGKILL)
    custody = project / ".baton" / "custodian.json"

    def backing_off():
        node = json.loads(custody.read_text())["nodes"].get("api", {})
        return node if node.get("failed_restarts") == 1 and node.get("repair") is None else None

    before = wait_for(backing_off, 60, "the first failed restart")
    assert before["next_attempt_at"] > time.time()  # inside the 8 s backoff
    conductor = json.loads((project / ".baton" / "conductor.json").read_text())["process"]["pid"]
    os.kill(conductor, signal.SIGKILL)
    ok(run_baton("watch", "--once", cwd=project, env=env))  # starts a new conductor
    after = json.loads(custody.read_text())["nodes"]["api"]
    assert after["failed_restarts"] == 1 and after["next_attempt_at"] == before["next_attempt_at"]
    node = wait_for(lambda: (lambda n: n if (n["custodian"] or {}).get("status") == "mocked" else None)(
        _status(project)), 60, "the custodian to mock the node")
    assert node["custodian"]["failed_restarts"] == 1
    runs = ok(run_baton("history", "--node", "api", "--json", cwd=project)).json()["runs"]
    repairs = sorted(r["name"] for r in runs if r["name"].startswith("heal-"))
    # the restart before the kill was not repeated inside its backoff; the thresholds then mocked the node
    assert repairs == ["heal-mock-api", "heal-restart-api"], repairs


def test_paused_healing_leaves_a_dead_service_alone_until_resumed(circuit: Path) -> None:
    project = circuit
    url = _up(project, FAST)
    ok(run_baton("slot", "api", f"{SERVICE} v1", cwd=project, env=FAST))
    wait_for(lambda: (_status(project)["custodian"] or {}).get("status") == "healthy", 30, "a healthy verdict")
    unknown = run_baton("heal", "pause", "nosuch", cwd=project, env=FAST)
    assert unknown.code == 2 and "no node named 'nosuch'; known nodes: api." in unknown.stderr, unknown.stderr
    paused = ok(run_baton("heal", "pause", "api", "--json", cwd=project, env=FAST)).json()
    assert paused["paused"] is True
    state = json.loads((project / ".baton" / "state.json").read_text())
    os.killpg(state["adapters"]["api"]["service"]["process"]["pid"], signal.SIGKILL)
    node = wait_for(lambda: (lambda n: n if (n["custodian"] or {}).get("failures", 0) >= 4 else None)(
        _status(project)), 30, "four failed probes")
    assert node["custodian"]["status"] == "failing" and node["custodian"]["paused"] and node["custodian"]["restarts"] == 0
    human = ok(run_baton("status", cwd=project)).stdout
    assert "api custodian: failing (healing paused): the service exited" in human, human
    ok(run_baton("heal", "resume", "api", cwd=project, env=FAST))
    wait_for(lambda: (_answer(url) or {}).get("version") == "v1", 60, "the service restarted after resume")


def test_cancel_stops_a_repair_in_flight_and_pauses_healing(circuit: Path, tmp_path: Path) -> None:
    project = circuit
    _up(project, FAST)
    ok(run_baton("slot", "api", f"{SERVICE} v1 late {tmp_path / 'started'}", cwd=project, env=FAST))
    wait_for(lambda: (_status(project)["custodian"] or {}).get("status") == "healthy", 30, "a healthy verdict")
    state = json.loads((project / ".baton" / "state.json").read_text())
    os.killpg(state["adapters"]["api"]["service"]["process"]["pid"], signal.SIGKILL)
    wait_for(lambda: (_status(project)["custodian"] or {}).get("status") == "restarting", 30, "the restart")
    cancelled = ok(run_baton("heal", "cancel", "api", "--json", cwd=project, env=FAST)).json()
    assert cancelled["paused"] is True
    custody = project / ".baton" / "custodian.json"

    def cancelled_entry():
        node = json.loads(custody.read_text())["nodes"]["api"]
        return node if any("cancelled by hand" in h["reason"] for h in node["history"]) else None

    node = wait_for(cancelled_entry, 30, "the cancellation")
    assert node["status"] == "failing" and node["paused"] and node["failed_restarts"] == 0 and node["repair"] is None
    # three more failed probes: paused, nothing restarts it
    later = wait_for(lambda: (lambda n: n if n["failures"] >= node["failures"] + 3 else None)(
        json.loads(custody.read_text())["nodes"]["api"]), 30, "three more probes")
    assert later["restarts"] == 1
    runs = ok(run_baton("history", "--node", "api", "--json", cwd=project)).json()["runs"]
    restart = next(r for r in runs if r["name"] == "heal-restart-api")
    assert restart["state"] in ("Cancelled", "Crashed", "Failed"), restart
    assert not any(p.endswith(f"late {tmp_path / 'started'}") for p in _service_commands(project))


def _service_commands(project: Path) -> list[str]:
    """Command lines of the processes still running for the project's services (the cancelled restart's
    half-started service must not be among them)."""
    from baton_cli import processes_under

    return [line.split(": ", 1)[1].strip() for line in processes_under(project) if "versioned.py" in line]
