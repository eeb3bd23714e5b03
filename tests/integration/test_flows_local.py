"""Topology actions as a user meets them: each `baton` command a subprocess against a
circuit that another subprocess started, real adapters and services on 127.0.0.1,
flows recorded on a real Prefect server."""

from __future__ import annotations

import json
import sys
import urllib.request
import time
from collections import Counter
from pathlib import Path

import pytest

from baton_cli import get_json, ok, processes_under, run_baton, run_details, wire_quickstart
from load import Load

pytestmark = pytest.mark.integration

SERVICES = Path(__file__).resolve().parent / "services"

SERVICE = f"{sys.executable} {SERVICES / 'versioned.py'}"


@pytest.fixture
def circuit(tmp_path: Path):
    """The quickstart circuit, booted mocked by one subprocess; torn down (everything) afterwards."""
    project = tmp_path / "shop"
    ok(run_baton("init", str(project)))
    try:
        wire_quickstart(project)
        ok(run_baton("up", "--mock", cwd=project, timeout=180))
        yield project
    finally:  # even when booting failed: nothing of this test may outlive it
        run_baton("down", "--all", cwd=project, timeout=120)


def ports(project: Path) -> dict[str, dict]:
    return {n["name"]: n for n in ok(run_baton("status", "--json", cwd=project)).json()["nodes"]}


def test_quickstart_sequence(circuit: Path) -> None:
    nodes = ports(circuit)
    assert {n["state"] for n in nodes.values()} == {"mock"}
    assert {n["health"] for n in nodes.values()} == {"healthy"}
    gateway = nodes["gateway"]["port"]
    assert get_json(f"http://127.0.0.1:{gateway}/") == {"status": "mock", "node": "gateway"}

    slotted = ok(run_baton("slot", "api", f"{SERVICE} v1", "--json", cwd=circuit)).json()
    api = nodes["api"]["port"]
    assert get_json(f"http://127.0.0.1:{api}/x")["version"] == "v1"
    assert slotted["port"] != api

    ok(run_baton("route", "ab", "api", f"{SERVICE} v2", "--split", "50/50", cwd=circuit))
    seen = Counter(get_json(f"http://127.0.0.1:{api}/")["version"] for _ in range(200))
    assert set(seen) == {"v1", "v2"} and min(seen.values()) > 50
    shown = ok(run_baton("route", "show", "api", "--json", cwd=circuit)).json()
    assert shown["strategy"] == "weighted" and [t["weight"] for t in shown["targets"]] == [50, 50]
    ok(run_baton("route", "clear", "api", cwd=circuit))

    ok(run_baton("swap", "api", f"{SERVICE} v3", cwd=circuit))
    assert get_json(f"http://127.0.0.1:{api}/")["version"] == "v3"
    status = ports(circuit)["api"]
    assert status["state"] == "live" and status["health"] == "healthy"

    runs = ok(run_baton("history", "--json", cwd=circuit)).json()["runs"]
    names = [r["name"] for r in runs]
    for expected in ("up-shop", "slot-api", "route-weighted-api", "route-clear-api", "swap-api"):
        assert expected in names, names
    swap_run = next(r for r in runs if r["name"] == "swap-api")
    assert swap_run["state"] == "Completed" and swap_run["parameters"]["command"].endswith("v3")
    assert swap_run["action"] == "swap" and swap_run["node"] == "api" and swap_run["actor"]
    shown = run_details("swap-api", circuit, lambda d: d["artifacts"] and any(
        s["name"].startswith("drain-backend") for s in d["steps"]))
    steps = [s["name"].rsplit("-", 1)[0] for s in shown["steps"]]
    assert steps[:3] == ["node-snapshot", "plan-service", "start-service"] and "drain-backend" in steps
    artifact = shown["artifacts"][0]["data"]
    assert '"before"' in artifact and '"after"' in artifact

    ok(run_baton("down", "--all", cwd=circuit, timeout=120))
    deadline = time.monotonic() + 10
    while processes_under(circuit) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert processes_under(circuit) == []


