"""Every mode through the CLI: raw modes boot mocked and echo; a gRPC canary is judged by its calls'
``grpc-status`` (rolled back when they fail, promoted when they pass); the custodian heals tcp and gRPC services
killed with SIGKILL, judging gRPC ones by ``grpc.health.v1``. Real grpcio clients and services, real flows."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from baton_cli import ok, run_baton, wait_for

pytestmark = pytest.mark.integration
grpc = pytest.importorskip("grpc")

SERVICES = Path(__file__).resolve().parent / "services"
GRPC_SERVICE = f"{sys.executable} {SERVICES / 'grpc_echo.py'}"
TCP_SERVICE = f"{sys.executable} {SERVICES / 'tcp_echo.py'}"
SOAP_SERVICE = f"{sys.executable} {SERVICES / 'soap_calc.py'}"
ECHO_ENVELOPE = ('<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>'
                 '<Echo xmlns="urn:calc"><text>hi</text></Echo></soap:Body></soap:Envelope>').encode()
FAST_CANARY = ["--eval-interval", "1", "--min-requests", "10", "--steps", "20,50,100"]
FAST_CUSTODIAN = {"BATON_NO_CUSTODIAN": "0", "BATON_PROBE_INTERVAL_S": "1"}


@pytest.fixture(scope="module")
def echo_pb() -> Any:
    """The grpc_echo service's own compiled modules (its .proto compiled once into a tmp dir)."""
    spec = importlib.util.spec_from_file_location("grpc_echo_service", SERVICES / "grpc_echo.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    module.compiled()
    import batonit_pb2
    import batonit_pb2_grpc

    return batonit_pb2, batonit_pb2_grpc


@pytest.fixture
def project(tmp_path: Path):
    project = tmp_path / "modes"
    ok(run_baton("init", str(project)))
    try:
        yield project
    finally:
        run_baton("down", "--all", cwd=project, timeout=120)


def _nodes(project: Path) -> dict[str, dict]:
    return {n["name"]: n for n in ok(run_baton("status", "--json", cwd=project)).json()["nodes"]}


class Calls:
    """Steady unary calls on one long-lived channel in a background thread; counts codes and versions."""

    def __init__(self, pb: Any, port: int) -> None:
        pb2, pb2_grpc = pb
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        self.stub = pb2_grpc.EchoStub(self.channel)
        self.msg = pb2.Msg
        self.codes: Counter[str] = Counter()
        self.versions: Counter[str] = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                answer = self.stub.Unary(self.msg(text="hi"), timeout=10)
                self.codes["OK"] += 1
                self.versions[answer.text.split(":")[0]] += 1
            except grpc.RpcError as exc:
                self.codes[exc.code().name] += 1

    def flowing(self, calls: int = 20, timeout: float = 15) -> None:
        target = self.total + calls
        wait_for(lambda: self.total >= target, timeout, f"{calls} more calls", every=0.05)

    @property
    def total(self) -> int:
        return sum(self.codes.values())

    def __enter__(self) -> Calls:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(20)
        self.channel.close()


class Repeated:
    """``fn()`` called back to back in a background thread until the block ends; its results counted."""

    def __init__(self, fn: Any) -> None:
        self.fn = fn
        self.counts: Counter[Any] = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.counts[self.fn()] += 1

    def __enter__(self) -> Counter[Any]:
        self._thread.start()
        return self.counts

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)


def test_raw_modes_boot_mocked_and_echo(project: Path) -> None:
    ok(run_baton("node", "add", "raw", "--mode", "tcp", cwd=project))
    ok(run_baton("node", "add", "wire", "--mode", "protobuf", cwd=project))
    ok(run_baton("up", "--mock", cwd=project, timeout=180))
    nodes = _nodes(project)
    with socket.create_connection(("127.0.0.1", nodes["raw"]["port"]), timeout=10) as raw:
        raw.sendall(b"ping")
        raw.shutdown(socket.SHUT_WR)
        assert _read_all(raw) == b"ping"
    with socket.create_connection(("127.0.0.1", nodes["wire"]["port"]), timeout=10) as wire:
        for payload in (b"one", b"two" * 1000):
            wire.sendall(len(payload).to_bytes(4, "big") + payload)
            assert _read_exactly(wire, 4 + len(payload)) == len(payload).to_bytes(4, "big") + payload
    metrics = ok(run_baton("metrics", "--json", cwd=project)).json()
    assert metrics, "the mocked raw nodes' traffic is measured"


