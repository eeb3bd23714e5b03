"""The dashboard's web face on a real loopback server (port 0): every route refuses a request without the token
or with a wrong one (401), the printed URL trades the token for a cookie, the assets come from the package and
name nothing outside it; the server says which port is taken; the collector's file readers stay incremental."""

from __future__ import annotations

import asyncio
import json
import re
import socket
from importlib import resources
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from baton.dashboard.collector import Collector, ViolationCounts, tail_records
from baton.dashboard.server import DashboardServer
from baton.dashboard.web import API_PATH, ASSETS, build_app, cookie_name
from baton.errors import BatonError

TOKEN = "s3cret-token_value"
ROUTES = ["/", "/static/dashboard.js", "/static/dashboard.css", API_PATH]


async def _source() -> dict[str, Any]:
    return {"circuit": "shop", "nodes": []}


async def _serving(app: web.Application) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    sock = socket.create_server(("127.0.0.1", 0))
    await web.SockSite(runner, sock).start()
    return runner, sock.getsockname()[1]


def _run(check) -> None:  # noqa: ANN001
    async def main() -> None:
        runner, port = await _serving(build_app(_source, TOKEN, port=0))
        try:
            async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
                await check(session, f"http://127.0.0.1:{port}")
        finally:
            await runner.cleanup()

    asyncio.run(main())


def test_without_the_token_every_route_is_refused() -> None:
    async def check(session: aiohttp.ClientSession, base: str) -> None:
        for path in ROUTES:
            async with session.get(base + path, allow_redirects=False) as response:
                assert response.status == 401, path
                assert response.headers["WWW-Authenticate"].startswith("Bearer")
                body = await response.text()
                assert "baton dashboard --serve" in body and TOKEN not in body
        async with session.get(base + "/static/missing.js") as response:  # not even whether an asset exists
            assert response.status == 401

    _run(check)


def test_a_wrong_token_is_refused_in_the_url_the_cookie_and_the_header() -> None:
    async def check(session: aiohttp.ClientSession, base: str) -> None:
        for wrong in ("nope", TOKEN[:-1], TOKEN + "x", "", "é-not-ascii"):
            async with session.get(base + "/", params={"token": wrong}, allow_redirects=False) as response:
                assert response.status == 401 and "Set-Cookie" not in response.headers
            async with session.get(base + API_PATH, headers={"Authorization": f"Bearer {wrong}"}) as response:
                assert response.status == 401
            async with session.get(base + API_PATH, cookies={cookie_name(0): wrong}) as response:
                assert response.status == 401

    _run(check)


def test_the_printed_url_trades_its_token_for_a_cookie_that_opens_every_route() -> None:
    async def check(session: aiohttp.ClientSession, base: str) -> None:
        async with session.get(base + "/", params={"token": TOKEN}, allow_redirects=False) as response:
            assert response.status == 303 and response.headers["Location"] == "/"
            cookie = response.cookies[cookie_name(0)]
            assert cookie.value == TOKEN and cookie["httponly"] and cookie["samesite"] == "Strict"
        async with session.get(base + "/") as response:  # the cookie alone now
            assert response.status == 200 and response.content_type == "text/html"
            assert "/static/dashboard.js" in await response.text()
            csp = response.headers["Content-Security-Policy"]
            assert "default-src 'none'" in csp and "script-src 'self'" in csp
            assert response.headers["Referrer-Policy"] == "no-referrer"
        for name, kind in ASSETS.items():
            async with session.get(f"{base}/static/{name}") as response:
                assert response.status == 200 and response.content_type == kind, name
        async with session.get(base + "/static/index.html") as response:
            assert response.status == 404  # only the listed assets
        async with session.get(base + API_PATH) as response:
            assert response.status == 200 and (await response.json())["circuit"] == "shop"

    _run(check)


def test_a_script_may_send_the_token_as_a_bearer_header() -> None:
    async def check(session: aiohttp.ClientSession, base: str) -> None:
        async with session.get(base + API_PATH, headers={"Authorization": f"Bearer {TOKEN}"}) as response:
            assert response.status == 200 and (await response.json())["circuit"] == "shop"

    _run(check)


def test_the_page_names_nothing_outside_the_package() -> None:
    static = resources.files("baton.dashboard").joinpath("static")
    for name in (*ASSETS, "index.html"):
        text = static.joinpath(name).read_text()
        urls = set(re.findall(r"[a-z]+://[^\s\"'<>)]+", text)) - {"http://www.w3.org/2000/svg"}
        assert urls == set(), f"{name} names {urls}"
        assert "<script>" not in text and " on" + "click=" not in text  # nothing inline (the CSP forbids it)


def test_a_taken_port_is_named_with_what_to_do() -> None:
    project = SimpleNamespace(state_dir=Path("/nonexistent"))
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        server = DashboardServer(project, api_url=None)
        with pytest.raises(BatonError) as caught:
            asyncio.run(server.start(port))
    message = caught.value.message
    assert f"port {port} on 127.0.0.1 is taken" in message and "--port" in message
    assert message.endswith(".") and ". " not in message  # one sentence