def test_swap_under_load_loses_no_request(circuit: Path) -> None:
    api = ports(circuit)["api"]["port"]
    ok(run_baton("slot", "api", f"{SERVICE} old", cwd=circuit))
    with Load(f"http://127.0.0.1:{api}/") as load:
        time.sleep(0.5)  # let the load reach steady state before swapping
        ok(run_baton("swap", "api", f"{SERVICE} new", cwd=circuit))
        time.sleep(0.5)
    rate = load.total / load.elapsed
    assert rate >= 200, f"load generator too slow to prove anything: {rate:.0f} req/s"
    assert dict(load.statuses) == {"200": load.total}, load.statuses
    assert load.versions["old"] > 0 and load.versions["new"] > 0


def test_swap_rolls_back_when_the_new_version_never_gets_ready(circuit: Path) -> None:
    api = ports(circuit)["api"]["port"]
    ok(run_baton("slot", "api", f"{SERVICE} stable", cwd=circuit))
    never = f"{sys.executable} -c \"import time; print('WARN not listening', flush=True); time.sleep(300)\""
    result = run_baton("swap", "api", never, "--timeout", "2", cwd=circuit)
    assert result.code == 1 and "did not answer" in result.stderr and "Traceback" not in result.stderr
    assert get_json(f"http://127.0.0.1:{api}/")["version"] == "stable"
    assert not any("time.sleep(300)" in p for p in processes_under(circuit))
    crashing = f"{sys.executable} -c \"import sys; print('ERROR boom', file=sys.stderr); sys.exit(3)\""
    result = run_baton("swap", "api", crashing, cwd=circuit)
    assert result.code == 1 and "exited before it was ready" in result.stderr and "boom" in result.stderr
    assert "not listening" not in result.stderr  # only the new instance's output, never an earlier one's
    assert get_json(f"http://127.0.0.1:{api}/")["version"] == "stable"
    runs = ok(run_baton("history", "--action", "swap", "--json", cwd=circuit)).json()["runs"]
    assert [r["state"] for r in runs[:2]] == ["Failed", "Failed"]


def test_a_command_that_cannot_start_says_why(circuit: Path) -> None:
    api = ports(circuit)["api"]["port"]
    ok(run_baton("slot", "api", f"{SERVICE} stable", cwd=circuit))
    missing = run_baton("swap", "api", "nonexistent-binary --port $BATON_SERVICE_PORT", cwd=circuit)
    assert missing.code == 1 and "cannot start 'nonexistent-binary': not found" in missing.stderr, missing.stderr
    script = circuit / "serve.sh"
    script.write_text("#!/bin/sh\nexec sleep 60\n")
    script.chmod(0o644)
    denied = run_baton("slot", "api", "./serve.sh", cwd=circuit)
    assert denied.code == 1 and "cannot start './serve.sh': permission denied" in denied.stderr, denied.stderr
    for result in (missing, denied):
        assert "Traceback" not in result.stderr and "stable" not in result.stderr  # nothing of the earlier one's
    assert get_json(f"http://127.0.0.1:{api}/")["version"] == "stable"
    assert not any("serve.sh" in p or "nonexistent" in p for p in processes_under(circuit))


def test_a_killed_service_shows_unhealthy(circuit: Path) -> None:
    import os
    import signal

    ok(run_baton("slot", "api", f"{SERVICE} v1", cwd=circuit))
    state = json.loads((circuit / ".baton" / "state.json").read_text())
    os.killpg(state["adapters"]["api"]["service"]["process"]["pgid"], signal.SIGKILL)
    deadline = time.monotonic() + 10
    while ports(circuit)["api"]["health"] != "unhealthy":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert "exited" in ports(circuit)["api"]["detail"]


def test_refusals_are_one_sentence(circuit: Path) -> None:
    result = run_baton("slot", "stripe", f"{SERVICE} v1", cwd=circuit)
    assert result.code == 2 and "egress" in result.stderr and "Traceback" not in result.stderr
    result = run_baton("swap", "api", f"{SERVICE} v1", cwd=circuit)
    assert result.code == 2 and "nothing is slotted into api" in result.stderr
    result = run_baton("slot", "api", "app; rm -rf /", cwd=circuit)
    assert result.code == 2 and "metacharacter" in result.stderr
    result = run_baton("slot", "ghost", "app", cwd=circuit)
    assert result.code == 2 and "no node named 'ghost'" in result.stderr


