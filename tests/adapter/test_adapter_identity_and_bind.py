"""Instance identity in /status and /health, and a clear exit 1 when a node's port cannot be bound."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import pytest

from _adapter_support import ADAPTER, refused, run, running_node, start_adapter_process
from baton_adapter.config import AdapterConfig, process_instance
from baton_adapter.errors import BindError, ConfigError
from baton_adapter.host import AdapterHost



def _get(port: int, path: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as resp:
        return json.load(resp)


@contextlib.contextmanager
def _adapter(args: list[str]) -> Iterator[tuple[subprocess.Popen[str], dict[str, Any]]]:
    proc, ready = start_adapter_process(args)
    try:
        yield proc, ready
    finally:
        proc.kill()
        proc.communicate(timeout=10)


@contextlib.contextmanager
def _listening() -> Iterator[int]:
    """A port some other process-like owner is listening on, for the duration."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]




# -- instance and pid -------------------------------------------------------------------------------------


def test_every_node_reports_the_instance_and_pid_in_status_and_health(tmp_path: Path) -> None:
    config = tmp_path / "adapter.json"
    config.write_text(json.dumps({
        "instance": "run-7f3a",
        "nodes": [{"name": "api", "port": 0, "management_port": 0, "mock": True},
                  {"name": "db", "port": 0, "management_port": 0, "mode": "tcp"}],
    }))
    with _adapter(["--config", str(config)]) as (proc, ready):
        for node in ready["nodes"]:
            status = _get(node["management_port"], "/status")
            health = _get(node["management_port"], "/health")
            assert (status["node"], status["instance"], status["pid"]) == (node["name"], "run-7f3a", proc.pid)
            assert (health["node"], health["instance"], health["pid"]) == (node["name"], "run-7f3a", proc.pid)


def test_the_instance_flag_overrides_the_file_and_defaults_to_a_random_name_per_process(tmp_path: Path) -> None:
    config = tmp_path / "adapter.yaml"
    config.write_text("instance: from-file\nnode: {name: api, port: 0, management_port: 0, mock: true}\n")
    with _adapter(["--config", str(config), "--instance", "from-flag"]) as (proc, ready):
        assert _get(ready["nodes"][0]["management_port"], "/status")["instance"] == "from-flag"
    names = []
    for _ in range(2):
        with _adapter(["--node", "api", "--port", "0", "--management-port", "0", "--mock"]) as (proc, ready):
            health = _get(ready["nodes"][0]["management_port"], "/health")
            assert health["pid"] == proc.pid and len(health["instance"]) == 12
            assert _get(ready["nodes"][0]["management_port"], "/status")["instance"] == health["instance"]
            names.append(health["instance"])
    assert names[0] != names[1]  # another process, another name: a reader's cursor knows its numbers restarted


def test_an_in_process_node_reports_this_process() -> None:
    async def main() -> None:
        async with running_node(mock=True) as node:
            assert (node.status()["instance"], node.status()["pid"]) == (process_instance(), os.getpid())
            assert (await node.health())["pid"] == os.getpid()

    run(main())


@pytest.mark.parametrize("value", [7, "two\nlines", "x" * 201])
def test_an_invalid_instance_is_refused(value: object) -> None:
    with pytest.raises(ConfigError, match="instance must be a printable string"):
        AdapterConfig.from_mapping({"instance": value, "node": {"name": "api", "port": 0}})


# -- bind failures ----------------------------------------------------------------------------------------


def test_a_busy_data_port_exits_1_with_one_line_naming_node_address_and_reason() -> None:
    with _listening() as port:
        result = subprocess.run([*ADAPTER, "--node", "api", "--port", str(port), "--management-port", "0",
                                 "--mock"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"baton-adapter: node api: cannot bind its data port 127.0.0.1:{port}: address already in use."
    ]


def test_a_busy_management_port_exits_1_with_one_line_naming_node_address_and_reason(tmp_path: Path) -> None:
    with _listening() as port:
        config = tmp_path / "adapter.json"
        config.write_text(json.dumps({"nodes": [
            {"name": "api", "port": 0, "management_port": 0, "mock": True},
            {"name": "users", "port": 0, "management_port": port, "mock": True},
        ]}))
        result = subprocess.run([*ADAPTER, "--config", str(config)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"baton-adapter: node users: cannot bind its management port 127.0.0.1:{port}: address already in use."
    ]


def test_a_failed_bind_leaves_no_node_of_the_host_listening() -> None:
    async def main() -> None:
        with _listening() as busy:
            config = AdapterConfig.from_mapping({"nodes": [
                {"name": "api", "port": 0, "management_port": 0, "mock": True},
                {"name": "raw", "port": 0, "management_port": 0, "mode": "tcp"},
                {"name": "users", "port": 0, "management_port": busy, "mock": True},
            ]})
            host = AdapterHost(config)
            with pytest.raises(BindError, match=f"node users: cannot bind its management port 127.0.0.1:{busy}"):
                await host.start()
        ports = [p for n in host.nodes.values() for p in (n.port, n.management_port) if p and p != busy]
        assert len(ports) >= 4  # api and raw bound both ports before users failed
        assert all(refused(p) for p in ports)
        assert all(n.management is None for n in host.nodes.values())

    run(main())
