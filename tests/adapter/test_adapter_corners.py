"""HTTP corners against raw backends: 204/304, interim 1xx, chunked relay, early answers, client aborts."""

from __future__ import annotations

import asyncio

from _adapter_support import raw_exchange, raw_server, read_chunked, read_head, run, running_node, wait_for


def _scripted(responses: list[bytes], requests: list[bytes] | None = None):
    """A raw backend answering the n-th request on a connection with ``responses[n]`` (keep-alive)."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            for response in responses:
                head = await reader.readuntil(b"\r\n\r\n")
                if requests is not None:
                    requests.append(head)
                writer.write(response)
                await writer.drain()
            await reader.read()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    return handler


def test_no_body_statuses_and_keep_alive_continue() -> None:
    responses = [
        b"HTTP/1.1 204 No Content\r\n\r\n",
        b"HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ndone",
    ]

    async def main() -> None:
        async with raw_server(_scripted(responses)) as port, running_node(backend={"port": port}) as node:
            reader, writer = await asyncio.open_connection("127.0.0.1", node.port)
            for expected in (204, 304):
                writer.write(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
                code, headers, _ = await read_head(reader)
                assert code == expected and "transfer-encoding" not in headers
            writer.write(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            code, headers, _ = await read_head(reader)
            assert code == 200 and await reader.readexactly(4) == b"done"
            writer.close()
            assert node.pool.connects == 1

    run(main())


def test_interim_1xx_is_dropped_and_chunked_body_relayed() -> None:
    response = (b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n"
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")

    async def main() -> None:
        async with raw_server(_scripted([response])) as port, running_node(backend={"port": port}) as node:
            code, headers, body = await raw_exchange(node.port, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            assert (code, headers["transfer-encoding"], body) == (200, "chunked", b"hello world")

    run(main())


def test_http10_client_gets_a_close_delimited_copy_of_a_chunked_response() -> None:
    response = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"

    async def main() -> None:
        async with raw_server(_scripted([response])) as port, running_node(backend={"port": port}) as node:
            code, headers, body = await raw_exchange(node.port, b"GET / HTTP/1.0\r\n\r\n")
            assert (code, body) == (200, b"abc") and "transfer-encoding" not in headers

    run(main())


def test_chunked_request_is_forwarded_chunked() -> None:
    async def main() -> None:
        seen: list[bytes] = []

        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            head = await reader.readuntil(b"\r\n\r\n")
            seen.append(head)
            seen.append(await read_chunked(reader))
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await writer.drain()
            writer.close()

        async with raw_server(handler) as port, running_node(backend={"port": port}) as node:
            request = (b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                       b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
            code, _, _ = await raw_exchange(node.port, request)
            assert code == 200
            assert b"transfer-encoding: chunked" in seen[0].lower()
            assert seen[1] == b"abcde"

    run(main())


def test_client_abort_mid_response_frees_the_request_and_the_upstream() -> None:
    async def main() -> None:
        backend_saw_close = asyncio.Event()

        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\npartial")
            await writer.drain()
            await reader.read()  # returns when the adapter closes the upstream connection
            backend_saw_close.set()
            writer.close()

        async with raw_server(handler) as port, running_node(backend={"port": port}) as node:
            reader, writer = await asyncio.open_connection("127.0.0.1", node.port)
            writer.write(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            await read_head(reader)
            writer.close()
            await asyncio.wait_for(backend_saw_close.wait(), 10)
            await wait_for(lambda: node.telemetry.active_requests == 0 and not node.pool.busy)
            assert node.telemetry.signals_json(1)[0]["status_code"] == 200

    run(main())


def test_malformed_request_gets_400() -> None:
    async def main() -> None:
        async with running_node(mock=True) as node:
            code, _, _ = await raw_exchange(node.port, b"NOT HTTP AT ALL\r\n\r\n")
            assert code == 400
            code, _, _ = await raw_exchange(node.port, b"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: x\r\n\r\n")
            assert code == 400

    run(main())


def test_a_backend_sending_an_endless_head_gets_502() -> None:
    response = b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-Junk-%d: x\r\n" % i for i in range(1000)) + b"\r\n"

    async def main() -> None:
        async with raw_server(_scripted([response])) as port, running_node(backend={"port": port}) as node:
            code, _, _ = await raw_exchange(node.port, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            assert code == 502

    run(main())