def test_a_grpc_canary_is_judged_by_grpc_status(project: Path, echo_pb: Any) -> None:
    ok(run_baton("node", "add", "rpc", "--mode", "grpc", cwd=project))
    ok(run_baton("up", "--mock", cwd=project, timeout=180))
    ok(run_baton("slot", "rpc", f"{GRPC_SERVICE} stable", cwd=project))
    port = _nodes(project)["rpc"]["port"]
    with Calls(echo_pb, port) as calls:
        calls.flowing()
        failed = run_baton("route", "canary", "rpc", f"{GRPC_SERVICE} canary fail", "--promote", *FAST_CANARY,
                           "--json", cwd=project, timeout=180)
        calls.flowing()
    assert failed.code == 1, failed.stderr
    report = failed.json()
    assert report["outcome"] == "Failed" and "canary error rate" in report["reason"], report
    assert set(calls.codes) <= {"OK", "INTERNAL"} and calls.codes["INTERNAL"] <= 0.35 * calls.total, calls.codes
    assert ok(run_baton("route", "show", "rpc", "--json", cwd=project)).json()["strategy"] == "single"

    with Calls(echo_pb, port) as calls:  # one channel: the canary's share is of calls, not of connections
        calls.flowing()
        passed = run_baton("route", "canary", "rpc", f"{GRPC_SERVICE} canary", "--promote", *FAST_CANARY,
                           "--json", cwd=project, timeout=180)
        calls.flowing()
    assert ok(passed).json()["outcome"] == "Succeeded"
    assert dict(calls.codes) == {"OK": calls.total}, calls.codes
    assert calls.versions["stable"] and calls.versions["canary"], calls.versions
    with Calls(echo_pb, port) as calls:
        calls.flowing()
    assert set(calls.versions) == {"canary"}


def test_a_tcp_canary_whose_service_goes_away_rolls_back_on_refused_connections(project: Path) -> None:
    ok(run_baton("node", "add", "raw", "--mode", "tcp", cwd=project))
    ok(run_baton("up", "--mock", cwd=project, timeout=180))
    ok(run_baton("slot", "raw", f"{TCP_SERVICE} stable", cwd=project))
    port = _nodes(project)["raw"]["port"]

    def connection() -> bytes:  # one connection, a round trip
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
                conn.sendall(b"x")
                conn.shutdown(socket.SHUT_WR)
                return _read_all(conn)
        except OSError as exc:
            return type(exc).__name__.encode()

    with Repeated(connection) as answers:
        wait_for(lambda: answers[b"stable:x"] >= 20, 30, "connections flowing")
        # ready, then gone after 4 s: evaluations 3 s apart cannot promote it before it refuses connections
        failed = run_baton("route", "canary", "raw", f"{TCP_SERVICE} canary die", "--promote", *FAST_CANARY,
                           "--eval-interval", "3", "--json", cwd=project, timeout=180)
    assert failed.code == 1, failed.stderr
    report = failed.json()
    assert report["outcome"] == "Failed" and "canary error rate" in report["reason"], report
    assert ok(run_baton("route", "show", "raw", "--json", cwd=project)).json()["strategy"] == "single"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(b"after")
        conn.shutdown(socket.SHUT_WR)
        assert _read_all(conn) == b"stable:after"


def test_a_soap_canary_answering_faults_with_200_rolls_back(project: Path) -> None:
    import urllib.error
    import urllib.request

    ok(run_baton("node", "add", "legacy", "--mode", "soap", cwd=project))
    ok(run_baton("up", "--mock", cwd=project, timeout=180))
    ok(run_baton("slot", "legacy", f"{SOAP_SERVICE} stable", cwd=project))
    url = f"http://127.0.0.1:{_nodes(project)['legacy']['port']}/calc"
    def echo() -> str:
        request = urllib.request.Request(url, data=ECHO_ENVELOPE, headers={
            "Content-Type": "text/xml; charset=utf-8", "SOAPAction": '"urn:calc#Echo"'})
        try:
            with urllib.request.urlopen(request, timeout=10) as resp:
                body = resp.read()
        except urllib.error.HTTPError as exc:
            return f"http {exc.code}"
        return "fault" if b"Fault>" in body else body.split(b"<text>")[1].split(b":")[0].decode()

    with Repeated(echo) as answers:
        wait_for(lambda: answers["stable"] >= 20, 30, "SOAP calls flowing")
        failed = run_baton("route", "canary", "legacy", f"{SOAP_SERVICE} canary faulty", "--promote", *FAST_CANARY,
                           "--json", cwd=project, timeout=180)
    assert failed.code == 1, failed.stderr
    report = failed.json()
    assert report["outcome"] == "Failed" and "canary error rate" in report["reason"], report
    assert set(answers) <= {"stable", "fault"} and answers["fault"] <= 0.35 * sum(answers.values()), answers
    assert echo() == "stable"
    metrics = ok(run_baton("metrics", "--node", "legacy", "--json", cwd=project)).json()
    assert "soap_faults" in json.dumps(metrics), metrics


