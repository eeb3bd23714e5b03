"""Routing: weighted and canary splits, header rules, sticky sessions, validation, locking, hot swap."""

from __future__ import annotations

import asyncio
import random

import aiohttp
import pytest

from baton_adapter.routing import RoutingError, RoutingTable

from _adapter_support import app_server, hello_app, raw_exchange, run, running_node


def _two(strategy: str = "weighted", a: int = 80, b: int = 20, names: tuple[str, str] = ("a", "b")) -> dict:
    return {"strategy": strategy, "targets": [
        {"name": names[0], "host": "127.0.0.1", "port": 8001, "weight": a},
        {"name": names[1], "host": "127.0.0.1", "port": 8002, "weight": b}]}


def test_weighted_choice_matches_weights_statistically() -> None:
    table = RoutingTable.from_mapping(_two(a=70, b=30))
    rnd = random.Random(7)
    n = 20000
    picks = sum(table.choose(rnd=rnd).name == "a" for _ in range(n))
    # 70 % +- 5 standard deviations (sd = sqrt(n * .7 * .3) ~ 65)
    assert abs(picks - 0.7 * n) < 5 * (n * 0.7 * 0.3) ** 0.5


def test_excluded_target_is_skipped() -> None:
    table = RoutingTable.from_mapping(_two(a=99, b=1))
    assert {table.choose(exclude={"a"}).name for _ in range(50)} == {"b"}
    assert table.choose(exclude={"a", "b"}) is None


@pytest.mark.parametrize("config, fragment", [
    ({"strategy": "weighted", "targets": [{"name": "a", "port": 1, "weight": 50},
                                          {"name": "b", "port": 2, "weight": 40}]}, "summing to 100"),
    ({**_two(names=("x", "y")), "strategy": "canary"}, "stable and canary"),
    ({"strategy": "single", "targets": []}, "exactly one target"),
    ({**_two(), "strategy": "header"}, "default_target"),
    ({"strategy": "nearest"}, "strategy must be one of"),
    ({"strategy": "single", "targets": [{"name": "a", "port": 99999}]}, "port"),
])
def test_invalid_routing_configs_are_rejected_with_a_sentence(config: dict, fragment: str) -> None:
    with pytest.raises(RoutingError, match=fragment):
        RoutingTable.from_mapping(config)


def test_weighted_split_through_the_proxy() -> None:
    async def main() -> None:
        async with app_server(hello_app("A")) as pa, app_server(hello_app("B")) as pb:
            routing = {"strategy": "canary", "targets": [
                {"name": "stable", "host": "127.0.0.1", "port": pa, "weight": 75},
                {"name": "canary", "host": "127.0.0.1", "port": pb, "weight": 25}]}
            async with running_node(routing=routing) as node, aiohttp.ClientSession() as client:
                n = 400
                bodies = []
                for _ in range(n):
                    async with client.get(f"http://127.0.0.1:{node.port}/") as resp:
                        bodies.append(await resp.text())
                share = bodies.count("B")
                assert abs(share - 0.25 * n) < 5 * (n * 0.25 * 0.75) ** 0.5
                targets = node.telemetry.targets
                assert targets["stable"].requests + targets["canary"].requests == n
                assert targets["canary"].by_class["2xx"] == share
                async with client.get(f"http://127.0.0.1:{node.management_port}/routing") as resp:
                    canary = (await resp.json())["target_metrics"]["canary"]
                assert canary["requests"] == share and canary["error_rate"] == 0.0
                assert canary["latency_ms"]["window"] == share and canary["latency_ms"]["p99"] > 0

    run(main())


def test_header_rules_and_default_target() -> None:
    async def main() -> None:
        async with app_server(hello_app("A")) as pa, app_server(hello_app("B")) as pb:
            routing = {"strategy": "header", "default_target": "a",
                       "rules": [{"header": "X-Version", "value": "beta", "target": "b"}],
                       "targets": [{"name": "a", "host": "127.0.0.1", "port": pa},
                                   {"name": "b", "host": "127.0.0.1", "port": pb}]}
            async with running_node(routing=routing) as node:
                req = "GET / HTTP/1.1\r\nHost: t\r\n{}\r\n"
                assert (await raw_exchange(node.port, req.format("x-version: beta\r\n").encode()))[2] == b"B"
                assert (await raw_exchange(node.port, req.format("X-Version: alpha\r\n").encode()))[2] == b"A"
                assert (await raw_exchange(node.port, req.format("").encode()))[2] == b"A"

    run(main())


