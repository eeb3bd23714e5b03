"""Zero lost requests across backend swaps (issue 13): drain waits for requests still connecting, and a
connect failure on a backend that left the routing table is re-routed to its successor.

The load tests run the adapter as a real process beside two CPU-burning processes, with backends as real
processes that are killed (SIGKILL) as soon as the drain returns. They count failures; they never time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
from typing import Any, AsyncIterator

import aiohttp
import pytest

from burners import cpu_burners
from _adapter_support import app_server, hello_app, refused_port, run, running_node, start_adapter_process, wait_for

# a tiny keep-alive HTTP/1.1 backend answering every GET with its name; prints its port once listening
BACKEND = r"""
import asyncio, sys

NAME = sys.argv[1].encode()
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(NAME), NAME)


class Backend(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport
        self.buffer = b""

    def data_received(self, data):
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            _, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
            self.transport.write(RESPONSE)


async def main():
    server = await asyncio.get_running_loop().create_server(Backend, "127.0.0.1", 0, backlog=1024)
    print(server.sockets[0].getsockname()[1], flush=True)
    await asyncio.Future()

asyncio.run(main())
"""

WORKERS = 32
ROUNDS = int(os.environ.get("ZL_ROUNDS", "8"))


class BackendProcess:
    """A backend as a real process; ``kill()`` is a SIGKILL (every connection to it dies)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.proc = subprocess.Popen([sys.executable, "-c", BACKEND, name], stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        self.port = int(self.proc.stdout.readline())

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=10)


@contextlib.asynccontextmanager
async def adapter(backend_port: int) -> AsyncIterator[dict[str, Any]]:
    proc, ready = start_adapter_process(["--node", "api", "--port", "0", "--management-port", "0",
                                         "--backend", f"127.0.0.1:{backend_port}"])
    try:
        yield ready["nodes"][0]
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Load:
    """Concurrent clients sending GETs until stopped; every outcome is counted."""

    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}/"
        self.ok = 0
        self.failures: list[str] = []
        self.stopping = False

    async def worker(self, client: aiohttp.ClientSession) -> None:
        while not self.stopping:
            try:
                async with client.get(self.url) as resp:
                    body = await resp.read()
                    if resp.status == 200:
                        self.ok += 1
                    else:
                        self.failures.append(f"{resp.status} {body[:200]!r}")
            except aiohttp.ClientError as exc:
                self.failures.append(repr(exc))


async def _post(client: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> dict[str, Any]:
    async with client.post(url, json=body) as resp:
        data = await resp.json()
        assert resp.status == 200, data
        return data


def _canary(stable: BackendProcess, canary: BackendProcess, canary_weight: int) -> dict[str, Any]:
    return {"strategy": "canary", "targets": [
        {"name": "stable", "host": "127.0.0.1", "port": stable.port, "weight": 100 - canary_weight},
        {"name": "canary", "host": "127.0.0.1", "port": canary.port, "weight": canary_weight},
    ]}


@pytest.mark.parametrize("how", ["backend", "canary"])
def test_repeated_swaps_under_load_on_a_busy_machine_lose_no_request(how: str) -> None:
    """Swap the backend again and again under load; kill the old one the moment the drain returns."""

    async def main() -> None:
        current = BackendProcess("b0")
        spawned = [current]
        try:
            async with adapter(current.port) as node:
                mgmt = f"http://127.0.0.1:{node['management_port']}"
                load = Load(node["port"])
                # the load has its own session: its workers hold every connection of their pool
                async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=WORKERS)) as traffic, \
                        aiohttp.ClientSession() as client:
                    workers = [asyncio.ensure_future(load.worker(traffic)) for _ in range(WORKERS)]
                    await wait_for(lambda: load.ok >= 200, timeout=30)
                    drains = []
                    for i in range(1, ROUNDS + 1):
                        new = BackendProcess(f"b{i}")
                        spawned.append(new)
                        if how == "backend":
                            await _post(client, f"{mgmt}/backend", {"host": "127.0.0.1", "port": new.port})
                        else:
                            await _post(client, f"{mgmt}/routing", _canary(current, new, 50))
                            await asyncio.sleep(0.05)
                            await _post(client, f"{mgmt}/routing", _canary(current, new, 100))
                        drains.append(await _post(client, f"{mgmt}/drain", {"timeout_s": 30}))
                        current.kill()  # right after the drain: nothing may be in flight to it or about to be
                        current = new
                        if how == "canary":
                            await _post(client, f"{mgmt}/routing", _canary(current, current, 0))
                        before = load.ok
                        await wait_for(lambda: load.ok >= before + 50, timeout=30)
                    load.stopping = True
                    await asyncio.gather(*workers)
            assert all(d["drained"] for d in drains), drains
            assert load.failures == [], f"{len(load.failures)} failed of {load.ok + len(load.failures)}: " \
                                        f"{load.failures[:5]}"
            assert load.ok >= 200 + ROUNDS * 50
        finally:
            for b in spawned:
                if b.proc.poll() is None:
                    b.kill()

    with cpu_burners():
        run(main())


