"""Drills for the stream and call modes: gRPC calls through a swap and the kill -9 of the old backend's
process, tcp connections through a heal, both with two CPU-burning processes beside them (zero failed calls,
zero lost connections); and hostile bytes on a grpc port (not HTTP/2, a flood of streams, a huge header block),
after which the node still serves. Real grpcio clients and servers, real processes, 127.0.0.1 only."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from typing import Any

import pytest

grpc = pytest.importorskip("grpc")

from _adapter_support import SteadyCalls, grpc_node as adapter, on_loop, raw_server, refused_port, run, running_node, until, wait_for  # noqa: E402
from burners import cpu_burners  # noqa: E402

# a grpcio echo server in a process of its own (so it can be killed with SIGKILL), printing its port
GRPC_BACKEND = """
import sys, grpc
from concurrent import futures
name = sys.argv[1].encode()
handler = grpc.method_handlers_generic_handler("drill.Echo", {
    "Unary": grpc.unary_unary_rpc_method_handler(lambda request, context: name + b":" + request)})
server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
server.add_generic_rpc_handlers((handler,))
print(server.add_insecure_port("127.0.0.1:0"), flush=True)
server.start()
server.wait_for_termination()
"""


class Backend:
    def __init__(self, name: str) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", GRPC_BACKEND, name], stdout=subprocess.PIPE, text=True)
        self.port = int(self.proc.stdout.readline())  # type: ignore[union-attr]

    def kill(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)


def _single(port: int) -> Any:
    from baton_adapter.routing import RoutingTable

    return RoutingTable.from_mapping({"strategy": "single", "targets": [
        {"name": "primary", "host": "127.0.0.1", "port": port}]})


def test_grpc_calls_through_swaps_and_kill_9_of_the_old_backend_with_cpu_burners_fail_none() -> None:
    backends = [Backend("b0")]
    try:
        with cpu_burners(), adapter(backend={"port": backends[0].port}, limits={"hold_s": 30}) as node, \
                grpc.insecure_channel(f"127.0.0.1:{node.port}") as channel:
            unary = channel.unary_unary("/drill.Echo/Unary")
            with SteadyCalls(lambda: unary(b"x", timeout=60)) as load:
                for i in range(1, 4):
                    until(lambda: load.served.count(b"b%d:x" % (i - 1)) >= 30, 60)
                    backends.append(Backend(f"b{i}"))
                    old = backends[i - 1]

                    async def swap_and_drain(new: int = backends[i].port, old_port: int = old.port) -> dict:
                        node.set_routing(_single(new))
                        return await node.drain(30, ("127.0.0.1", old_port))

                    assert on_loop(node, swap_and_drain())["drained"]
                    old.kill()  # SIGKILL the moment the drain says no call is on it
                until(lambda: load.served.count(b"b3:x") >= 30, 60)
            failed = load.failed
            assert failed == [], failed
            assert not node.held and not node.pool.busy
    finally:
        for backend in backends:
            if backend.proc.poll() is None:
                backend.kill()
    assert all(b.proc.poll() is not None for b in backends)  # no backend process left behind


def test_tcp_connections_through_a_heal_with_cpu_burners_lose_none() -> None:
    async def mirror(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(await reader.read())
        await writer.drain()
        writer.close()

    async def main() -> None:
        with cpu_burners():
            async with raw_server(mirror) as live, running_node(mode="tcp", backend={"port": refused_port()},
                                                                limits={"hold_s": 30}) as node:
                async def one(i: int) -> bytes:
                    reader, writer = await asyncio.open_connection("127.0.0.1", node.port)
                    writer.write(b"conn %d" % i)
                    writer.write_eof()
                    data = await asyncio.wait_for(reader.read(), 60)
                    writer.close()
                    return data

                tasks = [asyncio.create_task(one(i)) for i in range(50)]
                await wait_for(lambda: len(node.held) == 50, 30)  # the backend is dead: every one holds
                node.set_routing(_single(live))  # the heal
                assert await asyncio.gather(*tasks) == [b"conn %d" % i for i in range(50)]
                assert not node.held and not node.pool.busy

    run(main())


def test_hostile_bytes_on_a_grpc_port_close_only_their_own_connection() -> None:
    server = Backend("ok")
    try:
        with adapter(backend={"port": server.port}) as node:
            # not HTTP/2 at all, an HTTP/1.1 request, and a preface followed by garbage
            for junk in (os.urandom(4096), b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
                         b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\xff" * 1000):
                with socket.create_connection(("127.0.0.1", node.port), timeout=10) as conn:
                    conn.sendall(junk)
                    conn.settimeout(10)
                    while conn.recv(65536):  # the adapter closes it (after its GOAWAY, if any)
                        pass
            with grpc.insecure_channel(f"127.0.0.1:{node.port}") as channel:
                unary = channel.unary_unary("/drill.Echo/Unary")
                # a header block of 64 KiB of metadata, and 300 calls at once on one connection
                with pytest.raises(grpc.RpcError):
                    unary(b"x", metadata=[("x-big", "v" * 65536)], timeout=30)
                futures = [unary.future(b"%d" % i, timeout=60) for i in range(300)]
                assert sorted(f.result() for f in futures) == sorted(b"ok:%d" % i for i in range(300))
            until(lambda: node.telemetry.active_requests == 0 and not node.pool.busy)
    finally:
        server.kill()
