"""protobuf nodes (4-byte big-endian length-prefixed frames): frames through the adapter split across reads, the
16 MB limit both ways, per-frame telemetry, backend failures, a swap under a steady frame load with zero cut
frames, and a shutdown that waits for in-flight frames. Real asyncio backends and clients on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import subprocess
from pathlib import Path
from typing import AsyncIterator

import aiohttp

from baton_adapter.framing import MAX_FRAME_BYTES, frame

from _adapter_support import refused, run, running_node, wait_for
from _tls_support import TestCA
from test_adapter_prometheus import promtool


async def read_frame(reader: asyncio.StreamReader) -> bytes:
    header = await reader.readexactly(4)
    return await reader.readexactly(int.from_bytes(header, "big"))


class FrameBackend:
    """A backend answering each frame with ``tag:payload``; it records what it received and how streams ended."""

    def __init__(self, tag: bytes) -> None:
        self.tag = tag
        self.received: list[bytes] = []
        self.cut = 0  # streams that ended inside a frame
        self.open = 0
        self.arrived = asyncio.Event()
        self.release: asyncio.Event | None = None  # set: hold every answer until it is set
        self.answer = self._echo
        self.close_after_answer = False

    def _echo(self, payload: bytes) -> bytes | None:
        return frame(self.tag + b":" + payload)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.open += 1
        try:
            while True:
                try:
                    payload = await read_frame(reader)
                except asyncio.IncompleteReadError as exc:
                    self.cut += bool(exc.partial)
                    break
                self.received.append(payload)
                self.arrived.set()
                if self.release is not None:
                    await self.release.wait()
                answer = self.answer(payload)
                if answer is None:  # close without answering
                    break
                writer.write(answer)
                await writer.drain()
                if self.close_after_answer:
                    break
        except ConnectionError:
            pass
        finally:
            self.open -= 1
            writer.close()


@contextlib.asynccontextmanager
async def serving(backend: FrameBackend) -> AsyncIterator[tuple[int, asyncio.AbstractServer]]:
    server = await asyncio.start_server(backend.handle, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1], server
    finally:
        server.close()


async def _get(node, path: str) -> dict | str:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{node.management_port}{path}") as resp:
            assert resp.status == 200
            return await resp.json() if resp.content_type == "application/json" else await resp.text()


async def _post(node, path: str, body: dict) -> dict:
    async with aiohttp.ClientSession() as session:
        async with session.post(f"http://127.0.0.1:{node.management_port}{path}", json=body) as resp:
            assert resp.status == 200, await resp.text()
            return await resp.json()


def test_frames_split_across_reads_pass_whole_and_are_counted_per_frame() -> None:
    payloads = [b"", b"x", b"hello protobuf", bytes(range(256)) * 300, b"\x00\x00\x00\x09" * 5, b"z" * (3 << 20)]

    async def main() -> None:
        backend = FrameBackend(b"a")
        async with serving(backend) as (port, _), running_node(mode="protobuf", backend={"port": port}) as node:
            reader, writer = await asyncio.open_connection("127.0.0.1", node.port)
            for payload in payloads:
                data = frame(payload)
                # the header split, then the header's end with the body's start, then the rest
                for part in (data[:2], data[2:7], data[7:]):
                    writer.write(part)
                    await writer.drain()
                assert await asyncio.wait_for(read_frame(reader), 10) == b"a:" + payload
            writer.write_eof()
            assert await asyncio.wait_for(reader.read(), 10) == b""  # the backend saw EOF at a boundary
            writer.close()
            await wait_for(lambda: node.telemetry.streams.open == 0)
            assert backend.received == payloads and backend.cut == 0
            metrics = await _get(node, "/metrics")
            stream = metrics["streams"]["targets"]["primary"]
            assert (stream["frames_in"], stream["frames_out"], stream["errors"]) == (len(payloads), len(payloads), {})
            assert stream["bytes_in"] == sum(4 + len(p) for p in payloads)
            assert stream["bytes_out"] == sum(6 + len(p) for p in payloads)
            assert (metrics["requests_total"], metrics["requests_failed"]) == (len(payloads), 0)
            signals = node.telemetry.signals_json()
            assert [(s["method"], s["status_code"]) for s in signals] == [("FRAME", 200)] * len(payloads)
            assert [s["body_bytes"] for s in signals] == [2 + len(p) for p in payloads]
            text = await _get(node, "/metrics/prometheus")
            assert f'baton_stream_frames_total{{direction="in",node="api",role="service",target="primary"}} ' \
                   f'{float(len(payloads))}' in text
            check = subprocess.run([promtool(), "check", "metrics"], input=text, capture_output=True, text=True,
                                   timeout=60)
            assert check.returncode == 0, check.stdout + check.stderr

    run(main())


def test_a_client_frame_over_16_mb_closes_the_connection_and_is_counted() -> None:
    async def main() -> None:
        backend = FrameBackend(b"a")
        async with serving(backend) as (port, _), running_node(mode="protobuf", backend={"port": port}) as node:
            reader, writer = await asyncio.open_connection("127.0.0.1", node.port)
            writer.write(frame(b"fine"))
            assert await asyncio.wait_for(read_frame(reader), 10) == b"a:fine"
            writer.write(frame(b"also fine") + (MAX_FRAME_BYTES + 1).to_bytes(4, "big") + b"the start of a huge one")
            # the frames before it are relayed and answered, then the connection ends, at a boundary
            assert await asyncio.wait_for(read_frame(reader), 10) == b"a:also fine"
            assert await asyncio.wait_for(reader.read(), 10) == b""
            writer.close()
            await wait_for(lambda: node.telemetry.streams.open == 0)
            await wait_for(lambda: backend.open == 0)
            assert backend.received == [b"fine", b"also fine"] and backend.cut == 0  # not a byte of it went on
            stream = node.telemetry.streams.targets["primary"]
            assert stream.errors == {"client_frame_too_large": 1}
            assert sorted(s["status_code"] for s in node.telemetry.signals_json()) == [200, 200, 413]

        # the limit is the largest payload allowed, and it can be set per node
        backend.answer = lambda p: frame(p[:10])
        async with serving(backend) as (port, _), running_node(
                mode="protobuf", backend={"port": port}, limits={"max_frame_bytes": 1000}) as node:
            reader, writer = await asyncio.open_connection("127.0.0.1", node.port)
            writer.write(frame(b"k" * 1000))
            assert await asyncio.wait_for(read_frame(reader), 10) == b"k" * 10
            writer.write(frame(b"k" * 1001))
            assert await asyncio.wait_for(reader.read(), 10) == b""
            writer.close()

    run(main())


def test_a_backend_frame_over_the_limit_closes_the_connection_and_counts_against_the_target() -> None:
    async def main() -> None:
        backend = FrameBackend(b"a")
        backend.answer = lambda p: frame(b"ok") if p == b"1" else (MAX_FRAME_BYTES + 1).to_bytes(4, "big") + b"junk"
        async with serving(backend) as (port, _), running_node(mode="protobuf", backend={"port": port}) as node:
            reader, writer = await asyncio.open_connection("127.0.0.1", node.port)
            writer.write(frame(b"1"))
            assert await asyncio.wait_for(read_frame(reader), 10) == b"ok"
            writer.write(frame(b"2"))
            assert await asyncio.wait_for(reader.read(), 10) == b""  # no byte of the oversized frame
            writer.close()
            await wait_for(lambda: node.telemetry.streams.open == 0)
            assert node.telemetry.streams.targets["primary"].errors == {"backend_frame_too_large": 1}
            assert node.telemetry.requests_failed == 1
            assert [s["status_code"] for s in node.telemetry.signals_json()] == [200, 502]

    run(main())


def test_a_backend_that_ends_without_answering_or_inside_a_frame_fails_those_frames() -> None:
    async def main() -> None:
        silent = FrameBackend(b"a")
        silent.answer = lambda p: None  # reads a frame, then closes without answering
        async with serving(silent) as (port, _), running_node(mode="protobuf", backend={"port": port}) as node:
            reader, writer = await asyncio.open_connection("127.0.0.1", node.port)
            writer.write(frame(b"anyone?"))
            assert await asyncio.wait_for(reader.read(), 10) == b""
            writer.close()
            await wait_for(lambda: node.telemetry.streams.open == 0)
            assert [s["status_code"] for s in node.telemetry.signals_json()] == [502]
            assert node.telemetry.streams.targets["primary"].errors == {}

        halfway = FrameBackend(b"a")
        halfway.answer = lambda p: frame(b"a long answer")[:9]  # half a frame, then the backend closes
        halfway.close_after_answer = True
        async with serving(halfway) as (port, _), running_node(mode="protobuf", backend={"port": port}) as node:
            reader, writer = await asyncio.open_connection("127.0.0.1", node.port)
            writer.write(frame(b"q"))
            await asyncio.wait_for(reader.read(), 10)
            writer.close()
            await wait_for(lambda: node.telemetry.streams.open == 0)
            assert node.telemetry.streams.targets["primary"].errors == {"frame_cut": 1}
            assert [s["status_code"] for s in node.telemetry.signals_json()] == [502]

    run(main())


def test_frames_through_tls(tmp_path: Path) -> None:
    ca = TestCA()
    leaf = ca.issue("api.test")
    cert, key = tmp_path / "api.pem", tmp_path / "api.key"
    cert.write_bytes(leaf.cert_pem)
    key.write_bytes(leaf.key_pem)

    async def main() -> None:
        backend = FrameBackend(b"a")
        async with serving(backend) as (port, _), running_node(
                mode="protobuf", backend={"port": port}, tls={"cert_file": str(cert), "key_file": str(key)}) as node:
            reader, writer = await asyncio.open_connection("127.0.0.1", node.port, ssl=ca.client_context(),
                                                           server_hostname="api.test")
            for payload in (b"over", b"tls" * 10_000):
                writer.write(frame(payload))
                assert await asyncio.wait_for(read_frame(reader), 10) == b"a:" + payload
            writer.close()

    run(main())


async def _frame_client(port: int, frames: int, ctx: dict, name: str) -> None:
    """Connections of ``frames`` request/answer round trips each, one after the other, until ``ctx["stop"]``;
    each connection must be answered by one backend throughout, and one opened after ``ctx["swapped"]`` by
    the new one."""
    counter = itertools.count()
    while not ctx["stop"]:
        after_swap = ctx["swapped"]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        tags = set()
        try:
            for _ in range(frames):
                payload = f"{name}-{next(counter)}".encode()
                writer.write(frame(payload))
                answer = await asyncio.wait_for(read_frame(reader), 30)
                tag, _, echoed = answer.partition(b":")
                if echoed != payload:
                    ctx["errors"].append(f"{payload!r} answered {answer!r}")
                tags.add(tag)
                ctx["answered"] += 1
            writer.write_eof()
            if await asyncio.wait_for(reader.read(), 30) != b"":
                ctx["errors"].append("bytes after the last answer")
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError) as exc:
            ctx["errors"].append(f"{name}: {exc!r}")
            return
        finally:
            writer.close()
        if len(tags) != 1 or (after_swap and tags != {b"new"}):
            ctx["errors"].append(f"a connection (opened after the swap: {after_swap}) was answered by {tags}")


def test_a_swap_under_a_steady_frame_load_cuts_no_frame() -> None:
    async def main() -> None:
        old, new = FrameBackend(b"old"), FrameBackend(b"new")
        async with serving(old) as (old_port, old_server), serving(new) as (new_port, _), \
                running_node(mode="protobuf", backend={"port": old_port}) as node:
            ctx = {"stop": False, "swapped": False, "errors": [], "answered": 0}
            clients = [asyncio.ensure_future(_frame_client(node.port, 25, ctx, f"c{i}")) for i in range(6)]
            await wait_for(lambda: ctx["answered"] >= 300 or bool(ctx["errors"]), timeout=60)
            await _post(node, "/backend", {"host": "127.0.0.1", "port": new_port})
            ctx["swapped"] = True
            at_swap = ctx["answered"]
            drained = await _post(node, "/drain", {"timeout_s": 60})  # the old connections finish their frames
            assert drained["drained"] is True, drained
            await wait_for(lambda: old.open == 0)  # the old backend has seen every connection end
            old_server.close()  # the old backend goes away, as a swap's last step does
            await wait_for(lambda: ctx["answered"] >= at_swap + 300 or bool(ctx["errors"]), timeout=60)
            ctx["stop"] = True
            await asyncio.gather(*clients)
            assert ctx["errors"] == []
            await wait_for(lambda: node.telemetry.streams.open == 0)
            assert old.cut == new.cut == 0 and len(new.received) >= 300
            total = len(old.received) + len(new.received)
            assert total == ctx["answered"]
            targets = node.telemetry.streams.targets
            assert all(s.errors == {} for s in targets.values())
            assert sum(s.frames_in for s in targets.values()) == sum(s.frames_out for s in targets.values()) == total
            assert node.telemetry.requests_total == total and node.telemetry.requests_failed == 0

    run(main())


def test_shutdown_waits_for_the_frame_in_flight_and_relays_nothing_after_it() -> None:
    async def main() -> None:
        backend = FrameBackend(b"a")
        backend.release = asyncio.Event()
        async with serving(backend) as (port, _):
            async with running_node(mode="protobuf", backend={"port": port}) as node:
                reader, writer = await asyncio.open_connection("127.0.0.1", node.port)
                writer.write(frame(b"in flight"))
                await asyncio.wait_for(backend.arrived.wait(), 10)
                stopping = asyncio.ensure_future(node.stop(grace_s=60))
                await wait_for(lambda: refused(node.port))
                writer.write(frame(b"too late"))  # pipelined after the shutdown began: never relayed
                await writer.drain()
                assert not stopping.done()  # the answer is still owed
                backend.release.set()
                assert await asyncio.wait_for(read_frame(reader), 10) == b"a:in flight"
                assert await asyncio.wait_for(reader.read(), 10) == b""  # then the adapter ends it, at a boundary
                writer.close()
                await asyncio.wait_for(stopping, 30)
                assert backend.received == [b"in flight"] and backend.cut == 0
                assert node.telemetry.streams.targets["primary"].errors == {}
                assert node.telemetry.requests_total == 1 and node.telemetry.requests_failed == 0

    run(main())