def test_sticky_sessions_keep_a_client_on_its_target() -> None:
    async def main() -> None:
        async with app_server(hello_app("A")) as pa, app_server(hello_app("B")) as pb:
            routing = {"strategy": "weighted", "sticky_cookie": "baton_target", "targets": [
                {"name": "a", "host": "127.0.0.1", "port": pa, "weight": 50},
                {"name": "b", "host": "127.0.0.1", "port": pb, "weight": 50}]}
            async with running_node(routing=routing) as node:
                _, headers, first = await raw_exchange(node.port, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
                cookie = headers["set-cookie"].split(";")[0]
                assert cookie == f"baton_target={first.decode().lower()}"
                for _ in range(20):
                    _, headers, body = await raw_exchange(
                        node.port, f"GET / HTTP/1.1\r\nHost: t\r\nCookie: x=1; {cookie}\r\n\r\n".encode())
                    assert body == first and "set-cookie" not in headers

    run(main())


def test_management_routing_400_invalid_423_locked_and_unlock() -> None:
    async def main() -> None:
        async with app_server(hello_app("A")) as pa, running_node(backend={"port": pa}) as node:
            base = f"http://127.0.0.1:{node.management_port}"
            async with aiohttp.ClientSession() as client:
                async with client.post(f"{base}/routing", json={"strategy": "weighted", "targets": []}) as resp:
                    assert resp.status == 400
                    assert "at least two targets" in (await resp.json())["error"]
                locked = {"strategy": "single", "locked": True,
                          "targets": [{"name": "main", "host": "127.0.0.1", "port": pa}]}
                async with client.post(f"{base}/routing", json=locked) as resp:
                    assert resp.status == 200
                async with client.post(f"{base}/routing", json={**locked, "locked": False}) as resp:
                    assert resp.status == 423
                async with client.post(f"{base}/backend", json={"host": "127.0.0.1", "port": 1234}) as resp:
                    assert resp.status == 423
                async with client.get(f"{base}/status") as resp:
                    status = await resp.json()
                assert status["routing_locked"] is True and status["routing_strategy"] == "single"
                async with client.post(f"{base}/routing", json={"locked": False}) as resp:
                    assert resp.status == 200
                async with client.post(f"{base}/backend", json={"host": "127.0.0.1", "port": 1234}) as resp:
                    assert resp.status == 200
                    assert (await resp.json())["backend"]["port"] == 1234
                async with client.get(f"{base}/routing") as resp:
                    routing = await resp.json()
                assert routing["strategy"] == "single" and routing["locked"] is False

    run(main())


def test_backend_switch_under_concurrent_load_has_zero_non_2xx() -> None:
    """In-flight requests finish on the old backend, new ones go to the new one, and drain reports idle."""

    async def main() -> None:
        async with app_server(hello_app("old", delay=0.02)) as old, app_server(hello_app("new")) as new, \
                running_node(backend={"port": old}) as node:
            statuses: list[int] = []
            bodies: list[str] = []
            switched = asyncio.Event()
            after_switch: list[str] = []

            async def worker(client: aiohttp.ClientSession) -> None:
                for _ in range(40):
                    was_switched = switched.is_set()
                    async with client.get(f"http://127.0.0.1:{node.port}/") as resp:
                        statuses.append(resp.status)
                        body = await resp.text()
                        bodies.append(body)
                        if was_switched:
                            after_switch.append(body)

            async with aiohttp.ClientSession() as client:
                workers = [asyncio.ensure_future(worker(client)) for _ in range(16)]
                while len(statuses) < 100:
                    await asyncio.sleep(0.005)
                async with client.post(f"http://127.0.0.1:{node.management_port}/backend",
                                       json={"host": "127.0.0.1", "port": new}) as resp:
                    assert resp.status == 200
                switched.set()
                async with client.post(f"http://127.0.0.1:{node.management_port}/drain",
                                       json={"timeout_s": 10}) as resp:
                    drain = await resp.json()
                await asyncio.gather(*workers)
            assert len(statuses) == 16 * 40
            assert set(statuses) == {200}
            assert "old" in bodies and "new" in bodies
            assert set(after_switch) == {"new"}
            assert drain["drained"] is True and drain["in_flight"] == {}

    run(main())


def test_a_target_pointing_at_the_nodes_own_port_is_refused() -> None:
    async def main() -> None:
        async with running_node() as node, aiohttp.ClientSession() as client:
            async with client.post(f"http://127.0.0.1:{node.management_port}/backend",
                                   json={"host": "127.0.0.1", "port": node.port}) as resp:
                assert resp.status == 400
                assert "own data port" in (await resp.json())["error"]

    run(main())


def test_egress_nodes_stay_mocked() -> None:
    async def main() -> None:
        async with running_node(role="egress") as node, aiohttp.ClientSession() as client:
            async with client.post(f"http://127.0.0.1:{node.management_port}/backend",
                                   json={"host": "127.0.0.1", "port": 8001}) as resp:
                assert resp.status == 400
                assert "egress" in (await resp.json())["error"]
            code, _, _ = await raw_exchange(node.port, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            assert code == 200

    run(main())
