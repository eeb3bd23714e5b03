"""TLS in the circuit (issue 14), end to end with real TLS clients: Python's ssl, curl --cacert and
openssl s_client. A circuit of three nodes serves TLS on every data port; a slotted service calls its
dependency over https with only the environment Baton gave it; rotation under steady TLS load fails nothing;
the conductor's scheduled check renews short-lived certificates; the user's own ingress certificate (mode
full) and every bad input of it."""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import ssl
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest

from baton_cli import ok, port_free, processes_under, run_baton, wait_for
from pki import make_cert, write_pem

pytestmark = pytest.mark.integration

SERVICES = Path(__file__).resolve().parent / "services"
CALLER = f"{sys.executable} {SERVICES / 'tls_caller.py'} stripe"
VERSIONED = f"{sys.executable} {SERVICES / 'versioned.py'}"


def _ports(count: int) -> list[int]:
    """Data ports free with their management port (port + 10000), away from the fixed ports other tests use."""
    ports: list[int] = []
    while len(ports) < count:
        port = random.randrange(20000, 29000)
        if port not in ports and port_free(port) and port_free(port + 10000):
            ports.append(port)
    return ports


def _circuit(tmp_path: Path, tls: str) -> Path:
    project = tmp_path / "shop"
    ok(run_baton("init", str(project)))
    for (name, role), port in zip((("gateway", "ingress"), ("api", "service"), ("stripe", "egress")), _ports(3)):
        ok(run_baton("node", "add", name, "--role", role, "--port", str(port), cwd=project))
    ok(run_baton("edge", "add", "gateway", "api", cwd=project))
    ok(run_baton("edge", "add", "api", "stripe", cwd=project))
    with (project / "baton.yaml").open("a") as handle:
        handle.write(tls)
    return project


@pytest.fixture
def circuit(tmp_path: Path):
    project = _circuit(tmp_path, "security:\n  tls:\n    mode: circuit\n")
    try:
        ok(run_baton("up", "--mock", cwd=project, timeout=180))
        yield project
    finally:
        run_baton("down", "--all", cwd=project, timeout=120)
        assert not processes_under(project)


def nodes(project: Path) -> dict[str, dict]:
    return {n["name"]: n for n in ok(run_baton("status", "--json", cwd=project)).json()["nodes"]}


def _ca(project: Path) -> Path:
    return project / ".baton" / "tls" / "ca-bundle.pem"


def presented(port: int, server_name: str | None = None) -> str:
    """SHA-256 of the certificate a new handshake is shown (nothing verified, no session reused)."""
    import socket

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
            context.wrap_socket(raw, server_hostname=server_name) as tls:
        return hashlib.sha256(tls.getpeercert(binary_form=True)).hexdigest()


def curl(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["curl", "-sS", "--max-time", "10", *args, url], capture_output=True, text=True, timeout=30)


def test_every_data_port_serves_tls_that_real_clients_verify(circuit: Path) -> None:
    ca = _ca(circuit)
    for name, node in nodes(circuit).items():
        port = node["port"]
        verified = curl(f"https://127.0.0.1:{port}/", "--cacert", str(ca), "-o", "/dev/null", "-w", "%{http_code}")
        assert verified.returncode == 0 and verified.stdout in ("200", "404"), (name, verified.stderr)
        by_name = curl(f"https://{name}:{port}/", "--cacert", str(ca), "--resolve", f"{name}:{port}:127.0.0.1",
                       "-o", "/dev/null", "-w", "%{http_code}")
        assert by_name.returncode == 0, (name, by_name.stderr)  # the node's name is in its certificate
        untrusted = curl(f"https://127.0.0.1:{port}/")
        assert untrusted.returncode == 60, untrusted.stderr  # curl's "peer certificate cannot be authenticated"
        handshake = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-CAfile", str(ca),
                                    "-verify_return_error", "-servername", name, "-alpn", "http/1.1"],
                                   input="", capture_output=True, text=True, timeout=30)
        assert "Verify return code: 0 (ok)" in handshake.stdout, handshake.stdout[-1500:]
        assert "ALPN protocol: http/1.1" in handshake.stdout
        plain = curl(f"http://127.0.0.1:{port}/", "-o", "/dev/null", "-w", "%{http_code}")
        assert plain.stdout != "200"  # plain HTTP is not served on a TLS port
    report = ok(run_baton("certs", "status", "--json", cwd=circuit)).json()
    assert report["mode"] == "circuit" and report["problems"] == []
    by_role = Counter(c["role"] for c in report["certificates"])
    assert by_role == {"ca": 1, "node": 3}
    for cert in report["certificates"]:
        assert cert["state"] == "ok" and len(cert["fingerprint"]) == 64
        if cert["role"] == "node":
            assert cert["served_by"] == [cert["node"]] and cert["node"] in cert["sans"]
            assert presented(nodes(circuit)[cert["node"]]["port"]) == cert["fingerprint"]
    key = circuit / ".baton" / "tls" / "ca.key"
    assert oct(key.stat().st_mode & 0o777) == "0o600"


