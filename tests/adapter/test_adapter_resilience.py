"""Retries, the retry budget and circuit breakers, against real backends on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json

from aiohttp import web

from baton_adapter.resilience import BreakerState, CircuitBreaker, RetryBudget

from _adapter_support import (app_server, refused_port, hello_app, raw_exchange, raw_server, run, running_node,
                              wait_for)


def test_retry_after_connection_refused_goes_to_a_live_target_even_for_post() -> None:
    async def main() -> None:
        dead = refused_port()
        async with app_server(hello_app("live")) as live, running_node(
            policy={"retries": 1, "retry_backoff_ms": 0, "retry_budget_ratio": 1.0},
            routing={"strategy": "weighted", "targets": [
                {"name": "a", "host": "127.0.0.1", "port": dead, "weight": 50},
                {"name": "b", "host": "127.0.0.1", "port": live, "weight": 50}]},
        ) as node:
            for _ in range(30):
                code, _, body = await raw_exchange(
                    node.port, b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\r\nbody")
                assert (code, body) == (200, b"live")
            attempts = node.telemetry.targets
            assert attempts["a"].attempts.get("error", 0) > 0  # P(no request drew a) = 2**-30
            assert attempts["b"].attempts["2xx"] == 30

    run(main())


def test_all_attempts_refused_gives_502_after_the_configured_retries() -> None:
    async def main() -> None:
        async with running_node(backend={"port": refused_port()},
                                policy={"retries": 2, "retry_backoff_ms": 1}) as node:
            code, _, body = await raw_exchange(node.port, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            assert code == 502
            assert "failed" in json.loads(body)["error"]
            assert node.telemetry.targets["primary"].attempts == {"error": 3}

    run(main())


def _flaky_backend(fail_on: set[int], hits: list[bytes]):
    """A raw HTTP backend: the n-th request (1-based) in ``fail_on`` is read whole, then the connection drops."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                if length:
                    await reader.readexactly(length)
                hits.append(head.split(b" ")[0])
                if len(hits) in fail_on:
                    writer.close()
                    return
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    return handler


def test_get_is_retried_after_the_backend_dropped_it() -> None:
    async def main() -> None:
        hits: list[bytes] = []
        async with raw_server(_flaky_backend({1}, hits)) as port, running_node(
                backend={"port": port}, policy={"retries": 2, "retry_backoff_ms": 0}) as node:
            code, _, body = await raw_exchange(node.port, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            assert (code, body) == (200, b"ok")
            assert hits == [b"GET", b"GET"]

    run(main())


def test_post_whose_body_was_sent_is_not_retried() -> None:
    async def main() -> None:
        hits: list[bytes] = []
        async with raw_server(_flaky_backend({1}, hits)) as port, running_node(
                backend={"port": port}, policy={"retries": 2, "retry_backoff_ms": 0}) as node:
            code, _, _ = await raw_exchange(
                node.port, b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello")
            assert code == 502
            assert hits == [b"POST"]
            code, _, body = await raw_exchange(node.port, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            assert (code, body) == (200, b"ok")

    run(main())


def test_breaker_opens_lets_one_probe_through_half_open_then_closes() -> None:
    async def main() -> None:
        state = {"mode": "fail", "hits": 0}
        release = asyncio.Event()

        async def handler(request: web.Request) -> web.Response:
            state["hits"] += 1
            if state["mode"] == "fail":
                return web.Response(status=500, text="boom")
            if state["mode"] == "hold":
                await release.wait()
            return web.Response(text="ok")

        app = web.Application()
        app.router.add_get("/", handler)
        get = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"
        async with app_server(app) as port, running_node(backend={"port": port}, policy={
                "circuit_breaker_threshold": 2, "circuit_breaker_cooldown_ms": 300}) as node:
            breaker = node.breaker("primary")
            assert [(await raw_exchange(node.port, get))[0] for _ in range(2)] == [500, 500]
            assert breaker.state is BreakerState.OPEN
            code, _, _ = await raw_exchange(node.port, get)
            assert code == 503 and state["hits"] == 2  # refused without touching the backend

            state["mode"] = "hold"
            await wait_for(breaker.available, timeout=10)
            probe = asyncio.ensure_future(raw_exchange(node.port, get))
            await wait_for(lambda: state["hits"] == 3)
            assert breaker.state is BreakerState.HALF_OPEN
            code, _, _ = await raw_exchange(node.port, get)
            assert code == 503 and state["hits"] == 3  # one probe at a time
            release.set()
            assert (await probe)[0] == 200
            assert breaker.state is BreakerState.CLOSED
            state["mode"] = "ok"
            assert (await raw_exchange(node.port, get))[0] == 200

    run(main())


def test_breaker_state_machine_with_an_injected_clock() -> None:
    now = [0.0]
    breaker = CircuitBreaker(threshold=3, cooldown_s=5, clock=lambda: now[0])
    for _ in range(2):
        breaker.failure()
    assert breaker.state is BreakerState.CLOSED
    breaker.success()
    for _ in range(3):
        breaker.failure()
    assert breaker.state is BreakerState.OPEN and not breaker.acquire()
    now[0] = 5.0
    assert breaker.acquire() and breaker.state is BreakerState.HALF_OPEN
    assert not breaker.acquire()  # a single probe
    breaker.failure()
    assert breaker.state is BreakerState.OPEN
    now[0] = 10.0
    assert breaker.acquire()
    breaker.success()
    assert breaker.state is BreakerState.CLOSED and breaker.acquire()
    disabled = CircuitBreaker(threshold=0, cooldown_s=1)
    for _ in range(100):
        disabled.failure()
    assert disabled.acquire()


def test_retry_budget_allows_about_a_fifth_of_requests() -> None:
    budget = RetryBudget(ratio=0.2, reserve=0)
    allowed = 0
    for _ in range(100):
        budget.deposit()
        allowed += budget.withdraw()
    assert 19 <= allowed <= 20


def test_retry_budget_exhaustion_stops_retries() -> None:
    async def main() -> None:
        async with running_node(backend={"port": refused_port()},
                                policy={"retries": 5, "retry_backoff_ms": 0, "retry_budget_ratio": 0.0}) as node:
            node.budget.balance = 2.0
            code, _, _ = await raw_exchange(node.port, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            assert code == 502
            assert node.telemetry.targets["primary"].attempts == {"error": 3}  # 1 + the 2 the budget allowed

    run(main())
