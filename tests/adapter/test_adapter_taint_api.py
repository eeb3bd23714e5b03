"""The taint management routes: off by default, PUT validation (one-sentence 400s), GET paging with since/next,
ring overflow counted in dropped, DELETE, and the adapter process's instance id in GET /taint."""

from __future__ import annotations

import json
import os
import signal
from typing import Any

import aiohttp
import pytest

from baton_adapter.taint.values import canary_value

from _adapter_support import app_server, hello_app, run, running_node, start_adapter_process


def email_canaries(count: int, base: int = 0x10000000) -> list[dict[str, str]]:
    return [{"fingerprint": f"{base + i:08x}", "kind": "email"} for i in range(count)]


def emails(items: list[dict[str, str]]) -> bytes:
    return " ".join(canary_value(c["kind"], c["fingerprint"]) for c in items).encode()


async def get_taint(client: aiohttp.ClientSession, manage: str, since: int | None = None) -> dict[str, Any]:
    params = {} if since is None else {"since": str(since)}
    async with client.get(manage + "/taint", params=params) as resp:
        assert resp.status == 200
        return await resp.json()


def test_scanning_is_off_by_default_and_delete_turns_it_off() -> None:
    async def main() -> None:
        async with app_server(hello_app()) as port, running_node(backend={"port": port}) as node, \
                aiohttp.ClientSession() as client:
            manage, data = f"http://127.0.0.1:{node.management_port}", f"http://127.0.0.1:{node.port}"
            body = emails(email_canaries(3))
            off = await get_taint(client, manage)
            assert off == {"node": "api", "instance": node.instance, "enabled": False, "generation": None, "canaries": 0,
                           "seeded": 0, "sightings": [], "next": 0, "dropped": 0,
                           "scanned": {"requests": 0, "responses": 0, "bytes": 0, "skipped": 0}}
            async with client.get(manage + "/status") as resp:
                assert (await resp.json())["taint"] == {"enabled": False, "canaries": 0, "generation": None}
            async with client.post(data + "/", data=body) as resp:
                assert resp.status == 200
            assert node.taint is None
            put = {"enabled": True, "generation": "g1", "canaries": email_canaries(3)}
            async with client.put(manage + "/taint", json=put) as resp:
                assert await resp.json() == {"node": "api", "enabled": True, "generation": "g1", "canaries": 3,
                                             "seeded": 0}
            async with client.get(manage + "/status") as resp:
                assert (await resp.json())["taint"] == {"enabled": True, "canaries": 3, "generation": "g1"}
            async with client.post(data + "/", data=body) as resp:
                assert resp.status == 200
            on = await get_taint(client, manage)
            assert on["enabled"] is True and len(on["sightings"]) == 3 and on["next"] == 3
            assert on["scanned"]["requests"] == 1 and on["scanned"]["responses"] == 1
            assert on["scanned"]["bytes"] >= len(body)
            async with client.delete(manage + "/taint") as resp:
                assert await resp.json() == {"node": "api", "enabled": False}
            assert node.taint is None
            async with client.post(data + "/", data=body) as resp:
                assert resp.status == 200
            after = await get_taint(client, manage)
            assert after["enabled"] is False and after["sightings"] == []
            # numbers never repeat within a process: a reader's cursor stays valid across DELETE and PUT
            async with client.put(manage + "/taint", json=put | {"generation": "g2"}) as resp:
                assert resp.status == 200
            async with client.post(data + "/", data=body) as resp:
                assert resp.status == 200
            again = await get_taint(client, manage, since=3)
            assert [s["seq"] for s in again["sightings"]] == [4, 5, 6] and again["generation"] == "g2"
            # enabled: false is DELETE
            async with client.put(manage + "/taint", json={"enabled": False, "generation": "g3"}) as resp:
                assert (await resp.json())["enabled"] is False
            assert node.taint is None

    run(main())