def test_a_service_calls_its_dependency_over_https_with_only_its_environment(circuit: Path) -> None:
    ok(run_baton("slot", "api", CALLER, cwd=circuit))
    api = nodes(circuit)["api"]["port"]
    answer = curl(f"https://127.0.0.1:{api}/call", "--cacert", str(_ca(circuit)))
    assert answer.returncode == 0, answer.stderr
    called = json.loads(answer.stdout)
    assert called["url"].startswith("https://127.0.0.1:") and called.get("status") == 200, called


class TlsLoad:
    """Steady GETs over kept-alive TLS connections (the CA trusted), counting outcomes and the certificates
    new connections were shown."""

    def __init__(self, url: str, ca: Path, workers: int = 6) -> None:
        self.url, self.workers = url, workers
        self.context = ssl.create_default_context(cafile=str(ca))
        self.statuses: Counter[str] = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    async def _worker(self, session: aiohttp.ClientSession) -> None:
        while not self._stop.is_set():
            try:
                async with session.get(self.url) as resp:
                    await resp.read()
                    self.statuses[str(resp.status)] += 1
            except (aiohttp.ClientError, TimeoutError, ssl.SSLError) as exc:
                self.statuses[type(exc).__name__] += 1

    async def _run(self) -> None:
        connector = aiohttp.TCPConnector(ssl=self.context, limit=self.workers)
        async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=20)) as session:
            await asyncio.gather(*(self._worker(session) for _ in range(self.workers)))

    def __enter__(self) -> TlsLoad:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def flowing(self, answers: int = 30) -> None:
        target = sum(self.statuses.values()) + answers
        wait_for(lambda: sum(self.statuses.values()) >= target, 30, f"{answers} more answers")


def test_rotation_under_steady_tls_load_fails_nothing_and_keeps_established_connections(circuit: Path) -> None:
    ok(run_baton("slot", "api", f"{VERSIONED} v1", cwd=circuit))
    port = nodes(circuit)["api"]["port"]
    before = presented(port)
    context = ssl.create_default_context(cafile=str(_ca(circuit)))
    kept = context.wrap_socket(__import__("socket").create_connection(("127.0.0.1", port)), server_hostname="api")
    kept_fingerprint = hashlib.sha256(kept.getpeercert(binary_form=True)).hexdigest()
    with TlsLoad(f"https://127.0.0.1:{port}/", _ca(circuit)) as load:
        load.flowing()
        rotated = ok(run_baton("certs", "rotate", "--json", cwd=circuit)).json()
        load.flowing()
    assert sorted(rotated["loaded"]) == ["api", "gateway", "stripe"]
    assert dict(load.statuses) == {"200": sum(load.statuses.values())}, load.statuses
    after = presented(port)
    assert after != before and after == rotated["verified"]["api"]
    kept.sendall(b"GET / HTTP/1.1\r\nHost: api\r\n\r\n")  # established before the rotation: carries on, untouched
    assert kept.recv(4096).startswith(b"HTTP/1.1 200")
    assert kept_fingerprint == before
    kept.close()
    runs = ok(run_baton("history", "--json", cwd=circuit)).json()["runs"]
    assert any(r["name"] == "cert-rotate-all" and r["state"] == "Completed" for r in runs)


