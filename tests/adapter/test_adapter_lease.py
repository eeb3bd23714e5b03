"""The lease: an adapter process stops itself, as on SIGTERM, once the path Baton gave it is gone."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from _adapter_support import ADAPTER, raw_exchange, raw_server, refused, run, start_adapter_process, wait_for

LEASE_ENV = {"BATON_LEASE_CHECK_S": "0.2"}


def _wait_exit(proc: subprocess.Popen[str], timeout: float = 10.0) -> tuple[int, str]:
    """Poll until the process exits (killing it past ``timeout``); return its code and stderr."""
    deadline = time.monotonic() + timeout
    while proc.poll() is None:
        if time.monotonic() > deadline:
            proc.kill()
            _, err = proc.communicate(timeout=10)
            raise AssertionError(f"the adapter still ran {timeout}s after its lease was gone: {err}")
        time.sleep(0.02)
    _, err = proc.communicate(timeout=10)
    return proc.returncode, err


def _config(tmp_path: Path, **extra: Any) -> Path:
    path = tmp_path / "adapter.json"
    path.write_text(json.dumps({"nodes": [{"name": "api", "port": 0, "management_port": 0, "mock": True},
                                          {"name": "db", "port": 0, "management_port": 0, "mode": "tcp"}],
                                **extra}))
    return path


def test_deleting_the_lease_file_stops_the_adapter_with_exit_0(tmp_path: Path) -> None:
    lease = tmp_path / "lease"
    lease.write_text("")
    proc, ready = start_adapter_process(["--config", str(_config(tmp_path, lease=str(lease)))], LEASE_ENV)
    try:
        lease.unlink()
        code, err = _wait_exit(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert code == 0, err
    assert err.count(f"lease {lease} is gone: stopping") == 1
    for node in ready["nodes"]:
        assert refused(node["port"]) and refused(node["management_port"])


def test_removing_the_lease_directory_stops_the_adapter_with_exit_0(tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / ".baton").mkdir(parents=True)
    lease = project / ".baton" / "adapter.lease"
    lease.write_text("")
    proc, _ = start_adapter_process(["--node", "api", "--port", "0", "--management-port", "0", "--mock", "--lease", str(lease)],
                                    LEASE_ENV)
    try:
        shutil.rmtree(project)
        code, err = _wait_exit(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert code == 0, err
    assert "is gone: stopping" in err


def test_a_lease_stop_is_graceful_like_sigterm(tmp_path: Path) -> None:
    """The request in flight when the lease goes is answered; new connections are refused meanwhile."""

    async def main() -> None:
        arrived, release = asyncio.Event(), asyncio.Event()

        async def held(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            arrived.set()
            await release.wait()
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nslow")
            await writer.drain()
            writer.close()

        lease = tmp_path / "lease"
        lease.write_text("")
        async with raw_server(held) as backend:
            proc, ready = start_adapter_process(["--node", "api", "--port", "0", "--management-port", "0",
                                                 "--backend", f"127.0.0.1:{backend}", "--lease", str(lease)], LEASE_ENV)
            try:
                port = ready["nodes"][0]["port"]
                pending = asyncio.ensure_future(raw_exchange(port, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"))
                await asyncio.wait_for(arrived.wait(), 10)
                lease.unlink()
                await wait_for(lambda: refused(port), timeout=10)
                assert proc.poll() is None  # still finishing the request in flight
                release.set()
                code, _, body = await asyncio.wait_for(pending, 10)
                assert (code, body) == (200, b"slow")
                await wait_for(lambda: proc.poll() is not None, timeout=10)
                assert proc.returncode == 0
            finally:
                if proc.poll() is None:
                    proc.kill()
                proc.communicate(timeout=10)

    run(main())


def test_a_lease_gone_at_start_is_refused_before_binding(tmp_path: Path) -> None:
    result = subprocess.run([*ADAPTER, "--config", str(_config(tmp_path)), "--lease", str(tmp_path / "nope")],
                            capture_output=True, text=True, timeout=30, env={**os.environ, **LEASE_ENV})
    assert result.returncode == 2
    assert result.stdout == ""
    assert f"lease {tmp_path / 'nope'} does not exist" in result.stderr


@pytest.mark.parametrize("value", ["0", "-1", "soon"])
def test_an_invalid_check_interval_is_refused(tmp_path: Path, value: str) -> None:
    lease = tmp_path / "lease"
    lease.write_text("")
    result = subprocess.run([*ADAPTER, "--config", str(_config(tmp_path, lease=str(lease)))],
                            capture_output=True, text=True, timeout=30,
                            env={**os.environ, "BATON_LEASE_CHECK_S": value})
    assert result.returncode == 2
    assert "BATON_LEASE_CHECK_S must be a number of seconds" in result.stderr
