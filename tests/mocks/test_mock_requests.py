"""Request validation: bad bodies, queries, path and header parameters answer 422 with a list of problems."""

from __future__ import annotations

import json

import pytest
from _mock_support import contract, get
from baton_adapter.mock import MockEngine

JSON = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def users() -> MockEngine:
    return MockEngine.from_contract(contract("users.yaml"), "users")


def _problems(resp) -> list[str]:  # type: ignore[no-untyped-def]
    assert resp.status == 422, resp.body
    body = resp.json()
    assert body["error"] == "invalid_request"
    return [p["location"] for p in body["problems"]]


def test_a_valid_body_is_accepted(users: MockEngine) -> None:
    body = json.dumps({"email": "ann@example.com", "name": "Ann", "role": "guest", "age": 30}).encode()
    assert get(users, "/users", JSON, method="POST", body=body).status == 201


def test_an_invalid_body_lists_every_problem(users: MockEngine) -> None:
    body = json.dumps({"email": "not-an-email", "name": "A", "role": "king", "age": -1}).encode()
    assert sorted(_problems(get(users, "/users", JSON, method="POST", body=body))) == [
        "body.age", "body.email", "body.name", "body.role",
    ]


def test_missing_required_fields_and_bodies(users: MockEngine) -> None:
    assert _problems(get(users, "/users", JSON, method="POST", body=b'{"name": "Ann"}')) == ["body"]
    assert _problems(get(users, "/users", JSON, method="POST")) == ["body"]


def test_a_body_that_is_not_json(users: MockEngine) -> None:
    resp = get(users, "/users", JSON, method="POST", body=b"{nope")
    assert _problems(resp) == ["body"]
    assert "invalid JSON" in resp.json()["problems"][0]["message"]


def test_form_bodies_are_coerced_then_validated(users: MockEngine) -> None:
    form = {"content-type": "application/x-www-form-urlencoded"}
    assert get(users, "/users", form, method="POST", body=b"email=a%40b.co&name=Ann&age=31").status == 201
    assert _problems(get(users, "/users", form, method="POST", body=b"email=a%40b.co&name=Ann&age=old")) == [
        "body.age"
    ]


def test_an_undocumented_body_media_type_is_a_415(users: MockEngine) -> None:
    resp = get(users, "/users", {"content-type": "application/xml"}, method="POST", body=b"<user/>")
    assert resp.status == 415


def test_query_parameters_are_typed(users: MockEngine) -> None:
    assert get(users, "/users", query=[("limit", "10"), ("active", "true"), ("tags", "a,b")]).status == 200
    assert _problems(get(users, "/users", query=[("limit", "1000")])) == ["query.limit"]
    assert _problems(get(users, "/users", query=[("limit", "ten")])) == ["query.limit"]
    assert _problems(get(users, "/users", query=[("active", "maybe")])) == ["query.active"]
    assert _problems(get(users, "/users", query=[("role", "king")])) == ["query.role"]
    assert _problems(get(users, "/users", query=[("tags", "a,b,c,d")])) == ["query.tags"]


def test_array_and_deep_object_queries() -> None:
    inventory = MockEngine.from_contract(contract("inventory.json"), "inventory")
    ok = [("ids", "1"), ("ids", "2"), ("filter[warehouse]", "BER1"), ("filter[minQty]", "3"), ("sort", "-name")]
    assert get(inventory, "/items", query=ok).status == 200
    bad = [("ids", "1"), ("ids", "two"), ("filter[minQty]", "many"), ("sort", "price")]
    assert sorted(_problems(get(inventory, "/items", query=bad))) == ["query.filter.minQty", "query.ids.1", "query.sort"]


def test_path_and_header_parameters(users: MockEngine) -> None:
    path = "/reports/3fa85f64-5717-4562-b3fc-2c963f66afa6"
    assert get(users, path, {"x-tenant": "t-001"}).status == 200
    assert _problems(get(users, path)) == ["header.X-Tenant"]
    assert _problems(get(users, path, {"x-tenant": "tenant-1"})) == ["header.X-Tenant"]
    assert _problems(get(users, "/reports/not-a-uuid", {"x-tenant": "t-001"})) == ["path.reportId"]


def test_validation_can_be_switched_off_per_node() -> None:
    lenient = MockEngine.from_contract(contract("users.yaml"), "users", validate_requests=False)
    assert get(lenient, "/users", query=[("limit", "ten")]).status == 200
    assert get(lenient, "/users", JSON, method="POST", body=b"{}").status == 201


def test_cookie_parameters_and_ignored_header_definitions(tmp_path) -> None:  # type: ignore[no-untyped-def]
    doc = {
        "openapi": "3.0.3", "info": {"title": "c", "version": "1"},
        "paths": {"/c": {"get": {
            "parameters": [
                {"name": "session", "in": "cookie", "required": True, "schema": {"type": "integer"}},
                {"name": "Accept", "in": "header", "required": True, "schema": {"type": "string", "enum": ["x"]}},
            ],
            "responses": {"204": {"description": "ok"}}}}},
    }
    path = tmp_path / "c.json"
    path.write_text(json.dumps(doc))
    engine = MockEngine.from_contract(str(path), "c")
    assert get(engine, "/c", {"cookie": "session=12; theme=dark"}).status == 204
    assert _problems(get(engine, "/c", {"cookie": "session=abc"})) == ["cookie.session"]
    assert _problems(get(engine, "/c")) == ["cookie.session"]


def test_formats_are_checked_in_request_bodies() -> None:
    inventory = MockEngine.from_contract(contract("inventory.json"), "inventory")
    item = {"sku": "SKU-0001", "name": "bolt", "kind": "item", "qty": 1, "price": {"amount": 1.5, "currency": "EUR"}}
    ok = {**item, "thumbnail": "aGVsbG8=", "origin": "10.0.0.1", "image": "https://x.test/a.png",
          "discontinued": "2024-02-29", "serial": 9007199254740993}
    assert get(inventory, "/items", JSON, method="POST", body=json.dumps(ok).encode()).status == 201
    bad = {**item, "thumbnail": "not base64!", "origin": "300.1.1.1", "image": "no scheme",
           "discontinued": "2024-02-30", "qty": 2**31}
    problems = _problems(get(inventory, "/items", JSON, method="POST", body=json.dumps(bad).encode()))
    assert sorted(problems) == ["body.discontinued", "body.image", "body.origin", "body.qty", "body.thumbnail"]