def test_a_repeated_put_of_the_same_generation_keeps_sightings() -> None:
    async def main() -> None:
        async with app_server(hello_app()) as port, running_node(backend={"port": port}) as node, \
                aiohttp.ClientSession() as client:
            manage, data = f"http://127.0.0.1:{node.management_port}", f"http://127.0.0.1:{node.port}"
            put = {"enabled": True, "generation": "g1", "canaries": email_canaries(2)}
            for _ in range(2):
                async with client.put(manage + "/taint", json=put) as resp:
                    assert resp.status == 200
                async with client.post(data + "/", data=emails(email_canaries(2))) as resp:
                    assert resp.status == 200
            assert [s["seq"] for s in (await get_taint(client, manage))["sightings"]] == [1, 2, 3, 4]
            async with client.put(manage + "/taint", json=put | {"generation": "g2"}) as resp:
                assert resp.status == 200
            state = await get_taint(client, manage)
            assert state["sightings"] == [] and state["next"] == 0 and state["scanned"]["requests"] == 0

    run(main())


def test_since_and_next_page_through_sightings_and_overflow_is_counted_in_dropped() -> None:
    active = email_canaries(10_000)

    async def main() -> None:
        async with app_server(hello_app()) as port, running_node(backend={"port": port}) as node, \
                aiohttp.ClientSession() as client:
            manage, data = f"http://127.0.0.1:{node.management_port}", f"http://127.0.0.1:{node.port}"
            async with client.put(manage + "/taint", json={"enabled": True, "generation": "g", "canaries": active,
                                                            "seed": []}) as resp:
                assert (await resp.json())["canaries"] == 10_000
            async with client.post(data + "/", data=emails(active[:2500])) as resp:
                assert resp.status == 200
            pages, since = [], 0
            while True:
                page = await get_taint(client, manage, since)
                if not page["sightings"]:
                    assert page["next"] == since
                    break
                pages.append([s["seq"] for s in page["sightings"]])
                since = page["next"]
            assert [len(p) for p in pages] == [1000, 1000, 500]
            assert sum(pages, []) == list(range(1, 2501)) and since == 2500
            fingerprints = [s["fingerprint"] for s in (await get_taint(client, manage, 2499))["sightings"]]
            assert fingerprints == [active[2499]["fingerprint"]]  # oldest first, in body order
            assert (await get_taint(client, manage))["dropped"] == 0
            # 10,500 more: the ring keeps 10,000, so 2,500 already read go first (not dropped), then 500 unread
            # ones do; the reader's cursor then points before the oldest kept
            async with client.post(data + "/", data=emails(active[:8000])) as resp:
                assert resp.status == 200
            async with client.post(data + "/", data=emails(active[:2500])) as resp:
                assert resp.status == 200
            page = await get_taint(client, manage, since)
            assert page["dropped"] == 500
            assert page["sightings"][0]["seq"] == 3001 and page["next"] == 4000
            assert page["scanned"]["requests"] == 3

    run(main())


