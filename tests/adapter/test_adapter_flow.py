"""Flow control and protocol corners: a slow client does not make the adapter buffer, 100-continue, drains."""

from __future__ import annotations

import asyncio
import json

from aiohttp import web

from baton_adapter.config import Backend

from _adapter_support import app_server, hello_app, raw_exchange, raw_server, read_head, run, running_node, wait_for

MB = 1024 * 1024


def test_slow_client_backpressures_the_backend_instead_of_buffering() -> None:
    total = 48 * MB

    async def main() -> None:
        written = [0]

        async def big(request: web.Request) -> web.StreamResponse:
            resp = web.StreamResponse()
            resp.content_length = total
            await resp.prepare(request)
            chunk = b"z" * (256 * 1024)
            while written[0] < total:
                await resp.write(chunk)
                written[0] += len(chunk)
            return resp

        app = web.Application()
        app.router.add_get("/big", big)
        async with app_server(app) as port, running_node(backend={"port": port}) as node:
            reader, writer = await asyncio.open_connection("127.0.0.1", node.port, limit=64 * 1024)
            writer.write(b"GET /big HTTP/1.1\r\nHost: t\r\n\r\n")
            _, headers, _ = await read_head(reader)
            assert int(headers["content-length"]) == total
            received = len(await reader.read(64 * 1024))

            # stop reading until the backend stops making progress (its writes block on backpressure)
            last = -1
            while last != written[0]:
                last = written[0]
                await asyncio.sleep(0.2)
            assert written[0] < total, "the backend wrote everything although the client read nothing"
            (client_conn,) = list(node.connections)
            assert client_conn.transport.get_write_buffer_size() < 2 * MB

            while received < total:
                data = await reader.read(MB)
                assert data
                received += len(data)
            writer.close()
            assert received == total

    run(main())


def test_expect_100_continue_is_answered_by_the_adapter() -> None:
    async def main() -> None:
        async def echo(request: web.Request) -> web.Response:
            return web.json_response({"body": (await request.read()).decode(),
                                      "expect": request.headers.get("Expect")})

        app = web.Application()
        app.router.add_post("/", echo)
        async with app_server(app) as port, running_node(backend={"port": port}) as node:
            reader, writer = await asyncio.open_connection("127.0.0.1", node.port)
            writer.write(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
            code, _, _ = await read_head(reader)
            assert code == 100
            writer.write(b"hello")
            code, headers, _ = await read_head(reader)
            body = json.loads(await reader.readexactly(int(headers["content-length"])))
            writer.close()
            assert code == 200 and body == {"body": "hello", "expect": None}

    run(main())


def test_drain_waits_for_in_flight_requests_on_the_old_backend() -> None:
    async def main() -> None:
        release = asyncio.Event()
        entered = asyncio.Event()

        async def held(request: web.Request) -> web.Response:
            entered.set()
            await release.wait()
            return web.Response(text="old")

        app = web.Application()
        app.router.add_get("/", held)
        async with app_server(app) as old, app_server(hello_app("new")) as new, \
                running_node(backend={"port": old}) as node:
            in_flight = asyncio.ensure_future(raw_exchange(node.port, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"))
            await asyncio.wait_for(entered.wait(), 10)
            node.set_backend(Backend(host="127.0.0.1", port=new))
            assert (await raw_exchange(node.port, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"))[2] == b"new"
            early = await node.drain(timeout_s=0.05)
            assert early["drained"] is False and early["in_flight"] == {f"127.0.0.1:{old}": 1}
            draining = asyncio.ensure_future(node.drain(timeout_s=10))
            release.set()
            assert (await in_flight)[:3:2] == (200, b"old")
            report = await draining
            assert report["drained"] is True
            await wait_for(lambda: ("127.0.0.1", old) not in node.pool.idle)

    run(main())


def test_a_response_body_that_stalls_is_cut_after_read_idle() -> None:
    async def main() -> None:
        async def stalls(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
            await writer.drain()
            await reader.read()  # stalls; returns when the adapter cuts the upstream connection
            writer.close()

        async with raw_server(stalls) as port, running_node(backend={"port": port},
                                                         limits={"read_idle_s": 2}) as node:
            reader, writer = await asyncio.open_connection("127.0.0.1", node.port)
            writer.write(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            code, _, _ = await read_head(reader)
            assert code == 200 and await reader.readexactly(7) == b"partial"
            node.housekeeping(tick_s=1.0)  # notes the progress mark
            node.housekeeping(tick_s=1.0)  # 1 s without progress
            assert node.telemetry.active_requests == 1
            node.housekeeping(tick_s=1.0)  # 2 s without progress: cut
            assert await asyncio.wait_for(reader.read(), 10) == b""
            writer.close()
            await wait_for(lambda: node.telemetry.active_requests == 0 and not node.pool.busy)
            assert node.telemetry.targets["primary"].attempts.get("timeout") == 1

    run(main())


def test_a_large_refused_upload_still_gets_its_413() -> None:
    """The adapter drains what the client is still sending, so the 413 is read rather than reset."""

    async def sink(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # swallows the streamed part until the adapter drops the upstream request
        writer.close()

    async def main() -> None:
        async with raw_server(sink) as port, running_node(backend={"port": port},
                                                        limits={"max_body_bytes": MB}) as node:
            for head in (b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % (4 * MB),
                         b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"):
                chunked = b"chunked" in head
                reader, writer = await asyncio.open_connection("127.0.0.1", node.port)
                writer.write(head)
                block = b"q" * (256 * 1024)
                for _ in range(16):
                    writer.write(b"%x\r\n%s\r\n" % (len(block), block) if chunked else block)
                    await writer.drain()
                code, headers, _ = await read_head(reader)
                assert code == 413 and headers.get("connection") == "close"
                writer.close()

    run(main())
