"""Raw TCP pass-through nodes (tcp and grpc modes; protobuf has its own: test_adapter_protobuf.py) and the
protocol handler registry."""

from __future__ import annotations

import asyncio

import pytest

from baton_adapter import protocols
from baton_adapter.config import ConfigError
from baton_adapter.node import Node

from _adapter_support import node_config, raw_server, refused_port, run, running_node, wait_for


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    data = await reader.read()  # until the client half-closes
    writer.write(b"echo:" + data)
    await writer.drain()
    writer.close()


@pytest.mark.parametrize("mode", ["tcp"])
def test_bytes_pass_through_with_half_close(mode: str) -> None:
    async def main() -> None:
        async with raw_server(_echo) as port, running_node(mode=mode, backend={"port": port}) as node:
            reader, writer = await asyncio.open_connection("127.0.0.1", node.port)
            frame = len(b"payload").to_bytes(4, "big") + b"payload"
            writer.write(frame)
            writer.write_eof()
            assert await asyncio.wait_for(reader.read(), 10) == b"echo:" + frame
            writer.close()
            await wait_for(lambda: node.telemetry.requests_total == 1)
            signal = node.telemetry.signals_json(1)[0]
            assert signal["method"] == "TCP" and signal["status_code"] == 200
            assert node.telemetry.bytes_in == len(frame) and node.telemetry.bytes_out == len(frame) + 5
            assert not node.pool.busy

    run(main())


def test_connect_refused_is_retried_on_another_target() -> None:
    async def main() -> None:
        async with raw_server(_echo) as live, running_node(
            mode="tcp", policy={"retries": 1, "retry_backoff_ms": 0, "retry_budget_ratio": 1.0},
            routing={"strategy": "weighted", "targets": [
                {"name": "dead", "host": "127.0.0.1", "port": refused_port(), "weight": 50},
                {"name": "live", "host": "127.0.0.1", "port": live, "weight": 50}]},
        ) as node:
            for _ in range(10):
                reader, writer = await asyncio.open_connection("127.0.0.1", node.port)
                writer.write(b"x")
                writer.write_eof()
                assert await asyncio.wait_for(reader.read(), 10) == b"echo:x"
                writer.close()

    run(main())


def test_unreachable_backend_closes_the_connection() -> None:
    async def main() -> None:
        async with running_node(mode="tcp", backend={"port": refused_port()}) as node:
            reader, writer = await asyncio.open_connection("127.0.0.1", node.port)
            assert await asyncio.wait_for(reader.read(), 10) == b""
            writer.close()
            await wait_for(lambda: node.telemetry.requests_total == 1)
            assert node.telemetry.signals_json(1)[0]["status_code"] == 502

    run(main())


@pytest.mark.parametrize("mode", ["tcp", "protobuf"])
def test_a_connection_no_backend_takes_holds_until_the_heal_and_its_bytes_arrive(mode: str) -> None:
    from baton_adapter.framing import frame
    from baton_adapter.routing import RoutingTable

    async def mirror(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(await reader.read())  # whole frames back, as they came
        await writer.drain()
        writer.close()

    async def main() -> None:
        async with raw_server(mirror) as live, running_node(mode=mode, backend={"port": refused_port()},
                                                            limits={"hold_s": 30}) as node:
            clients = []
            for i in range(5):
                reader, writer = await asyncio.open_connection("127.0.0.1", node.port)
                writer.write(frame(b"held %d" % i))
                writer.write_eof()
                clients.append((reader, writer))
            await wait_for(lambda: len(node.held) == 5)  # each waits for a backend; none was closed
            node.set_routing(RoutingTable.from_mapping({"strategy": "single", "targets": [
                {"name": "primary", "host": "127.0.0.1", "port": live}]}))  # what the custodian's heal does
            for i, (reader, writer) in enumerate(clients):
                assert await asyncio.wait_for(reader.read(), 10) == frame(b"held %d" % i)
                writer.close()
            await wait_for(lambda: node.telemetry.streams.open == 0)
            assert not node.held and not node.pool.busy

        async with running_node(mode=mode, backend={"port": refused_port()}, limits={"hold_s": 0.5}) as node:
            reader, writer = await asyncio.open_connection("127.0.0.1", node.port)
            assert await asyncio.wait_for(reader.read(), 10) == b""  # closed once the hold is over
            writer.close()
            await wait_for(lambda: node.telemetry.requests_total == 1)
            assert not node.held

    run(main())


GREETER = """
import socket, sys, threading
mode = sys.argv[1]
server = socket.create_server(("127.0.0.1", 0))
print(server.getsockname()[1], flush=True)
def serve(conn):
    with conn:
        conn.sendall(b"220 ready\\r\\n" if mode == "greet" else b"bye")
        if mode == "greet":
            data = b""
            while chunk := conn.recv(65536):
                data += chunk
            conn.sendall(b"echo:" + data)
while True:
    conn, _ = server.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
"""


@pytest.mark.parametrize("mode", ["greet", "hit-and-run"])
def test_a_backend_that_speaks_first_is_heard_whatever_the_timing(mode: str) -> None:
    """A greeting (as SMTP's or MySQL's) sent by another process the moment it accepts can arrive before the
    adapter's connecting coroutine resumes: it is kept and relayed, as is a backend that greets and closes."""
    import subprocess
    import sys

    backend = subprocess.Popen([sys.executable, "-c", GREETER, mode], stdout=subprocess.PIPE, text=True)
    try:
        port = int(backend.stdout.readline())  # type: ignore[union-attr]

        async def main() -> None:
            async with running_node(mode="tcp", backend={"port": port}) as node:
                for i in range(100):
                    reader, writer = await asyncio.open_connection("127.0.0.1", node.port)
                    if mode == "greet":
                        assert await asyncio.wait_for(reader.readexactly(11), 10) == b"220 ready\r\n"
                        writer.write(b"%d" % i)
                        writer.write_eof()
                        assert await asyncio.wait_for(reader.read(), 10) == b"echo:%d" % i
                    else:
                        assert await asyncio.wait_for(reader.read(), 10) == b"bye"
                    writer.close()
                await wait_for(lambda: node.telemetry.streams.open == 0)
                assert node.telemetry.streams.targets["primary"].opened == 100

        run(main())
    finally:
        backend.kill()
        backend.wait(10)


def test_unknown_mode_fails_to_start_with_the_registered_list() -> None:
    async def main() -> None:
        node = Node(node_config(mode="mqtt"))
        with pytest.raises(ConfigError, match="registered"):
            await node.start()

    run(main())
    assert {"http", "soap", "tcp", "grpc", "protobuf"} <= set(protocols.registered())
