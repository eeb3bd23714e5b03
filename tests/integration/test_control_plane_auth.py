"""Closed by default: on a running local circuit with no ``security`` section, every management route refuses a
request without the project's token (or with a wrong one), a slotted service's environment holds nothing of
Baton's or Prefect's, a backend switched by hand with the token shows in ``status`` as a change made outside
Baton, and a ``token_env`` variable that is not set stops ``up`` before anything starts, naming it."""

from __future__ import annotations

import json
import os
import random
import signal
import stat
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from baton_cli import ok, port_free, processes_under, run_baton, wait_for

pytestmark = pytest.mark.integration

SERVICE = f"{sys.executable} {Path(__file__).resolve().parent / 'services' / 'versioned.py'}"

CUSTODIAN = {"BATON_NO_CUSTODIAN": "0", "BATON_PROBE_INTERVAL_S": "1"}

ROUTES = [
    ("GET", "/health", None),
    ("GET", "/status", None),
    ("GET", "/routing", None),
    ("POST", "/routing", {"locked": True}),
    ("POST", "/backend", {"host": "127.0.0.1", "port": 9}),
    ("POST", "/drain", {"timeout_s": 0}),
    ("GET", "/metrics", None),
    ("GET", "/metrics/prometheus", None),
    ("GET", "/signals", None),
    ("POST", "/events", {"type": "x", "message": "y"}),
    ("GET", "/events", None),
]


def call(port: int, method: str, path: str, body: object = None, token: str | None = None) -> tuple[int, object]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            raw = response.read()
            return response.status, json.loads(raw) if raw.strip().startswith(b"{") else raw
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def wire(project: Path) -> None:
    """The quickstart topology (gateway -> api -> stripe) on ports of its own: other circuits may hold the
    default ones (9001...) meanwhile."""
    ports: list[int] = []
    while len(ports) < 3:
        port = random.randrange(20000, 30000)
        if port not in ports and port_free(port) and port_free(port + 10000):
            ports.append(port)
    for (name, role), port in zip((("gateway", "ingress"), ("api", "service"), ("stripe", "egress")), ports):
        ok(run_baton("node", "add", name, "--role", role, "--port", str(port), cwd=project))
    ok(run_baton("edge", "add", "gateway", "api", cwd=project))
    ok(run_baton("edge", "add", "api", "stripe", cwd=project))


@pytest.fixture
def circuit(tmp_path: Path):
    """The quickstart circuit with no ``security`` section, booted mocked."""
    project = tmp_path / "shop"
    ok(run_baton("init", str(project)))
    try:
        wire(project)
        ok(run_baton("up", "--mock", cwd=project, timeout=180))
        yield project
    finally:
        run_baton("down", "--all", cwd=project, timeout=120)


def nodes(project: Path) -> dict[str, dict]:
    return {n["name"]: n for n in ok(run_baton("status", "--json", cwd=project)).json()["nodes"]}


def test_every_management_route_refuses_a_missing_or_wrong_token(circuit: Path) -> None:
    token_file = circuit / ".baton" / "control_token"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    token = token_file.read_text().strip()
    assert len(token) >= 32
    for node in nodes(circuit).values():
        port = node["management_port"]
        for method, path, body in ROUTES:
            for given in (None, "wrong-" + token, ""):
                code, answer = call(port, method, path, body, given)
                assert code == 401, (node["name"], method, path, given, code, answer)
                assert "node" not in answer and "backend" not in answer, answer  # reveals nothing
        assert call(port, "GET", "/status", token=token)[0] == 200
    # nothing was changed by the refused requests; Baton's own commands use the token without being told
    assert {n["state"] for n in nodes(circuit).values()} == {"mock"}
    assert {n["health"] for n in nodes(circuit).values()} == {"healthy"}


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat_line = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat_line[stat_line.rfind(")") + 2:].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.decode().split("=", 1) for item in raw.split(b"\0") if b"=" in item)


def test_a_slotted_service_gets_only_its_explicit_environment(circuit: Path) -> None:
    secret = (circuit / ".baton" / "control_token").read_text().strip()
    # run in this CLI process (not the conductor), whose environment holds Prefect's, a token and a user secret
    ok(run_baton("slot", "api", f"{SERVICE} v1", cwd=circuit,
                 env={"BATON_NO_CONDUCTOR": "1", "BATON_CONTROL_TOKEN": secret, "SOME_USER_SECRET": "s3cret"}))
    state = json.loads((circuit / ".baton" / "state.json").read_text())
    pump = state["adapters"]["api"]["service"]["process"]["pid"]
    (service,) = _children(pump)
    env = _environ(service)
    assert "versioned.py" in Path(f"/proc/{service}/cmdline").read_text()
    assert secret not in "\0".join(f"{k}={v}" for k, v in env.items())
    assert not [k for k in env if k.startswith("PREFECT_")], env
    assert not [k for k in env if k in ("BATON_HOME", "BATON_LEASE", "BATON_CONTROL_TOKEN", "SOME_USER_SECRET")]
    baton_vars = {k for k in env if k.startswith("BATON_")}
    assert baton_vars == {"BATON_SERVICE_PORT", "BATON_SERVICE_HOST", "BATON_NODE_NAME", "BATON_CONTROL_PORT",
                          "BATON_STRIPE_URL", "BATON_EVENTS_TOKEN"}, env
    # the events-only token (it opens POST /events and nothing else), derived from the management token
    assert env["BATON_EVENTS_TOKEN"] == (circuit / ".baton" / "events_token").read_text().strip() != secret
    assert env["BATON_SERVICE_HOST"] == "127.0.0.1"  # a process binds loopback
    assert env["PORT"] == env["BATON_SERVICE_PORT"] and env["BATON_NODE_NAME"] == "api"
    assert env["PATH"] == os.environ["PATH"]
    # the log pump keeps its lease (so a cut-short command's process is still found) but no token
    pump_env = _environ(pump)
    assert "BATON_LEASE" in pump_env and secret not in "\0".join(pump_env.values())
    assert not [k for k in pump_env if k.startswith("PREFECT_")]


