"""TCP nodes: half-close both ways, connection metrics, idle timeout, a swap under load with a drain, and a
shutdown that drains (in process and as a real process on SIGTERM). Real sockets on 127.0.0.1 throughout."""

from __future__ import annotations

import asyncio
import json
import signal

import aiohttp

from _adapter_support import raw_server, refused, run, running_node, start_adapter_process, wait_for


async def _echo_until_eof(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    data = await reader.read()  # until the client half-closes
    writer.write(b"echo:" + data)
    await writer.drain()
    writer.close()


def _line_server(tag: bytes):
    """A backend answering each line with ``tag:line``, until the client half-closes; then it says bye."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                writer.write(tag + b":" + line)
                await writer.drain()
            writer.write(tag + b":bye\n")
            await writer.drain()
        except ConnectionError:
            pass
        writer.close()

    return handler


async def _management(node_or_port, method: str, path: str, body: dict | None = None) -> dict:
    port = node_or_port if isinstance(node_or_port, int) else node_or_port.management_port
    async with aiohttp.ClientSession() as session:
        async with session.request(method, f"http://127.0.0.1:{port}{path}", json=body) as resp:
            assert resp.status == 200, await resp.text()
            return await resp.json() if resp.content_type == "application/json" else {"text": await resp.text()}


def test_client_half_close_reaches_the_backend_which_still_answers_and_is_measured() -> None:
    async def main() -> None:
        async with raw_server(_echo_until_eof) as port, running_node(mode="tcp", backend={"port": port}) as node:
            reader, writer = await asyncio.open_connection("127.0.0.1", node.port)
            writer.write(b"hello ")
            writer.write(b"world")
            writer.write_eof()  # SHUT_WR: the backend reads EOF, then answers on the same connection
            assert await asyncio.wait_for(reader.read(), 10) == b"echo:hello world"
            writer.close()
            await wait_for(lambda: node.telemetry.streams.open == 0)
            metrics = await _management(node, "GET", "/metrics")
            stream = metrics["streams"]["targets"]["primary"]
            assert {k: stream[k] for k in ("opened", "active", "closed", "bytes_in", "bytes_out")} == {
                "opened": 1, "active": 0, "closed": 1, "bytes_in": 11, "bytes_out": 16}
            assert stream["errors"] == {} and stream["duration_s_avg"] is not None
            assert metrics["active_connections"] == 0 and metrics["streams"]["open"] == 0
            text = (await _management(node, "GET", "/metrics/prometheus"))["text"]
            assert 'baton_stream_connections_opened_total{node="api",role="service",target="primary"} 1.0' in text
            assert 'baton_stream_bytes_total{direction="out",node="api",role="service",target="primary"} 16.0' in text
            assert "baton_stream_connection_seconds_bucket" in text

    run(main())


def test_backend_half_close_reaches_the_client_which_still_sends() -> None:
    async def main() -> None:
        received: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

        async def greeter(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(b"greetings, I am done talking")
            writer.write_eof()  # SHUT_WR on the backend's side
            received.set_result(await reader.read())  # ... while it still listens
            writer.close()

        async with raw_server(greeter) as port, running_node(mode="tcp", backend={"port": port}) as node:
            reader, writer = await asyncio.open_connection("127.0.0.1", node.port)
            assert await asyncio.wait_for(reader.read(), 10) == b"greetings, I am done talking"  # EOF seen
            writer.write(b"and yet I reply")
            writer.write_eof()
            assert await asyncio.wait_for(received, 10) == b"and yet I reply"
            writer.close()
            await wait_for(lambda: node.telemetry.streams.open == 0)
            assert node.telemetry.streams.targets["primary"].errors == {}

    run(main())


def test_an_idle_stream_is_closed_and_counted() -> None:
    async def main() -> None:
        async with raw_server(_line_server(b"a")) as port, running_node(
                mode="tcp", backend={"port": port}, limits={"stream_idle_s": 0.2}) as node:
            reader, writer = await asyncio.open_connection("127.0.0.1", node.port)
            writer.write(b"one\n")
            assert await asyncio.wait_for(reader.readline(), 10) == b"a:one\n"
            # then silence: the adapter closes the connection (no sleep here: we wait for the close itself)
            assert await asyncio.wait_for(reader.read(), 10) == b""
            writer.close()
            await wait_for(lambda: node.telemetry.streams.open == 0)
            assert node.telemetry.streams.targets["primary"].errors == {"idle_timeout": 1}

    run(main())


async def _talk(port: int, lines: int, tag_seen: list[bytes], errors: list[str], gate: asyncio.Event | None = None,
                progress: list[int] | None = None) -> None:
    """One client connection: ``lines`` request/answer round trips (waiting on ``gate`` after the first half),
    then a half-close; the backend's tag of every answer goes to ``tag_seen``."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for i in range(lines):
            if gate is not None and i == lines // 2:
                await gate.wait()
            writer.write(b"%d\n" % i)
            answer = await reader.readline()
            tag, _, rest = answer.partition(b":")
            if rest != b"%d\n" % i:
                errors.append(f"line {i}: got {answer!r}")
                return
            tag_seen.append(tag)
            if progress is not None:
                progress[0] += 1
        writer.write_eof()
        bye = await reader.read()
        if not bye.endswith(b":bye\n"):
            errors.append(f"no goodbye: {bye!r}")
    except ConnectionError as exc:
        errors.append(repr(exc))
    finally:
        writer.close()


def test_a_swap_under_load_keeps_existing_streams_on_the_old_backend_and_the_drain_waits_for_them() -> None:
    async def main() -> None:
        async with raw_server(_line_server(b"old")) as old, raw_server(_line_server(b"new")) as new, \
                running_node(mode="tcp", backend={"port": old}) as node:
            errors: list[str] = []
            gate = asyncio.Event()
            progress = [0]
            long_tags: list[list[bytes]] = [[] for _ in range(4)]
            long_lived = [asyncio.ensure_future(_talk(node.port, 40, tags, errors, gate, progress))
                          for tags in long_tags]
            await wait_for(lambda: progress[0] == 4 * 20)  # every stream is half-way, on the old backend
            swapped = await _management(node, "POST", "/backend", {"host": "127.0.0.1", "port": new})
            assert swapped["previous"]["port"] == old and swapped["backend"]["port"] == new
            drain = asyncio.ensure_future(_management(node, "POST", "/drain", {"timeout_s": 60}))
            # new connections go to the new backend, under load, while the old streams are still open
            short_tags: list[list[bytes]] = [[] for _ in range(8)]
            await asyncio.gather(*(_talk(node.port, 10, tags, errors) for tags in short_tags))
            assert not drain.done()  # the old streams are open, so the drain still waits
            await wait_for(lambda: node.in_flight() == {f"127.0.0.1:{old}": 4})  # the short ones are all gone
            gate.set()  # the old streams finish their second half
            await asyncio.gather(*long_lived)
            result = await asyncio.wait_for(drain, 30)
            assert errors == []
            assert all(tags == [b"old"] * 40 for tags in long_tags)  # kept their backend across the swap
            assert all(tags == [b"new"] * 10 for tags in short_tags)
            assert result["drained"] is True and result["in_flight"] == {}
            await wait_for(lambda: node.telemetry.streams.open == 0)
            streams = node.telemetry.streams.targets["primary"]
            assert streams.opened == streams.closed == 12 and streams.errors == {}

    run(main())


def test_shutdown_lets_a_stream_finish_within_the_grace_and_cuts_one_that_does_not() -> None:
    async def main() -> None:
        async with raw_server(_line_server(b"a")) as port:
            async with running_node(mode="tcp", backend={"port": port}) as node:
                reader, writer = await asyncio.open_connection("127.0.0.1", node.port)
                writer.write(b"before\n")
                assert await reader.readline() == b"a:before\n"
                stopping = asyncio.ensure_future(node.stop(grace_s=60))
                await wait_for(lambda: refused(node.port))  # no new connections ...
                writer.write(b"during\n")  # ... while the open stream carries on
                assert await asyncio.wait_for(reader.readline(), 10) == b"a:during\n"
                assert not stopping.done()
                writer.write_eof()
                assert await asyncio.wait_for(reader.read(), 10) == b"a:bye\n"
                writer.close()
                await asyncio.wait_for(stopping, 30)  # ends once the stream has, well before the grace
                assert node.telemetry.streams.targets["primary"].errors == {}
            async with running_node(mode="tcp", backend={"port": port}) as node:
                reader, writer = await asyncio.open_connection("127.0.0.1", node.port)
                writer.write(b"x\n")
                assert await reader.readline() == b"a:x\n"
                await node.stop(grace_s=0.1)  # the stream stays open past the grace: cut
                assert await asyncio.wait_for(reader.read(), 10) == b""
                writer.close()
                assert node.telemetry.streams.targets["primary"].errors == {"cut_at_shutdown": 1}

    run(main())


def test_sigterm_drains_open_streams_of_a_real_adapter_process(tmp_path) -> None:
    async def main() -> None:
        async with raw_server(_line_server(b"a")) as port:
            config = tmp_path / "adapter.json"
            config.write_text(json.dumps({"shutdown_grace_s": 60, "node": {
                "name": "tcpnode", "mode": "tcp", "port": 0, "management_port": 0,
                "backend": {"host": "127.0.0.1", "port": port}}}))
            proc, ready = start_adapter_process(["--config", str(config)])
            try:
                data_port = ready["nodes"][0]["port"]
                reader, writer = await asyncio.open_connection("127.0.0.1", data_port)
                writer.write(b"one\n")
                assert await asyncio.wait_for(reader.readline(), 10) == b"a:one\n"
                proc.send_signal(signal.SIGTERM)
                await wait_for(lambda: refused(data_port))
                writer.write(b"two\n")
                assert await asyncio.wait_for(reader.readline(), 10) == b"a:two\n"
                assert proc.poll() is None  # still draining the open stream
                writer.write_eof()
                assert await asyncio.wait_for(reader.read(), 10) == b"a:bye\n"
                writer.close()
                await wait_for(lambda: proc.poll() is not None, timeout=30)
                assert proc.returncode == 0
            finally:
                if proc.poll() is None:
                    proc.kill()
                proc.wait(timeout=10)

    run(main())