def test_the_scheduled_check_renews_short_lived_certificates(tmp_path: Path) -> None:
    # node certificates of 8.6 s, renewed at 2/3 of their life by the conductor's check every second
    project = _circuit(tmp_path, "security:\n  tls:\n    mode: circuit\n    auto_rotate: true\n"
                                 "    lifetime_days: 0.0001\n    rotate_check_interval_s: 1\n"
                                 "    warning_days: 0\n    critical_days: 0\n")
    env = {"BATON_NO_SCHEDULES": "0"}
    try:
        ok(run_baton("up", "--mock", cwd=project, timeout=180, env=env))
        port = nodes(project)["api"]["port"]
        first = presented(port)
        second = wait_for(lambda: (fp := presented(port)) != first and fp, 60, "the check to renew api's certificate")
        wait_for(lambda: presented(port) not in (first, second), 60, "a second renewal")
        runs = ok(run_baton("history", "--action", "cert-check", "--json", cwd=project)).json()["runs"]
        ended = [r for r in runs if r["state"] not in ("Scheduled", "Pending", "Running")]  # the newest may run
        assert len(ended) >= 2 and all(r["state"] == "Completed" for r in ended), runs
        report = ok(run_baton("certs", "status", "--json", cwd=project)).json()
        assert all(c["served_by"] == [c["node"]] for c in report["certificates"] if c["role"] == "node")
    finally:
        run_baton("down", "--all", cwd=project, timeout=120)


def _user_pair(directory: Path, *, days: float = 30, start: datetime | None = None) -> tuple[Path, Path, Path]:
    root = make_cert("Shop test root", ca=True, days=365)
    leaf = make_cert("shop.test", issuer=root, days=days, start=start)
    return (write_pem(directory / "server.pem", leaf.cert_pem), write_pem(directory / "server.key", leaf.key_pem),
            write_pem(directory / "root.pem", root.cert_pem))


FULL = "security:\n  tls:\n    mode: full\n    cert: certs/server.pem\n    key: certs/server.key\n"


def test_full_mode_serves_the_users_certificate_on_the_ingress(tmp_path: Path) -> None:
    project = _circuit(tmp_path, FULL)
    _, _, root = _user_pair(project / "certs")
    try:
        ok(run_baton("up", "--mock", cwd=project, timeout=180))
        gateway, api = nodes(project)["gateway"]["port"], nodes(project)["api"]["port"]
        served = curl(f"https://shop.test:{gateway}/", "--cacert", str(root), "--resolve",
                      f"shop.test:{gateway}:127.0.0.1", "-o", "/dev/null", "-w", "%{http_code}")
        assert served.returncode == 0, served.stderr
        inner = curl(f"https://127.0.0.1:{api}/", "--cacert", str(_ca(project)), "-o", "/dev/null")
        assert inner.returncode == 0, inner.stderr  # every other node: the circuit CA
        roles = Counter(c["role"] for c in ok(run_baton("certs", "status", "--json", cwd=project)).json()["certificates"])
        assert roles == {"ca": 1, "node": 2, "user": 1}
        # the user replaces the files: a rotation re-reads them (by content) and the ingress serves the new one
        _user_pair(project / "certs")
        rotated = ok(run_baton("certs", "rotate", "--node", "gateway", "--json", cwd=project)).json()
        assert rotated["loaded"] == ["gateway"] and presented(gateway, "shop.test") == rotated["verified"]["gateway"]
    finally:
        run_baton("down", "--all", cwd=project, timeout=120)