def _with_custodian(project: Path) -> None:
    """Replace the conductor (started without a custodian, as tests do) by one with a custodian probing often."""
    pid = ok(run_baton("status", "--json", cwd=project)).json()["conductor"]["pid"]
    os.kill(pid, signal.SIGTERM)
    wait_for(lambda: not Path(f"/proc/{pid}").exists(), 20, "the conductor to stop")
    ok(run_baton("watch", "--once", cwd=project, env=CUSTODIAN))


def test_a_backend_switched_by_hand_shows_as_drift(circuit: Path) -> None:
    ok(run_baton("slot", "api", f"{SERVICE} v1", cwd=circuit))
    _with_custodian(circuit)
    api = nodes(circuit)["api"]
    assert api["drift"] is None
    ok(run_baton("status", "--check", cwd=circuit, env={"BATON_NO_CONDUCTOR": "1"}))
    token = (circuit / ".baton" / "control_token").read_text().strip()
    code, _ = call(api["management_port"], "POST", "/backend", {"host": "127.0.0.1", "port": 9}, token)
    assert code == 200
    api = nodes(circuit)["api"]
    assert api["drift"].startswith("changed outside Baton: adapter routes to 127.0.0.1:9, state says 127.0.0.1:"), api
    shown = run_baton("status", cwd=circuit)
    assert "changed outside Baton: adapter routes to 127.0.0.1:9" in shown.stdout
    checked = run_baton("status", "--check", cwd=circuit, env={"BATON_NO_CONDUCTOR": "1"})
    assert checked.code == 1 and "api: changed outside Baton" in checked.stderr, checked.stderr
    # the custodian reports it as an event (in `baton watch` and .baton/events.jsonl), once
    wait_for(lambda: _custodian_events(circuit, "drift"), 40, "the custodian to report the drift")
    ok(run_baton("swap", "api", f"{SERVICE} v2", cwd=circuit, env=CUSTODIAN))  # back under Baton's control
    assert nodes(circuit)["api"]["drift"] is None
    wait_for(lambda: _custodian_events(circuit, "routing-restored"), 40, "the custodian to report it restored")
    (reported,) = _custodian_events(circuit, "drift")
    assert reported["node_name"] == "api" and "adapter routes to 127.0.0.1:9" in reported["reason"]


def _custodian_events(project: Path, status: str) -> list[dict]:
    path = project / ".baton" / "events.jsonl"
    records = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    return [r for r in records if r.get("kind") == "custodian" and r.get("status") == status]


def test_a_missing_token_variable_stops_up_before_anything_starts(tmp_path: Path) -> None:
    project = tmp_path / "locked"
    ok(run_baton("init", str(project)))
    try:
        wire(project)
        config = project / "baton.yaml"
        config.write_text(config.read_text() + "security:\n  control: {auth: true, token_env: SHOP_TOKEN}\n")
        assert "SHOP_TOKEN" not in os.environ
        failed = run_baton("up", "--mock", cwd=project, timeout=120, env={"BATON_NO_CONDUCTOR": "1"})
        assert failed.code != 0
        assert "SHOP_TOKEN" in failed.stderr and "not set" in failed.stderr, failed.stderr
        assert "did not answer" not in failed.stderr
        assert not any("baton_adapter" in p for p in processes_under(project)), processes_under(project)
        assert not (project / ".baton" / "control_token").exists()
        # with the variable set, the adapters require exactly that token
        ok(run_baton("up", "--mock", cwd=project, timeout=180, env={"BATON_NO_CONDUCTOR": "1", "SHOP_TOKEN": "t0k3n"}))
        port = next(n for n in json.loads(ok(run_baton("status", "--json", cwd=project, env={
            "BATON_NO_CONDUCTOR": "1", "SHOP_TOKEN": "t0k3n"})).stdout)["nodes"] if n["name"] == "api")
        assert call(port["management_port"], "GET", "/status")[0] == 401
        assert call(port["management_port"], "GET", "/status", token="t0k3n")[0] == 200
    finally:
        run_baton("down", "--all", cwd=project, timeout=120, env={"BATON_NO_CONDUCTOR": "1", "SHOP_TOKEN": "t0k3n"})
