"""A request head must arrive within ``limits.header_timeout_s`` (408 past it); header routing rules must name
HTTP header names (a non-latin-1 one crashed POST /routing with a 500)."""

from __future__ import annotations

import signal
import socket
import time

import aiohttp
import pytest

from _adapter_support import run, running_node, start_adapter_process
from baton_adapter.config import ConfigError, Limits


def _read_all(sock: socket.socket, deadline_s: float) -> bytes:
    sock.settimeout(deadline_s)
    data = b""
    try:
        while chunk := sock.recv(4096):
            data += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    return data


def test_a_trickled_request_head_gets_408_and_the_connection_closes() -> None:
    proc, ready = start_adapter_process(["--node", "api", "--port", "0", "--management-port", "0", "--mock",
                                         "--header-timeout-s", "1"])
    try:
        port = ready["nodes"][0]["port"]
        with socket.create_connection(("127.0.0.1", port), timeout=5) as slow, \
                socket.create_connection(("127.0.0.1", port), timeout=5) as idle:
            started = time.monotonic()
            answer = b""
            slow.settimeout(0.2)
            for byte in b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200:
                try:
                    slow.sendall(bytes([byte]))
                except (BrokenPipeError, ConnectionResetError):
                    break
                try:
                    answer += slow.recv(4096)
                except TimeoutError:
                    continue
                if answer:
                    break
            answer += _read_all(slow, 7)
            waited = time.monotonic() - started
            assert answer.startswith(b"HTTP/1.1 408 "), answer
            assert b"request head not received within 1 s" in answer
            assert 1 <= waited < 15  # the deadline fired (on the 1 s tick) and the connection closed
            # a connection that sent nothing is idle, not slow: it is still served
            idle.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert _read_all(idle, 5).startswith(b"HTTP/1.1 200 ")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)


def test_header_timeout_is_configurable_and_validated() -> None:
    assert Limits.from_mapping({}).header_timeout_s == 10.0
    assert Limits.from_mapping({"header_timeout_s": 2.5}).header_timeout_s == 2.5
    with pytest.raises(ConfigError, match="header_timeout_s must be a number"):
        Limits.from_mapping({"header_timeout_s": 0})


@pytest.mark.parametrize("header", ["x-versión", "ключ", "x version", "x:y", "", "x\r\nevil"])
def test_a_header_rule_that_is_no_header_name_is_refused_with_400_naming_the_rule(header: str) -> None:
    async def main() -> None:
        async with running_node() as node, aiohttp.ClientSession() as client:
            before = node.routing
            config = {"strategy": "header", "default_target": "a",
                      "targets": [{"name": "a", "mock": True}, {"name": "b", "mock": True}],
                      "rules": [{"header": "x-ok", "value": "1", "target": "b"},
                                {"header": header, "value": "beta", "target": "b"}]}
            async with client.post(f"http://127.0.0.1:{node.management_port}/routing", json=config) as resp:
                body = await resp.json()
                assert resp.status == 400, body
                assert body["error"].startswith("rules[1].header must be an HTTP header name")
            assert node.routing is before

    run(main())


def test_a_header_rule_value_that_is_not_latin1_is_refused() -> None:
    async def main() -> None:
        async with running_node() as node, aiohttp.ClientSession() as client:
            config = {"strategy": "header", "default_target": "a",
                      "targets": [{"name": "a", "mock": True}, {"name": "b", "mock": True}],
                      "rules": [{"header": "x-version", "value": "β", "target": "b"}]}
            async with client.post(f"http://127.0.0.1:{node.management_port}/routing", json=config) as resp:
                assert resp.status == 400
                assert (await resp.json())["error"].startswith("rules[0].value must be latin-1 text")

    run(main())
