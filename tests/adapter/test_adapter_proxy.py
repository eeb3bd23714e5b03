"""The HTTP data plane against real backends on 127.0.0.1: keep-alive, streaming, limits, headers, upgrade."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import time

import aiohttp
from aiohttp import web

from _adapter_support import app_server, hello_app, raw_exchange, raw_server, read_head, run, running_node

MB = 1024 * 1024


def test_keep_alive_reuses_one_upstream_connection() -> None:
    async def main() -> None:
        peers: set[tuple[str, int]] = set()

        async def handler(request: web.Request) -> web.Response:
            peers.add(request.transport.get_extra_info("peername"))
            return web.Response(text="ok")

        app = web.Application()
        app.router.add_get("/", handler)
        async with app_server(app) as port, running_node(backend={"port": port}) as node:
            async with aiohttp.ClientSession() as client:
                for _ in range(50):
                    async with client.get(f"http://127.0.0.1:{node.port}/") as resp:
                        assert resp.status == 200
                        assert await resp.text() == "ok"
            assert len(peers) == 1
            assert node.pool.connects == 1
            assert node.telemetry.requests_total == 50

    run(main())


def test_sse_event_reaches_client_within_100ms() -> None:
    async def main() -> None:
        send_second = asyncio.Event()

        async def sse(request: web.Request) -> web.StreamResponse:
            resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            await resp.prepare(request)
            await resp.write(b"data: first\n\n")
            await send_second.wait()
            await resp.write(b"data: second\n\n")
            await asyncio.sleep(0.05)
            return resp

        app = web.Application()
        app.router.add_get("/events", sse)
        async with app_server(app) as port, running_node(backend={"port": port}) as node:
            async with aiohttp.ClientSession() as client:
                async with client.get(f"http://127.0.0.1:{node.port}/events") as resp:
                    assert resp.headers["Content-Type"] == "text/event-stream"
                    assert await asyncio.wait_for(resp.content.readuntil(b"\n\n"), 5) == b"data: first\n\n"
                    sent = time.perf_counter()
                    send_second.set()
                    line = await asyncio.wait_for(resp.content.readuntil(b"\n\n"), 5)
                    elapsed = time.perf_counter() - sent
                    assert line == b"data: second\n\n"
                    assert elapsed < 0.1, f"second event took {elapsed * 1000:.1f} ms"

    run(main())


def _upload_app(first_seen: asyncio.Event) -> web.Application:
    async def upload(request: web.Request) -> web.Response:
        digest = hashlib.sha256()
        size = 0
        async for chunk in request.content.iter_any():
            size += len(chunk)
            digest.update(chunk)
            if size >= 64 * 1024:
                first_seen.set()
        return web.json_response({"size": size, "sha256": digest.hexdigest()})

    app = web.Application(client_max_size=100 * MB)
    app.router.add_post("/upload", upload)
    return app


def test_five_megabyte_chunked_upload_is_streamed() -> None:
    """The backend sees the first megabyte before the client sends the rest: nothing waits for the whole body."""

    async def main() -> None:
        first_seen = asyncio.Event()
        payload = bytes(range(256)) * (5 * MB // 256)

        async def body():
            yield payload[:MB]
            await asyncio.wait_for(first_seen.wait(), 10)
            for i in range(MB, len(payload), 256 * 1024):
                yield payload[i:i + 256 * 1024]

        async with app_server(_upload_app(first_seen)) as port, running_node(backend={"port": port}) as node:
            async with aiohttp.ClientSession() as client:
                async with client.post(f"http://127.0.0.1:{node.port}/upload", data=body()) as resp:
                    assert resp.status == 200
                    result = await resp.json()
        assert result == {"size": len(payload), "sha256": hashlib.sha256(payload).hexdigest()}

    run(main())


def test_five_megabyte_content_length_upload_is_streamed() -> None:
    async def main() -> None:
        first_seen = asyncio.Event()
        payload = b"x" * (5 * MB)
        async with app_server(_upload_app(first_seen)) as port, running_node(backend={"port": port}) as node:
            reader, writer = await asyncio.open_connection("127.0.0.1", node.port)
            writer.write(b"POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % len(payload))
            writer.write(payload[:MB])
            await writer.drain()
            await asyncio.wait_for(first_seen.wait(), 10)
            writer.write(payload[MB:])
            await writer.drain()
            code, headers, _ = await read_head(reader)
            body = await reader.readexactly(int(headers["content-length"]))
            writer.close()
        assert code == 200
        assert json.loads(body)["size"] == len(payload)

    run(main())


def test_five_megabyte_download_is_streamed() -> None:
    async def main() -> None:
        client_got_first = asyncio.Event()

        async def download(request: web.Request) -> web.StreamResponse:
            resp = web.StreamResponse()
            resp.content_length = 5 * MB
            await resp.prepare(request)
            await resp.write(b"a" * MB)
            await asyncio.wait_for(client_got_first.wait(), 10)
            for _ in range(4):
                await resp.write(b"b" * MB)
            return resp

        app = web.Application()
        app.router.add_get("/big", download)
        async with app_server(app) as port, running_node(backend={"port": port}) as node:
            async with aiohttp.ClientSession() as client:
                async with client.get(f"http://127.0.0.1:{node.port}/big") as resp:
                    assert resp.headers["Content-Length"] == str(5 * MB)
                    received = len(await resp.content.readexactly(MB))
                    client_got_first.set()
                    async for chunk in resp.content.iter_any():
                        received += len(chunk)
        assert received == 5 * MB

    run(main())


def test_head_then_get_on_one_connection() -> None:
    async def main() -> None:
        async with app_server(hello_app("hello")) as port, running_node(backend={"port": port}) as node:
            reader, writer = await asyncio.open_connection("127.0.0.1", node.port)
            writer.write(b"HEAD / HTTP/1.1\r\nHost: t\r\n\r\n")
            code, headers, _ = await read_head(reader)
            assert code == 200
            assert headers["content-length"] == "5"
            writer.write(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            code, headers, _ = await read_head(reader)
            assert code == 200
            assert await reader.readexactly(int(headers["content-length"])) == b"hello"
            writer.close()

    run(main())


def test_close_delimited_response_is_relayed_whole() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n")
        for i in range(20):
            writer.write(b"part-%d;" % i)
            await writer.drain()
        writer.close()

    async def main() -> None:
        expected = b"".join(b"part-%d;" % i for i in range(20))
        async with raw_server(handler) as port, running_node(backend={"port": port}) as node:
            code, headers, body = await raw_exchange(node.port, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            assert (code, headers.get("transfer-encoding"), body) == (200, "chunked", expected)
            code, headers, body = await raw_exchange(node.port, b"GET / HTTP/1.0\r\n\r\n")
            assert (code, body) == (200, expected)

    run(main())


def test_pipelined_requests_are_answered_in_order() -> None:
    async def main() -> None:
        async def handler(request: web.Request) -> web.Response:
            if request.path == "/slow":
                await asyncio.sleep(0.05)
            return web.Response(text=request.path)

        app = web.Application()
        app.router.add_get("/{tail:.*}", handler)
        async with app_server(app) as port, running_node(backend={"port": port}) as node:
            reader, writer = await asyncio.open_connection("127.0.0.1", node.port)
            writer.write(b"GET /slow HTTP/1.1\r\nHost: t\r\n\r\nGET /fast HTTP/1.1\r\nHost: t\r\n\r\n")
            bodies = []
            for _ in range(2):
                _, headers, _ = await read_head(reader)
                bodies.append(await reader.readexactly(int(headers["content-length"])))
            writer.close()
            assert bodies == [b"/slow", b"/fast"]

    run(main())


def test_oversized_head_gets_431() -> None:
    async def main() -> None:
        async with app_server(hello_app()) as port, running_node(backend={"port": port},
                                                              limits={"max_header_bytes": 4096}) as node:
            big = b"X-Big: " + b"a" * 8000 + b"\r\n"
            code, _, _ = await raw_exchange(node.port, b"GET / HTTP/1.1\r\nHost: t\r\n" + big + b"\r\n")
            assert code == 431
            code, _, _ = await raw_exchange(node.port, b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\nHost: t\r\n\r\n")
            assert code == 431
            code, _, body = await raw_exchange(node.port, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            assert (code, body) == (200, b"hello")

    run(main())


def test_oversized_body_gets_413() -> None:
    async def main() -> None:
        first_seen = asyncio.Event()
        async with app_server(_upload_app(first_seen)) as port, running_node(
                backend={"port": port}, limits={"max_body_bytes": 1000}) as node:
            code, _, _ = await raw_exchange(
                node.port, b"POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 2000\r\n\r\n" + b"x" * 2000)
            assert code == 413
            chunked = b"".join(b"%x\r\n%s\r\n" % (500, b"y" * 500) for _ in range(4)) + b"0\r\n\r\n"
            code, _, _ = await raw_exchange(
                node.port, b"POST /upload HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked)
            assert code == 413
            code, _, body = await raw_exchange(
                node.port, b"POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n" + b"z" * 10)
            assert code == 200 and json.loads(body)["size"] == 10

    run(main())


def test_slow_backend_gets_504() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # reads the request, never answers; returns when the adapter gives up
        writer.close()

    async def main() -> None:
        async with raw_server(silent) as port, running_node(
                backend={"port": port}, policy={"timeout_ms": 200}) as node:
            code, _, body = await raw_exchange(node.port, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            assert code == 504
            assert "timed out" in json.loads(body)["error"]

    run(main())


def test_no_backend_gets_503() -> None:
    async def main() -> None:
        async with running_node() as node:
            code, _, _ = await raw_exchange(node.port, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            assert code == 503

    run(main())


def test_forwarding_headers_traceparent_and_hop_by_hop() -> None:
    async def main() -> None:
        async def echo(request: web.Request) -> web.Response:
            return web.json_response({k.lower(): v for k, v in request.headers.items()},
                                     headers={"Keep-Alive": "timeout=99", "X-Backend": "1"})

        app = web.Application()
        app.router.add_get("/{tail:.*}", echo)
        async with app_server(app) as port, running_node(backend={"port": port}) as node:
            code, resp_headers, body = await raw_exchange(node.port, (
                b"GET /h HTTP/1.1\r\nHost: example.test\r\nConnection: keep-alive, X-Secret\r\nX-Secret: s\r\n"
                b"Keep-Alive: timeout=5\r\nProxy-Authorization: Basic x\r\nTE: trailers\r\n"
                b"X-Forwarded-For: 10.0.0.1\r\nX-Kept: yes\r\n\r\n"))
            seen = json.loads(body)
            assert code == 200
            assert seen["x-forwarded-for"] == "10.0.0.1, 127.0.0.1"
            assert seen["x-forwarded-proto"] == "http"
            assert seen["x-forwarded-host"] == "example.test"
            assert seen["x-kept"] == "yes"
            for hop in ("x-secret", "keep-alive", "proxy-authorization", "te"):
                assert hop not in seen, hop
            assert re.fullmatch(r"00-[0-9a-f]{32}-[0-9a-f]{16}-01", seen["traceparent"])
            assert "keep-alive" not in resp_headers and resp_headers["x-backend"] == "1"

            incoming = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
            _, _, body = await raw_exchange(
                node.port, f"GET / HTTP/1.1\r\nHost: t\r\ntraceparent: {incoming}\r\n\r\n".encode())
            sent = json.loads(body)["traceparent"]
            assert sent.startswith("00-0af7651916cd43dd8448eb211c80319c-") and sent != incoming
            signal = node.telemetry.signals_json(1)[0]
            assert signal["trace_id"] == "0af7651916cd43dd8448eb211c80319c"

            # behind a TLS-terminating proxy: its scheme and host are kept, its client address chained
            _, _, body = await raw_exchange(node.port, (
                b"GET / HTTP/1.1\r\nHost: internal\r\nX-Forwarded-Proto: https\r\n"
                b"X-Forwarded-Host: shop.example\r\nX-Forwarded-For: 203.0.113.9\r\n\r\n"))
            seen = json.loads(body)
            assert seen["x-forwarded-proto"] == "https" and seen["x-forwarded-host"] == "shop.example"
            assert seen["x-forwarded-for"] == "203.0.113.9, 127.0.0.1"

    run(main())


def test_websocket_upgrade_is_passed_through() -> None:
    async def main() -> None:
        async def ws_handler(request: web.Request) -> web.WebSocketResponse:
            ws = web.WebSocketResponse()
            await ws.prepare(request)
            async for msg in ws:
                await ws.send_str("echo:" + msg.data)
            return ws

        app = web.Application()
        app.router.add_get("/ws", ws_handler)
        async with app_server(app) as port, running_node(backend={"port": port}) as node:
            async with aiohttp.ClientSession() as client:
                async with client.ws_connect(f"http://127.0.0.1:{node.port}/ws") as ws:
                    for i in range(3):
                        await ws.send_str(f"m{i}")
                        msg = await asyncio.wait_for(ws.receive(), 5)
                        assert msg.data == f"echo:m{i}"

    run(main())


def test_works_on_the_standard_asyncio_loop_too() -> None:
    """uvloop is optional: the same proxy path on asyncio's own loop (keep-alive, chunked relay, HEAD)."""

    async def main() -> None:
        async with app_server(hello_app("std")) as port, running_node(backend={"port": port}) as node:
            reader, writer = await asyncio.open_connection("127.0.0.1", node.port)
            for method in (b"GET", b"HEAD", b"GET"):
                writer.write(method + b" / HTTP/1.1\r\nHost: t\r\n\r\n")
                code, headers, _ = await read_head(reader)
                assert code == 200 and headers["content-length"] == "3"
                if method == b"GET":
                    assert await reader.readexactly(3) == b"std"
            writer.close()
            assert node.pool.connects == 1

    asyncio.run(main())


def test_a_header_line_that_never_ends_gets_431() -> None:
    """httptools buffers a header until its line ends; the adapter bounds that on raw bytes."""

    async def main() -> None:
        async with running_node(mock=True, limits={"max_header_bytes": 4096}) as node:
            reader, writer = await asyncio.open_connection("127.0.0.1", node.port)
            writer.write(b"GET / HTTP/1.1\r\nHost: t\r\nX-Endless: ")
            for _ in range(16):
                writer.write(b"a" * 1024)  # never a CRLF
                await writer.drain()
            code, _, _ = await read_head(reader)
            assert code == 431
            writer.close()

    run(main())