def test_the_custodian_heals_killed_tcp_and_grpc_services(project: Path, echo_pb: Any) -> None:
    ok(run_baton("node", "add", "raw", "--mode", "tcp", cwd=project))
    ok(run_baton("node", "add", "rpc", "--mode", "grpc", cwd=project))
    ok(run_baton("up", "--mock", cwd=project, timeout=180, env=FAST_CUSTODIAN))
    ok(run_baton("slot", "raw", f"{TCP_SERVICE} v1", cwd=project, env=FAST_CUSTODIAN))
    ok(run_baton("slot", "rpc", f"{GRPC_SERVICE} v1", cwd=project, env=FAST_CUSTODIAN))
    for name in ("raw", "rpc"):
        wait_for(lambda: (_nodes(project)[name]["custodian"] or {}).get("status") == "healthy", 60,
                 f"a healthy verdict on {name}")
    state = json.loads((project / ".baton" / "state.json").read_text())
    killed = {name: state["adapters"][name]["service"] for name in ("raw", "rpc")}
    for service in killed.values():
        os.killpg(service["process"]["pid"], signal.SIGKILL)
    for name, service in killed.items():
        wait_for(lambda: _restarted(project, name, service), 60, f"{name}'s service restarted")
    nodes = _nodes(project)
    with socket.create_connection(("127.0.0.1", nodes["raw"]["port"]), timeout=10) as raw:
        raw.sendall(b"again")
        raw.shutdown(socket.SHUT_WR)
        assert _read_all(raw) == b"v1:again"
    with Calls(echo_pb, nodes["rpc"]["port"]) as calls:
        calls.flowing()
    assert dict(calls.codes) == {"OK": calls.total} and set(calls.versions) == {"v1"}
    for pid in (s["process"]["pid"] for s in killed.values()):
        assert not _alive(pid), f"the killed service {pid} is gone, not an orphan"


def _restarted(project: Path, name: str, before: dict) -> bool:
    """The node's service was restarted on a new port and its adapter routes there (the state records the new
    service as it starts, before the switch; until then the old port may already belong to another service)."""
    node = _nodes(project)[name]
    port = (node.get("service") or {}).get("port")
    if port in (None, before["port"]) or (node.get("custodian") or {}).get("status") != "healthy":
        return False
    routing = ok(run_baton("route", "show", name, "--json", cwd=project)).json()
    return [t.get("port") for t in routing["targets"]] == [port]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"


def _read_all(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def _read_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    deadline = time.monotonic() + 10
    while len(data) < n and time.monotonic() < deadline:
        data += sock.recv(n - len(data))
    return data


def test_a_plugin_mode_is_served_through_the_cli_and_an_unknown_one_refused_before_anything_starts(
        project: Path, tmp_path: Path) -> None:
    from protocol_plugins import SHOUT, install_distribution

    refused = run_baton("node", "add", "loud", "--mode", "shout", cwd=project)
    assert refused.code == 2 and "neither built in nor offered by an installed distribution" in refused.stderr
    assert "Traceback" not in refused.stderr and "loud" not in (project / "baton.yaml").read_text()

    site = tmp_path / "site-packages"
    site.mkdir()
    install_distribution(site, "baton-shout", "1.2", {"shout": "baton_shout:ShoutHandler"}, {"baton_shout": SHOUT})
    plugin = {"PYTHONPATH": os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH", "")) if p)}
    ok(run_baton("node", "add", "loud", "--mode", "shout", cwd=project, env=plugin))
    ok(run_baton("up", "--mock", cwd=project, timeout=180, env=plugin))
    node = _nodes(project)["loud"]
    assert node["proxy_mode"] == "shout"
    with socket.create_connection(("127.0.0.1", node["port"]), timeout=10) as conn:
        conn.sendall(b"hello\n")
        assert _read_all(conn) == b"loud shouts: HELLO\n"
    ok(run_baton("down", cwd=project, timeout=120, env=plugin))

    # where the plugin is not installed (a project whose conductor and flows run without it), `up` names what is
    # missing and starts nothing
    import yaml

    other = tmp_path / "without-plugin"
    ok(run_baton("init", str(other)))
    try:
        config = yaml.safe_load((other / "baton.yaml").read_text())
        config["nodes"] = [{"name": "loud", "port": node["port"], "proxy_mode": "shout"}]
        (other / "baton.yaml").write_text(yaml.safe_dump(config))
        failed = run_baton("up", "--mock", cwd=other, timeout=180)
        assert failed.code != 0 and "proxy_mode 'shout', which is neither built in" in failed.stderr, failed.stderr
        assert "Traceback" not in failed.stderr
        assert not ok(run_baton("status", "--json", cwd=other)).json().get("running")
    finally:
        run_baton("down", "--all", cwd=other, timeout=120)