@pytest.mark.parametrize("case", ["mismatched key", "expired", "not yet valid", "missing", "not PEM", "broken chain"])
def test_a_bad_ingress_certificate_is_one_sentence_and_nothing_starts(tmp_path: Path, case: str) -> None:
    project = _circuit(tmp_path, FULL)
    certs = project / "certs"
    if case == "expired":
        _user_pair(certs, start=datetime.now(UTC) - timedelta(days=10), days=2)
    elif case == "not yet valid":
        _user_pair(certs, start=datetime.now(UTC) + timedelta(days=2))
    else:
        _user_pair(certs)
    if case == "mismatched key":
        other = make_cert("other.test")
        write_pem(certs / "server.key", other.key_pem)
    elif case == "missing":
        (certs / "server.pem").unlink()
    elif case == "not PEM":
        (certs / "server.pem").write_bytes(b"\x00\xffnot a certificate\n")
    elif case == "broken chain":  # an intermediate after the leaf that did not sign it
        stranger = make_cert("Stranger CA", ca=True, days=365)
        with (certs / "server.pem").open("ab") as handle:
            handle.write(stranger.cert_pem)
    try:
        result = run_baton("up", "--mock", cwd=project, timeout=180)
        assert result.code == 1 and "Traceback" not in result.stderr, result.stderr
        message = result.stderr.strip().splitlines()[-1]
        assert "server.pem" in message or "server.key" in message, message
        assert not ok(run_baton("status", "--json", cwd=project)).json()["running"]
        assert not any("baton_adapter" in p for p in processes_under(project))
    finally:
        run_baton("down", "--all", cwd=project, timeout=120)


def test_one_refusal_leaves_every_adapter_and_file_as_it_was(tmp_path: Path) -> None:
    project = _circuit(tmp_path, FULL)
    _user_pair(project / "certs")
    try:
        ok(run_baton("up", "--mock", cwd=project, timeout=180))
        ports = {name: node["port"] for name, node in nodes(project).items()}
        before = {name: presented(port, "shop.test") for name, port in ports.items()}
        files = {p.name: p.read_bytes() for p in (project / ".baton" / "tls" / "nodes").iterdir()}
        _user_pair(project / "certs", start=datetime.now(UTC) - timedelta(days=10), days=2)  # now expired
        refused = run_baton("certs", "rotate", cwd=project, timeout=120)
        assert refused.code == 1 and "Traceback" not in refused.stderr
        assert "gateway refused its new certificate, so no adapter changed what it serves" in refused.stderr
        assert "expired" in refused.stderr
        assert {name: presented(port, "shop.test") for name, port in ports.items()} == before
        assert {p.name: p.read_bytes() for p in (project / ".baton" / "tls" / "nodes").iterdir()} == files
        runs = ok(run_baton("history", "--action", "cert-rotate", "--json", cwd=project)).json()["runs"]
        assert runs[0]["state"] == "Failed"
    finally:
        run_baton("down", "--all", cwd=project, timeout=120)


def test_an_expired_certificate_is_an_event_and_fails_status_check(tmp_path: Path) -> None:
    # node certificates of 8.6 s and no auto_rotate: they expire; the check reports it once, status --check fails
    project = _circuit(tmp_path, "security:\n  tls:\n    mode: circuit\n    lifetime_days: 0.0001\n"
                                 "    rotate_check_interval_s: 1\n    warning_days: 0\n    critical_days: 0\n")
    env = {"BATON_NO_SCHEDULES": "0"}
    try:
        ok(run_baton("up", "--mock", cwd=project, timeout=180, env=env))
        ok(run_baton("status", "--check", cwd=project, env={"BATON_NO_CONDUCTOR": "1"}))
        events = project / ".baton" / "events.jsonl"

        def expired() -> list[dict]:
            lines = events.read_text().splitlines() if events.exists() else []
            return [e for e in map(json.loads, lines) if e.get("kind") == "certs" and e["status"] == "expired"]

        reported = wait_for(lambda: len(expired()) >= 3 and expired(), 60, "the check to report three expiries")
        assert sorted(e["node_name"] for e in reported) == ["api", "gateway", "stripe"]
        checked = run_baton("status", "--check", cwd=project, env={"BATON_NO_CONDUCTOR": "1"})
        assert checked.code == 1 and "certificate node api: expired" in checked.stderr, checked.stderr
        time.sleep(3)  # three more checks: each expiry is reported once
        assert len(expired()) == 3
    finally:
        run_baton("down", "--all", cwd=project, timeout=120)