def test_a_connect_failure_on_a_backend_just_removed_is_rerouted_to_the_new_one() -> None:
    """The request picked the old backend and is still connecting when the swap lands: the drain waits for
    it, its connect fails (the old backend is gone), and it is answered by the new backend."""

    async def main() -> None:
        old_port = refused_port()
        old = ("127.0.0.1", old_port)
        async with app_server(hello_app("new")) as new_port, running_node(backend={"port": old_port}) as node:
            gate = asyncio.Event()
            connect = node.pool.connect

            async def held_connect(addr: tuple[str, int], timeout_s: float) -> Any:
                if addr == old:
                    await gate.wait()  # the connect to the old backend is slow: the swap lands meanwhile
                return await connect(addr, timeout_s)

            node.pool.connect = held_connect  # type: ignore[method-assign]
            async with aiohttp.ClientSession() as client:

                async def get() -> tuple[int, str]:
                    async with client.get(f"http://127.0.0.1:{node.port}/") as resp:
                        return resp.status, await resp.text()

                request = asyncio.ensure_future(get())
                await wait_for(lambda: node.in_flight() == {f"127.0.0.1:{old_port}": 1})  # counted while connecting
                await _post(client, f"http://127.0.0.1:{node.management_port}/backend",
                            {"host": "127.0.0.1", "port": new_port})
                drain = asyncio.ensure_future(
                    _post(client, f"http://127.0.0.1:{node.management_port}/drain", {"timeout_s": 10}))
                await asyncio.sleep(0.2)
                assert not drain.done(), "the drain returned while a request was still connecting to the old backend"
                gate.set()
                assert await request == (200, "new")
                result = await drain
                assert result["drained"] is True and result["in_flight"] == {}
                assert node.in_flight() == {}
            assert node.policy.retries == 0  # the edge policy allows no retry: this was a re-route
            assert node.breaker_states().get("primary", "closed") == "closed"

    run(main())


def test_a_connect_failure_is_rerouted_to_another_weighted_target() -> None:
    """Nothing was sent, so the request tries the other target instead of answering 502 (retries 0)."""

    async def main() -> None:
        dead = refused_port()
        async with app_server(hello_app("live")) as live, running_node(routing={
            "strategy": "weighted",
            "targets": [{"name": "dead", "host": "127.0.0.1", "port": dead, "weight": 50},
                        {"name": "live", "host": "127.0.0.1", "port": live, "weight": 50}],
        }) as node, aiohttp.ClientSession() as client:
            for _ in range(20):
                async with client.get(f"http://127.0.0.1:{node.port}/") as resp:
                    assert (resp.status, await resp.text()) == (200, "live")
            assert node.in_flight() == {}

    run(main())


def test_a_connect_failure_with_no_other_target_still_answers_502() -> None:
    """Re-routing is bounded: with one dead backend and an unchanged table the request fails at once."""

    async def main() -> None:
        async with running_node(backend={"port": refused_port()}) as node, aiohttp.ClientSession() as client:
            async with client.get(f"http://127.0.0.1:{node.port}/") as resp:
                assert resp.status == 502
                assert "failed" in (await resp.json())["error"]
            assert node.in_flight() == {}

    run(main())


def test_a_weight_zero_target_is_no_longer_routed_to_and_drains() -> None:
    """A canary at weight 0 receives nothing new (not even a sticky client), so drain waits only for what it
    already has and then reports it drained."""

    async def main() -> None:
        async with app_server(hello_app("stable")) as stable, \
                app_server(hello_app("canary", delay=0.3)) as canary, running_node(routing={
                    "strategy": "canary", "sticky_cookie": "pin",
                    "targets": [{"name": "stable", "host": "127.0.0.1", "port": stable, "weight": 0},
                                {"name": "canary", "host": "127.0.0.1", "port": canary, "weight": 100}],
                }) as node, aiohttp.ClientSession() as client:
            url = f"http://127.0.0.1:{node.port}/"
            mgmt = f"http://127.0.0.1:{node.management_port}"
            slow = asyncio.ensure_future(client.get(url))
            await wait_for(lambda: f"127.0.0.1:{canary}" in node.in_flight())
            await _post(client, f"{mgmt}/routing", {"strategy": "canary", "sticky_cookie": "pin", "targets": [
                {"name": "stable", "host": "127.0.0.1", "port": stable, "weight": 100},
                {"name": "canary", "host": "127.0.0.1", "port": canary, "weight": 0}]})
            for _ in range(10):
                async with client.get(url, headers={"Cookie": "pin=canary"}) as resp:
                    assert await resp.text() == "stable"
            result = await _post(client, f"{mgmt}/drain", {"timeout_s": 10})
            resp = await slow
            assert resp.status == 200 and await resp.text() == "canary"
            resp.release()
            assert result["drained"] is True and result["waited_ms"] > 50

    run(main())


def test_routed_addrs_leave_out_weight_zero_targets_and_mocks() -> None:
    from baton_adapter.routing import RoutingTable

    table = RoutingTable.from_mapping({"strategy": "weighted", "targets": [
        {"name": "a", "host": "127.0.0.1", "port": 8001, "weight": 100},
        {"name": "b", "host": "127.0.0.1", "port": 8002, "weight": 0},
        {"name": "m", "mock": True, "weight": 0}]})
    assert table.routed_addrs() == {("127.0.0.1", 8001)}
    assert json.loads(json.dumps(table.to_json()))["targets"][1]["weight"] == 0
    header = RoutingTable.from_mapping({"strategy": "header", "default_target": "a", "targets": [
        {"name": "a", "host": "127.0.0.1", "port": 8001, "weight": 0},
        {"name": "b", "host": "127.0.0.1", "port": 8002, "weight": 0}]})
    assert header.routed_addrs() == {("127.0.0.1", 8001), ("127.0.0.1", 8002)}