def test_apply_converges_on_baton_yaml(circuit: Path) -> None:
    assert ok(run_baton("apply", "--dry-run", "--json", cwd=circuit)).json()["plan"] == []
    ok(run_baton("slot", "api", f"{SERVICE} v1", cwd=circuit))
    ok(run_baton("node", "add", "search", cwd=circuit))
    ok(run_baton("edge", "add", "api", "search", cwd=circuit))
    config = circuit / "baton.yaml"
    stripe_port = ports(circuit)["stripe"]["port"]
    config.write_text(config.read_text().replace(f"port: {stripe_port}", "port: 9555"))
    planned = ok(run_baton("apply", "--dry-run", "--json", cwd=circuit)).json()["plan"]
    assert [s["kind"] for s in planned] == ["reboot-host", "add-node", "respawn-service"]
    assert planned[1]["nodes"] == ["search"] and planned[2]["nodes"] == ["api"]
    assert sorted(planned[0]["nodes"]) == ["api", "gateway", "stripe"]
    ok(run_baton("apply", cwd=circuit, timeout=120))
    nodes = ports(circuit)
    assert nodes["stripe"]["port"] == 9555 and nodes["stripe"]["health"] == "healthy"
    assert nodes["search"]["state"] == "mock" and nodes["search"]["health"] == "healthy"
    assert nodes["api"]["state"] == "live"
    assert get_json(f"http://127.0.0.1:{nodes['api']['port']}/")["version"] == "v1"
    env = json.loads((circuit / ".baton" / "state.json").read_text())["adapters"]["api"]["service"]["env"]
    assert env["BATON_SEARCH_URL"] == f"http://127.0.0.1:{nodes['search']['port']}"
    assert ok(run_baton("apply", "--dry-run", "--json", cwd=circuit)).json()["plan"] == []


def test_a_conductor_killed_mid_slot_leaves_nothing_behind(circuit: Path) -> None:
    import os
    import signal
    import subprocess

    from baton_cli import BATON

    slow = f"{sys.executable} -c \"import time; print('INFO warming up', flush=True); time.sleep(120)\""
    slotting = subprocess.Popen([str(BATON), "slot", "api", slow, "--timeout", "100"], cwd=circuit,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    state_file = circuit / ".baton" / "state.json"
    deadline = time.monotonic() + 30
    while not json.loads(state_file.read_text()).get("pending"):
        assert time.monotonic() < deadline, "the slot never started its service"
        time.sleep(0.05)
    conductor = json.loads((circuit / ".baton" / "conductor.json").read_text())["process"]["pid"]
    os.kill(conductor, signal.SIGKILL)
    slotting.communicate(timeout=30)
    assert slotting.returncode != 0
    assert any("time.sleep(120)" in p for p in processes_under(circuit))  # the orphan exists...
    assert ok(run_baton("status", "--json", cwd=circuit)).json()["nodes"][1]["state"] == "mock"
    ok(run_baton("down", "--all", cwd=circuit, timeout=120))  # ...and down stops it
    deadline = time.monotonic() + 10
    while processes_under(circuit) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert processes_under(circuit) == []
    ok(run_baton("up", "--mock", cwd=circuit, timeout=180))  # and the circuit boots again
    assert {n["health"] for n in ports(circuit).values()} == {"healthy"}
    runs = ok(run_baton("history", "--action", "slot", "--json", cwd=circuit)).json()["runs"]
    assert runs[0]["state"] == "Crashed"  # the new conductor recorded what the killed one left running


def test_a_literal_of_the_nodes_port_is_rewritten_alike_by_every_command(circuit: Path) -> None:
    api = ports(circuit)["api"]["port"]
    serve = f"{sys.executable} -m http.server {api} --bind 127.0.0.1"
    note = f"{api} is the adapter's own port of api"
    for command in (("slot", "api", serve), ("swap", "api", serve), ("route", "ab", "api", serve, "--split", "50/50"),
                    ("route", "canary", "api", serve, "--pct", "20")):
        result = run_baton(*command, cwd=circuit, timeout=90)
        assert result.code == 0 and note in result.stdout.replace("\n", " "), (command, result.stdout, result.stderr)
        with urllib.request.urlopen(f"http://127.0.0.1:{api}/", timeout=10) as answer:
            assert answer.status == 200
    routing = ok(run_baton("route", "show", "api", "--json", cwd=circuit)).json()
    assert [t["name"] for t in routing["targets"]] == ["stable", "canary"]
    assert all(t["port"] != api for t in routing["targets"])
