"""Heals lose nothing (issue 13): a request no backend took holds for the routing to change; a safe request
whose backend died without answering is sent again; everything else fails as before."""

from __future__ import annotations

import asyncio

import aiohttp

from _adapter_support import app_server, hello_app, raw_server, refused_port, run, running_node, wait_for
from baton_adapter.config import Backend
from baton_adapter.routing import RoutingTable


def test_requests_hold_while_no_backend_answers_and_go_to_the_new_one() -> None:
    async def main() -> None:
        async with running_node(backend={"port": refused_port()}, limits={"hold_s": 10}) as node, \
                app_server(hello_app("healed")) as healed:
            async with aiohttp.ClientSession() as session:
                async def get() -> tuple[int, str]:
                    async with session.get(f"http://127.0.0.1:{node.port}/x") as resp:
                        return resp.status, await resp.text()

                pending = [asyncio.ensure_future(get()) for _ in range(50)]
                await wait_for(lambda: len(node.held) == 50, timeout=10)
                node.set_backend(Backend(host="127.0.0.1", port=healed))  # what a heal does
                answers = await asyncio.gather(*pending)
        assert answers == [(200, "healed")] * 50
        assert not node.held

    run(main())


def test_a_hold_ends_after_hold_s_with_the_failure_it_replaced() -> None:
    async def main() -> None:
        async with running_node(backend={"port": refused_port()}, limits={"hold_s": 0.5}) as node:
            async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{node.port}/") as resp:
                assert resp.status == 502
                assert "no backend took it within 0.5 s" in await resp.text()
            assert not node.held

    run(main())


def test_without_hold_s_a_refused_backend_fails_at_once() -> None:
    async def main() -> None:
        async with running_node(backend={"port": refused_port()}) as node:
            async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{node.port}/") as resp:
                assert resp.status == 502 and "no backend took it" not in await resp.text()

    run(main())


def test_a_client_that_leaves_while_held_is_let_go() -> None:
    async def main() -> None:
        async with running_node(backend={"port": refused_port()}, limits={"hold_s": 30}) as node:
            reader, writer = await asyncio.open_connection("127.0.0.1", node.port)
            writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            await writer.drain()
            await wait_for(lambda: len(node.held) == 1, timeout=10)
            writer.close()
            await wait_for(lambda: not node.held, timeout=10)
            assert node.telemetry.active_requests == 0

    run(main())


def _dies_on_first_request(seen: list[bytes]):
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await reader.readuntil(b"\r\n\r\n"))
        writer.transport.abort()  # took the request, died without answering (as under kill -9)

    return handler


def test_a_safe_request_the_dead_backend_took_is_sent_again_and_an_unsafe_one_is_not() -> None:
    async def main() -> None:
        seen: list[bytes] = []
        async with raw_server(_dies_on_first_request(seen)) as dying, app_server(hello_app("next")) as nxt, \
                running_node(backend={"port": dying}, limits={"hold_s": 10}) as node:
            async with aiohttp.ClientSession() as session:
                async def call(method: str) -> tuple[int, str]:
                    async with session.request(method, f"http://127.0.0.1:{node.port}/o", data=None) as resp:
                        return resp.status, await resp.text()

                post = await call("POST")
                assert post[0] == 502  # it may have been processed: never repeated
                get = asyncio.ensure_future(call("GET"))
                await wait_for(lambda: len(node.held) == 1, timeout=10)
                node.set_routing(RoutingTable.single(Backend(host="127.0.0.1", port=nxt)))
                assert await get == (200, "next")
        assert [s.split(b" ")[0] for s in seen] == [b"POST", b"GET"]  # the GET held, then went to the new one

    run(main())


def test_a_request_that_kills_its_backend_each_time_is_sent_only_twice() -> None:
    async def main() -> None:
        seen: list[bytes] = []

        async def always_dies(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            seen.append(await reader.readuntil(b"\r\n\r\n"))
            writer.transport.abort()

        async with raw_server(always_dies) as dying, \
                running_node(backend={"port": dying}, limits={"hold_s": 30}) as node:
            async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{node.port}/") as resp:
                assert resp.status == 502
        assert len(seen) == 2 and not node.held

    run(main())
