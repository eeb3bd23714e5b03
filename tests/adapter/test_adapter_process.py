"""The ``baton-adapter`` command as a real process: flags, config files, graceful SIGTERM, many nodes' memory."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from _adapter_support import raw_exchange, raw_server, refused, run, start_adapter_process, wait_for

ADAPTER = Path(sys.executable).with_name("baton-adapter")


def _start(args: list[str], env: dict[str, str] | None = None) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    return start_adapter_process(args, env, program=[str(ADAPTER)])  # the installed entry point


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=10)


def _held_backend(arrived: asyncio.Event, release: asyncio.Event):
    """A raw backend that signals each request's arrival and answers it once ``release`` is set."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            arrived.set()
            await release.wait()
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nslow")
            await writer.drain()
            await reader.read()
        except ConnectionError:
            pass
        writer.close()

    return handler


def test_sigterm_finishes_the_in_flight_request_then_exits_zero() -> None:
    async def main() -> None:
        arrived, release = asyncio.Event(), asyncio.Event()
        async with raw_server(_held_backend(arrived, release)) as port:
            proc, ready = _start(["--node", "api", "--port", "0", "--management-port", "0",
                                  "--backend", f"127.0.0.1:{port}", "--grace", "10"])
            try:
                node = ready["nodes"][0]
                assert node["name"] == "api" and node["port"] > 0 and node["management_port"] > 0
                request = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"
                pending = asyncio.ensure_future(raw_exchange(node["port"], request))
                await asyncio.wait_for(arrived.wait(), 10)
                proc.send_signal(signal.SIGTERM)
                # the adapter must now refuse new connections while the in-flight request is still open
                await wait_for(lambda: refused(node["port"]), timeout=10)
                release.set()
                code, _, body = await asyncio.wait_for(pending, 10)
                assert (code, body) == (200, b"slow")
                await wait_for(lambda: proc.poll() is not None, timeout=15)
                assert proc.returncode == 0
            finally:
                _stop(proc)

    run(main())




def test_sigterm_cuts_requests_that_outlive_the_grace_period() -> None:
    async def main() -> None:
        arrived, never = asyncio.Event(), asyncio.Event()
        async with raw_server(_held_backend(arrived, never)) as port:
            proc, ready = _start(["--node", "api", "--port", "0", "--management-port", "0",
                                  "--backend", f"127.0.0.1:{port}", "--grace", "0.3"])
            try:
                data_port = ready["nodes"][0]["port"]
                reader, writer = await asyncio.open_connection("127.0.0.1", data_port)
                writer.write(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
                await writer.drain()
                await asyncio.wait_for(arrived.wait(), 10)
                proc.send_signal(signal.SIGTERM)
                await wait_for(lambda: proc.poll() is not None, timeout=15)
                assert proc.returncode == 0
                assert await asyncio.wait_for(reader.read(), 5) == b""  # cut, not answered
                writer.close()
            finally:
                _stop(proc)

    run(main())


def test_invalid_flags_exit_2_with_a_sentence() -> None:
    result = subprocess.run([str(ADAPTER), "--node", "api", "--port", "0", "--backend", "nowhere"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert "--backend must be HOST:PORT" in result.stderr


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")
def test_one_hundred_mocked_nodes_in_one_process_stay_small(tmp_path: Path) -> None:
    config = {"nodes": [{"name": f"n{i}", "port": 0, "management_port": 0, "mock": True} for i in range(100)]}
    path = tmp_path / "adapter.json"
    path.write_text(json.dumps(config))
    started = time.monotonic()
    proc, ready = _start(["--config", str(path)])
    try:
        startup = time.monotonic() - started
        assert len(ready["nodes"]) == 100
        first, last = ready["nodes"][0], ready["nodes"][-1]
        for node in (first, last):
            with urllib.request.urlopen(f"http://127.0.0.1:{node['port']}/health", timeout=10) as resp:
                assert resp.status == 200
            with urllib.request.urlopen(f"http://127.0.0.1:{node['management_port']}/status", timeout=10) as resp:
                assert json.load(resp)["listening"] is True
        rss_mb = _rss_kb(proc.pid) / 1024
        print(f"100 mocked nodes: ready in {startup:.2f}s, RSS {rss_mb:.1f} MB")
        assert rss_mb < 120, f"RSS {rss_mb:.1f} MB"
    finally:
        _stop(proc)
