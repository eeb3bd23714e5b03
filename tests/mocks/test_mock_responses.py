"""Response selection, Prefer headers, examples, generation, headers and content negotiation."""

from __future__ import annotations

import json

import pytest
from _mock_support import contract, get
from baton_adapter.mock import MockEngine


@pytest.fixture(scope="module")
def users() -> MockEngine:
    return MockEngine.from_contract(contract("users.yaml"), "users")


@pytest.fixture(scope="module")
def inventory() -> MockEngine:
    return MockEngine.from_contract(contract("inventory.json"), "inventory")


def test_the_lowest_2xx_is_the_default(users: MockEngine) -> None:
    assert get(users, "/users/42").status == 200
    assert get(users, "/users", method="POST", body=b'{"email": "a@b.co", "name": "Ann"}',
               headers={"content-type": "application/json"}).status == 201


def test_a_2xx_range_answers_200(inventory: MockEngine) -> None:
    resp = get(inventory, "/items")
    assert resp.status == 200
    assert dict(resp.headers)["x-page"] == "1"  # header example
    assert dict(resp.headers)["x-cache"] in ("true", "false")


def test_a_default_response_answers_when_no_2xx_exists(users: MockEngine) -> None:
    resp = get(users, "/legacy")
    assert resp.status == 200
    assert all(isinstance(v, int) and v >= 0 for v in resp.json().values())


def test_prefer_code_selects_a_documented_response(users: MockEngine) -> None:
    resp = get(users, "/users/42", {"prefer": "code=404"})
    assert resp.status == 404
    assert resp.json() == {"code": 404, "message": "no such thing"}


def test_prefer_code_uses_default_for_undocumented_codes(inventory: MockEngine) -> None:
    resp = get(inventory, "/items", {"prefer": "code=503"}, method="POST",
               body=json.dumps({"sku": "SKU-0001", "name": "bolt", "kind": "item", "qty": 1,
                                "price": {"amount": 1.5, "currency": "EUR"}}).encode(),)
    assert resp.status == 503
    assert dict(resp.headers)["content-type"] == "application/problem+json"


def test_prefer_code_without_a_response_is_a_500(users: MockEngine) -> None:
    resp = get(users, "/users/42", {"prefer": "code=418"})
    assert resp.status == 500
    assert resp.json()["error"] == "no_response_defined"


def test_prefer_example_selects_a_named_example(users: MockEngine) -> None:
    assert get(users, "/users/42", {"prefer": "example=bob"}).json()["name"] == "Bob"
    assert get(users, "/users/42", {"prefer": "example=alice"}).json()["name"] == "Alice"
    missing = get(users, "/users/42", {"prefer": "example=carol"})
    assert missing.status == 404 and "alice, bob" in missing.json()["message"]


def test_prefer_combines_code_and_example_like_prism(users: MockEngine) -> None:
    resp = get(users, "/users/42", {"prefer": 'code=200, example="bob"'})
    assert resp.json()["name"] == "Bob"


def test_media_type_examples_come_first(users: MockEngine) -> None:
    assert get(users, "/users/me").json()["name"] == "Me Myself"  # media-type example
    assert get(users, "/users/42").json()["name"] == "Alice"  # first of examples


def test_schema_and_property_examples_are_honoured(inventory: MockEngine, users: MockEngine) -> None:
    item = get(inventory, "/items/SKU-0042").json()
    assert item["sku"] == "SKU-0001"  # schema-level 3.1 examples
    assert item["tags"] == ["fragile", "heavy"]  # property-level examples
    assert item["kind"] == "item"  # const
    profile = get(users, "/users/3/profile").json()
    assert profile.get("nickname", "Ace") == "Ace"  # 3.0 property example
    assert get(inventory, "/stats").json()["when"] == "2025-01-01T00:00:00Z"


def test_generated_values_respect_the_schema(inventory: MockEngine) -> None:
    stats = get(inventory, "/stats").json()
    assert stats["count"] in (10, 15, 20)  # bounds and multipleOf
    assert 0 <= stats["ratio"] <= 1


def test_default_bodies_are_stable_and_dynamic_bodies_are_fresh(inventory: MockEngine) -> None:
    first, second = get(inventory, "/items").body, get(inventory, "/items").body
    assert first == second
    fresh = {get(inventory, "/items", {"prefer": "dynamic=true"}).body for _ in range(4)}
    assert len(fresh) == 4
    assert first not in fresh  # dynamic ignores examples


