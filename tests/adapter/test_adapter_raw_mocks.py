"""The mock of the raw stream modes: a mocked ``tcp`` or ``protobuf`` node echoes (frame by frame for
protobuf), with half-close, backpressure, the frame limit, a split with a real backend, and the same counters
and signals as a real backend. Real asyncio clients and backends on 127.0.0.1."""

from __future__ import annotations

import asyncio

from baton_adapter.framing import frame

from _adapter_support import raw_server, run, running_node, wait_for


async def read_frame(reader: asyncio.StreamReader) -> bytes:
    header = await reader.readexactly(4)
    return await reader.readexactly(int.from_bytes(header, "big"))


def test_a_mocked_tcp_node_echoes_with_half_close_and_counts_the_stream() -> None:
    async def main() -> None:
        async with running_node(mode="tcp", backend={"mock": True}) as node:
            reader, writer = await asyncio.open_connection("127.0.0.1", node.port)
            writer.write(b"hello ")
            assert await asyncio.wait_for(reader.readexactly(6), 10) == b"hello "
            writer.write(b"world")
            writer.write_eof()  # half-close: the echo still answers, then ends its side
            assert await asyncio.wait_for(reader.read(), 10) == b"world"
            writer.close()
            await wait_for(lambda: node.telemetry.streams.open == 0)
            stream = node.telemetry.streams.targets["primary"]
            assert (stream.bytes_in, stream.bytes_out, stream.errors) == (11, 11, {})
            signal = node.telemetry.signals_json(1)[0]
            assert (signal["method"], signal["status_code"]) == ("TCP", 200)
            assert not node.pool.busy

    run(main())


def test_a_mocked_tcp_node_echoes_32_mib_to_a_slow_reader_holding_at_most_a_read_of_it() -> None:
    payload = bytes(range(256)) * 131072  # 32 MiB: more than loopback's socket buffers take

    async def main() -> None:
        async with running_node(mode="tcp", backend={"mock": True}) as node:
            reader, writer = await asyncio.open_connection("127.0.0.1", node.port)

            async def send() -> None:
                writer.write(payload)
                await writer.drain()
                writer.write_eof()

            sender = asyncio.create_task(send())
            await asyncio.sleep(0.5)  # the client does not read yet: the echo must push back, not buffer it
            conn = next(iter(node.connections))
            assert conn.transport.get_write_buffer_size() < 1 << 20
            received = bytearray()
            while chunk := await asyncio.wait_for(reader.read(65536), 10):
                received += chunk
            await sender
            assert bytes(received) == payload
            writer.close()

    run(main())


def test_a_mocked_protobuf_node_echoes_frames_and_keeps_the_frame_limit() -> None:
    payloads = [b"", b"one", bytes(range(256)) * 100]

    async def main() -> None:
        async with running_node(mode="protobuf", backend={"mock": True}, limits={"max_frame_bytes": 100_000}) as node:
            reader, writer = await asyncio.open_connection("127.0.0.1", node.port)
            for payload in payloads:
                data = frame(payload)
                writer.write(data[:3])  # split inside the header
                await writer.drain()
                writer.write(data[3:])
                assert await asyncio.wait_for(read_frame(reader), 10) == payload
            writer.write(frame(b"x" * 100_001))  # over the node's limit: the connection ends at a boundary
            assert await asyncio.wait_for(reader.read(), 10) == b""
            writer.close()
            await wait_for(lambda: node.telemetry.streams.open == 0)
            stream = node.telemetry.streams.targets["primary"]
            assert (stream.frames_in, stream.frames_out) == (len(payloads), len(payloads))
            assert stream.errors == {"client_frame_too_large": 1}

    run(main())


def test_connections_split_between_a_real_backend_and_the_mock() -> None:
    async def real(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"real:" + await reader.read())
        await writer.drain()
        writer.close()

    async def main() -> None:
        async with raw_server(real) as port, running_node(mode="tcp", routing={"strategy": "weighted", "targets": [
                {"name": "live", "host": "127.0.0.1", "port": port, "weight": 50},
                {"name": "mock", "mock": True, "weight": 50}]}) as node:
            answers = []
            for _ in range(40):
                reader, writer = await asyncio.open_connection("127.0.0.1", node.port)
                writer.write(b"ping")
                writer.write_eof()
                answers.append(await asyncio.wait_for(reader.read(), 10))
                writer.close()
            assert set(answers) == {b"ping", b"real:ping"}  # both sides answered, each whole
            await wait_for(lambda: node.telemetry.streams.open == 0)
            targets = node.telemetry.streams.targets
            assert targets["live"].opened + targets["mock"].opened == 40
            assert not node.pool.busy

    run(main())
