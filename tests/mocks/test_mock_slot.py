"""Slot-time validation against real aiohttp services on 127.0.0.1: a right one passes, a wrong one fails."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest
from _mock_support import contract
from aiohttp import web
from baton_adapter.mock import ContractError, MockEngine, MockRequest, ValidationReport, validate_service

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@asynccontextmanager
async def _serve(handler: Handler) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


def _engine_handler(engine: MockEngine, seen: list[tuple[str, str]]) -> Handler:
    async def handle(request: web.Request) -> web.Response:
        seen.append((request.method, request.path_qs))
        body = await request.read()
        answer = engine.handle(MockRequest(
            request.method, request.path, list(request.query.items()),
            {k.lower(): v for k, v in request.headers.items()}, body,
        ))
        response = web.Response(status=answer.status, body=answer.body)
        for name, value in answer.headers:
            response.headers[name] = value
        return response

    return handle


def _validate(handler: Handler, name: str, **options: object) -> ValidationReport:
    async def run() -> ValidationReport:
        async with _serve(handler) as url:
            return await validate_service(url, contract(name), **options)  # type: ignore[arg-type]

    return asyncio.run(run())


def test_a_service_that_honours_the_contract_passes() -> None:
    for name in ("users.yaml", "inventory.json", "realworld_github.yaml"):
        seen: list[tuple[str, str]] = []
        engine = MockEngine.from_contract(contract(name), "real-" + name, seed=11)
        report = _validate(_engine_handler(engine, seen), name)
        assert report.ok, report.to_json()["mismatches"]
        assert {m for m, _ in seen} <= {"GET", "HEAD"}
        assert not any("{" in path or "%7B" in path for _, path in seen)


def test_probes_fill_path_parameters_from_examples_and_schemas() -> None:
    seen: list[tuple[str, str]] = []
    engine = MockEngine.from_contract(contract("users.yaml"), "real")
    _validate(_engine_handler(engine, seen), "users.yaml")
    paths = {path for _, path in seen}
    assert "/users/42" in paths  # the parameter's example
    assert any(p.startswith("/reports/") and len(p) == len("/reports/") + 36 for p in paths)  # a uuid


def test_unsafe_methods_are_probed_only_when_asked() -> None:
    seen: list[tuple[str, str]] = []
    engine = MockEngine.from_contract(contract("users.yaml"), "real")
    safe = _validate(_engine_handler(engine, seen), "users.yaml")
    skipped = {(p.method, p.template) for p in safe.probes if p.verdict == "skipped"}
    assert skipped == {("POST", "/users"), ("DELETE", "/users/{id}")}
    seen.clear()
    unsafe = _validate(_engine_handler(engine, seen), "users.yaml", unsafe_methods=True)
    assert unsafe.ok, unsafe.to_json()["mismatches"]
    assert {"POST", "DELETE"} <= {m for m, _ in seen}


async def _wrong(request: web.Request) -> web.Response:
    path = request.path
    if path == "/users":
        return web.json_response({"items": [{"id": "seven", "email": "x"}]})  # no total, bad types
    if path == "/users/me":
        return web.Response(text="{not json", content_type="application/json")
    if path == "/ping":
        return web.json_response({"pong": True})  # documented as text/plain
    if path.startswith("/users/") and path.endswith("/profile"):
        return web.json_response({"error": "boom"}, status=500)  # undocumented status
    if path.startswith("/reports/"):
        return web.json_response({"id": "3fa85f64-5717-4562-b3fc-2c963f66afa6", "rows": [1]})
    if path.startswith("/users/") and path.endswith("/avatar"):
        return web.Response(text="aGk=", content_type="text/plain")
    if path == "/legacy":
        return web.json_response({"a": 1})
    return web.json_response({"id": 1, "email": "a@b.co", "name": "Al", "createdAt": "2024-01-01T00:00:00Z"})


def test_a_service_that_breaks_the_contract_fails_with_each_mismatch() -> None:
    report = _validate(_wrong, "users.yaml")
    assert not report.ok
    kinds = {(m.template, m.kind) for m in report.mismatches}
    assert kinds == {
        ("/users", "invalid_body"),
        ("/users", "missing_header"),
        ("/users/me", "invalid_json"),
        ("/ping", "undocumented_content_type"),
        ("/users/{id}/profile", "undocumented_status"),
    }
    invalid = next(m for m in report.mismatches if m.kind == "invalid_body")
    assert "body: 'total' is a required property" in invalid.detail
    assert "body.items.0.id: 'seven' is not of type 'integer'" in invalid.problems
    assert any(p.startswith("body.items.0.email") for p in invalid.problems)
    document = report.to_json()
    json.dumps(document)
    assert document["ok"] is False and len(document["mismatches"]) == 5
    assert document["skipped"] == 2
    rows = report.rows()
    assert len(rows[0]) == len(ValidationReport.COLUMNS)
    profile = next(r for r in rows if r[1].endswith("/profile"))
    assert (profile[0], profile[2], profile[3]) == ("GET", "500", "mismatch")
    assert "{" not in profile[1]


def test_an_unreachable_service_fails_every_probe() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    report = asyncio.run(validate_service(f"http://127.0.0.1:{port}", contract("users.yaml"), timeout=2.0))
    probed = [p for p in report.probes if p.verdict != "skipped"]
    assert probed and all(p.verdict == "mismatch" for p in probed)
    assert {m.kind for m in report.mismatches} == {"unreachable"}


def test_a_bad_contract_is_a_contract_error_not_a_report(tmp_path) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "bad.yaml"
    bad.write_text("openapi: 3.0.3\ninfo: {title: t, version: '1'}\npaths:\n  /a: []\n")
    with pytest.raises(ContractError, match="bad.yaml line 4"):
        asyncio.run(validate_service("http://127.0.0.1:9", str(bad)))