BAD_BODIES = [
    (b"not json", "expected a JSON body"),
    (b"[1, 2]", "expected a JSON object"),
    (json.dumps({"enabled": "yes", "generation": "g", "canaries": []}).encode(), "enabled must be true or false"),
    (json.dumps({"generation": 5, "canaries": []}).encode(), "generation must be a non-empty string"),
    (json.dumps({"generation": "g"}).encode(), "canaries is missing"),
    (json.dumps({"generation": "g", "canaries": {"0a1b2c3d": "email"}}).encode(), "canaries must be a list"),
    (json.dumps({"generation": "g", "canaries": ["0a1b2c3d"]}).encode(), "canaries[0] must be an object"),
    (json.dumps({"generation": "g", "canaries": [{"fingerprint": "0a1b2c3d", "kind": "iban"}]}).encode(),
     "canaries[0].kind must be one of email, name, ssn, card, phone, got 'iban'"),
    (json.dumps({"generation": "g", "canaries": [{"fingerprint": "0A1B2C3D", "kind": "email"}]}).encode(),
     "canaries[0].fingerprint must be 8 lower-case hex characters"),
    (json.dumps({"generation": "g", "canaries": [{"fingerprint": 12, "kind": "email"}]}).encode(),
     "canaries[0].fingerprint must be 8 lower-case hex characters"),
    (json.dumps({"generation": "g", "canaries": [{"fingerprint": "ffffffff", "kind": "ssn"}]}).encode(),
     "too large for an ssn canary"),
    (json.dumps({"generation": "g", "canaries": [{"fingerprint": "0a1b2c3d", "kind": "email"},
                                                 {"fingerprint": "0a1b2c3d", "kind": "name"}]}).encode(),
     "canaries[1] reuses fingerprint 0a1b2c3d"),
    (json.dumps({"generation": "g", "canaries": [], "seed": [{"fingerprint": "0a1b2c3d", "kind": "email"}]}).encode(),
     "seed[0] (email 0a1b2c3d) is not among canaries"),
    (json.dumps({"generation": "g", "canaries": [], "node": "x"}).encode(), "expected only the keys"),
    (json.dumps({"generation": "g", "canaries": email_canaries(10_001)}).encode(),
     "canaries may hold at most 10000 canaries, got 10001"),
]


@pytest.mark.parametrize(("body", "message"), BAD_BODIES, ids=[m[:40] for _, m in BAD_BODIES])
def test_bad_put_bodies_answer_400_with_one_sentence(body: bytes, message: str) -> None:
    async def main() -> None:
        async with running_node(backend={"mock": True}) as node, aiohttp.ClientSession() as client:
            manage = f"http://127.0.0.1:{node.management_port}"
            async with client.put(manage + "/taint", data=body, headers={"Content-Type": "application/json"}) as resp:
                assert resp.status == 400
                error = (await resp.json())["error"]
            assert message in error, error
            assert "\n" not in error and error.endswith(".") and error.count(". ") == 0, error
            assert node.taint is None  # nothing applied

    run(main())


def test_bad_since_answers_400() -> None:
    async def main() -> None:
        async with running_node(backend={"mock": True}) as node, aiohttp.ClientSession() as client:
            for since in ("-1", "x", "1.5", "²"):
                async with client.get(f"http://127.0.0.1:{node.management_port}/taint", params={"since": since}) as r:
                    assert r.status == 400
                    assert "since must be a non-negative integer" in (await r.json())["error"]

    run(main())


def test_an_adapter_process_reports_its_instance_and_scans_behind_its_token() -> None:
    env = {"TAINT_TEST_TOKEN": "t0ken"}
    proc, ready = start_adapter_process(
        ["--node", "users", "--port", "0", "--management-port", "0", "--mock", "--instance", "inst-1",
         "--token-env", "TAINT_TEST_TOKEN"], env)
    try:
        node = ready["nodes"][0]
        manage, data = f"http://127.0.0.1:{node['management_port']}", f"http://127.0.0.1:{node['port']}"
        auth = {"Authorization": "Bearer t0ken"}

        async def main() -> None:
            async with aiohttp.ClientSession() as client:
                async with client.get(manage + "/taint") as resp:
                    assert resp.status == 401
                put = {"enabled": True, "generation": "g1", "canaries": email_canaries(1)}
                async with client.put(manage + "/taint", json=put, headers=auth) as resp:
                    assert resp.status == 200
                async with client.get(data + "/health", headers={"X-Email": emails(email_canaries(1)).decode()}) as r:
                    assert r.status == 200
                async with client.get(manage + "/taint", headers=auth) as resp:
                    state = await resp.json()
                assert state["instance"] == "inst-1"
                [sighting] = state["sightings"]
                assert sighting["header"] == "x-email" and sighting["node"] == "users"

        run(main())
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=15)