def test_a_stopped_circuit_is_collected_from_its_config_and_files(tmp_path: Path) -> None:
    from baton.project import Project

    (tmp_path / "baton.yaml").write_text("name: shop\nversion: 2\nnodes:\n"
                                         "  - {name: gateway, port: 20001, management_port: 20002, role: ingress}\n"
                                         "  - {name: api, port: 20003, management_port: 20004}\n"
                                         "edges:\n  - {source: gateway, target: api}\n")
    state = tmp_path / ".baton"
    state.mkdir()
    (state / "events.jsonl").write_text(json.dumps({"kind": "custodian", "timestamp": 5.0, "node_name": "api",
                                                    "status": "mocked", "reason": "restarts failed"}) + "\n"
                                        + json.dumps({"kind": "certs", "timestamp": 6.0}) + "\n")

    async def read() -> dict[str, Any]:
        async with Collector(Project.at(tmp_path), api_url=None) as collector:
            return (await collector.collect()).to_json()

    dashboard = asyncio.run(read())
    assert dashboard["running"] is False and [n["name"] for n in dashboard["nodes"]] == ["gateway", "api"]
    assert {n["health"] for n in dashboard["nodes"]} == {"stopped"}
    assert [d["status"] for d in dashboard["decisions"]] == ["mocked"]
    assert list(dashboard["runs"]) == [] and "Prefect API" in dashboard["runs_note"]
    assert dashboard["topology"]["edges"][0]["source"] == "gateway"


def test_violations_are_counted_incrementally_across_a_rotation(tmp_path: Path) -> None:
    path = tmp_path / "taint_violations.jsonl"
    counts = ViolationCounts(tmp_path)
    assert counts.read() == ({}, 0)
    path.write_text('{"node": "a"}\n{"node": "b"}\nnot json\n{"node": "a"}\n{"node": "b"')  # the last line half-written
    assert counts.read() == ({"a": 2, "b": 1}, 3)
    with path.open("a") as handle:
        handle.write('}\n{"node": "c"}\n')
    assert counts.read() == ({"a": 2, "b": 2, "c": 1}, 5)
    path.rename(tmp_path / "taint_violations.jsonl.1")
    path.write_text('{"node": "a"}\n')
    assert counts.read() == ({"a": 3, "b": 2, "c": 1}, 6)


def test_the_tail_of_a_file_skips_its_cut_first_line(tmp_path: Path) -> None:
    path = tmp_path / "signals.jsonl"
    path.write_text("".join(json.dumps({"n": i, "pad": "x" * 50}) + "\n" for i in range(100)))
    records = tail_records(path, max_bytes=1000)
    assert records and records[-1]["n"] == 99 and all(r["n"] == records[0]["n"] + i for i, r in enumerate(records))
    assert tail_records(tmp_path / "missing.jsonl") == []


class _Conductor:
    """The part of the conductor the dashboard routes of its API use (see baton.cli.conductor_api.ConductorFace)."""

    token = "conductor-token"
    custody = None

    def __init__(self) -> None:
        self.stopping = asyncio.Event()
        self.served: dict[str, Any] | None = None

    async def serve_dashboard(self, port: int) -> dict[str, Any]:
        if port == 1:
            raise BatonError("port 1 on 127.0.0.1 cannot be used (Permission denied), so the dashboard cannot "
                             "listen there; choose another with `baton dashboard --serve --port N`.")
        if self.served:
            return {**self.served, "already": True}
        self.served = {"serving": True, "url": f"http://127.0.0.1:{port}/?token=t", "port": port}
        return {**self.served, "already": False}

    async def stop_dashboard(self) -> bool:
        stopped, self.served = self.served is not None, None
        return stopped

    def dashboard_info(self) -> dict[str, Any]:
        return self.served or {"serving": False}


def test_the_conductor_serves_the_dashboard_once_and_says_where() -> None:
    from baton.cli.conductor_api import build_app as conductor_app

    async def main() -> None:
        runner, port = await _serving(conductor_app(_Conductor()))
        base = f"http://127.0.0.1:{port}/dashboard"
        auth = {"Authorization": "Bearer conductor-token"}
        try:
            async with aiohttp.ClientSession() as session:
                async with session.post(base, json={"port": 5000}) as response:
                    assert response.status == 401  # the conductor's own token guards it
                async with session.post(base, json={"port": 5000}, headers=auth) as response:
                    assert response.status == 200 and (await response.json())["already"] is False
                async with session.post(base, json={"port": 6000}, headers=auth) as response:
                    answer = await response.json()
                    assert answer["already"] is True and answer["port"] == 5000
                async with session.get(base, headers=auth) as response:
                    assert (await response.json())["url"] == "http://127.0.0.1:5000/?token=t"
                async with session.post(base, json={"port": 70000}, headers=auth) as response:
                    assert response.status == 400 and "65535" in (await response.json())["error"]
                async with session.post(base, data=b"not json", headers=auth) as response:
                    assert response.status == 400
                async with session.delete(base, headers=auth) as response:
                    assert await response.json() == {"stopped": True}
                async with session.post(base, json={"port": 1}, headers=auth) as response:
                    assert response.status == 409 and "--port" in (await response.json())["error"]
        finally:
            await runner.cleanup()

    asyncio.run(main())