def test_a_dynamic_engine_can_be_asked_for_static_answers() -> None:
    engine = MockEngine.from_contract(contract("inventory.json"), "inventory", dynamic=True)
    assert get(engine, "/stats").body != get(engine, "/stats").body
    static = get(engine, "/stats", {"prefer": "dynamic=false"})
    assert static.body == get(engine, "/stats", {"prefer": "dynamic=false"}).body


def test_declared_response_headers_are_sent(users: MockEngine) -> None:
    headers = dict(get(users, "/users").headers)
    assert int(headers["x-total-count"]) >= 0
    assert len(headers["x-request-id"]) == 36


def test_json_is_preferred_and_accept_negotiates(users: MockEngine) -> None:
    path, tenant = "/reports/3fa85f64-5717-4562-b3fc-2c963f66afa6", {"x-tenant": "t-007"}
    assert dict(get(users, path, tenant).headers)["content-type"] == "application/json"
    csv = get(users, path, {**tenant, "accept": "text/csv"})
    assert dict(csv.headers)["content-type"] == "text/csv" and csv.body == b"id,total\n1,2\n"
    weighted = get(users, path, {**tenant, "accept": "application/json;q=0.2, text/csv;q=0.9"})
    assert dict(weighted.headers)["content-type"] == "text/csv"
    refused = get(users, path, {**tenant, "accept": "application/xml"})
    assert refused.status == 406


def test_non_json_media_types_get_a_plain_answer(users: MockEngine) -> None:
    ping = get(users, "/ping")
    assert (ping.body, dict(ping.headers)["content-type"]) == (b"pong", "text/plain")
    avatar = get(users, "/users/1/avatar")
    assert dict(avatar.headers)["content-type"] == "text/plain"
    import base64

    base64.b64decode(avatar.body, validate=True)


def test_xml_media_types_get_an_xml_document(users: MockEngine) -> None:
    import xml.etree.ElementTree as ET

    resp = get(users, "/users/me", {"accept": "application/xml"})
    assert dict(resp.headers)["content-type"] == "application/xml"
    root = ET.fromstring(resp.body)
    assert root.tag == "user"
    assert root.find("email") is not None and "@" in (root.find("email").text or "")
    assert get(users, "/users/me").json()["name"] == "Me Myself"  # JSON stays the default


def test_no_content_responses_have_no_body(users: MockEngine) -> None:
    resp = get(users, "/users/9", method="DELETE")
    assert (resp.status, resp.body) == (204, b"")


def test_plain_json_schema_contracts_are_served_as_one_route() -> None:
    engine = MockEngine.from_contract(contract("measurement.schema.json"), "sensor")
    body = get(engine, "/").json()
    assert {"sensor", "value", "takenAt"} <= set(body)
    assert -40 <= body["value"] <= 125
    assert get(engine, "/other").status == 404
    valid = json.dumps(body).encode()
    assert get(engine, "/", {"content-type": "application/json"}, method="POST", body=valid).status == 204
    invalid = get(engine, "/", {"content-type": "application/json"}, method="POST", body=b'{"value": 500}')
    assert invalid.status == 422
    assert {p["location"] for p in invalid.json()["problems"]} == {"body", "body.value"}


def test_lint_reports_examples_that_break_their_schema(tmp_path) -> None:  # type: ignore[no-untyped-def]
    for name in ("users.yaml", "inventory.json", "realworld_github.yaml"):
        assert MockEngine.from_contract(contract(name), "lint").lint() == []
    doc = {
        "openapi": "3.0.3", "info": {"title": "l", "version": "1"},
        "paths": {"/l/{id}": {"get": {
            "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "integer"},
                            "example": "x"}],
            "responses": {"200": {"description": "ok", "content": {"application/json": {
                "schema": {"type": "object", "required": ["n"], "properties": {"n": {"type": "integer"}}},
                "examples": {"good": {"value": {"n": 1}}, "bad": {"value": {"n": "one"}}}}}}}}}},
    }
    path = tmp_path / "l.json"
    path.write_text(json.dumps(doc))
    found = MockEngine.from_contract(str(path), "lint").lint()
    assert len(found) == 2
    assert found[0].startswith("GET /l/{id} 200 application/json: example bad.n does not validate")
    assert "path parameter id" in found[1]
