"""Every documented GET of every contract answers a documented status with a body that validates."""

from __future__ import annotations

import json

import pytest
from _mock_support import ALL_CONTRACTS, contract, documented, fill, get
from baton_adapter.mock import MockEngine
from baton_adapter.mock._request import base_media_type, is_json


def _check(engine: MockEngine, op, resp) -> None:  # type: ignore[no-untyped-def]
    spec = documented(op, resp.status)
    assert spec is not None, f"{op.method} {op.path} answered undocumented {resp.status}"
    if not spec.content:
        assert resp.body == b""
        return
    content_type = dict(resp.headers)["content-type"]
    media = next(m for m in spec.content.values() if base_media_type(m.media_type) == base_media_type(content_type))
    if is_json(content_type) and media.schema:
        value = json.loads(resp.body)
        assert engine.problems(media.schema, value) == [], (op.path, value)
    for header in spec.headers:
        assert header.name.lower() in dict(resp.headers)


@pytest.mark.parametrize("name", ALL_CONTRACTS)
def test_every_get_answers_a_documented_status_with_a_valid_body(name: str) -> None:
    engine = MockEngine.from_contract(contract(name), "node-a")
    gets = [op for op in engine.operations if op.method == "get"]
    assert gets
    for op in gets:
        path, query, headers = fill(engine, op)
        resp = get(engine, path, headers, query)
        assert 200 <= resp.status < 300, (op.path, resp.status, resp.body)
        _check(engine, op, resp)


@pytest.mark.parametrize("name", ALL_CONTRACTS)
def test_every_documented_status_of_every_get_validates_when_preferred(name: str) -> None:
    engine = MockEngine.from_contract(contract(name), "node-b")
    for op in (op for op in engine.operations if op.method == "get"):
        path, query, headers = fill(engine, op)
        for status in op.responses:
            code = "200" if status in ("default", "2XX") else status.replace("XX", "00")
            resp = get(engine, path, {**headers, "prefer": f"code={code}"}, query)
            assert resp.status == int(code), (op.path, code, resp.body)
            _check(engine, op, resp)


@pytest.mark.parametrize("name", ALL_CONTRACTS)
def test_dynamic_bodies_validate_on_every_request(name: str) -> None:
    engine = MockEngine.from_contract(contract(name), "node-c")
    for op in (op for op in engine.operations if op.method == "get"):
        path, query, headers = fill(engine, op)
        for _ in range(5):
            resp = get(engine, path, {**headers, "prefer": "dynamic=true"}, query)
            _check(engine, op, resp)


@pytest.mark.parametrize("name", ALL_CONTRACTS)
def test_head_answers_every_get_without_a_body(name: str) -> None:
    engine = MockEngine.from_contract(contract(name), "node-d")
    for op in (op for op in engine.operations if op.method == "get"):
        path, query, headers = fill(engine, op)
        got = get(engine, path, headers, query)
        head = get(engine, path, headers, query, method="HEAD")
        assert (head.status, head.headers, head.body) == (got.status, got.headers, b"")


def test_the_real_world_contract_mocks_every_operation() -> None:
    engine = MockEngine.from_contract(contract("realworld_github.yaml"), "github")
    assert len(engine.operations) == 11
    resp = get(engine, "/users/octocat")
    assert resp.json()["login"] == "octocat"
    issues = get(engine, "/repos/octocat/hello/issues", query=[("state", "open"), ("per_page", "10")])
    assert issues.status == 200 and isinstance(issues.json(), list)
    assert get(engine, "/repos/octocat/hello/issues", query=[("state", "weird")]).status == 422
