"""Routing: path templates with typed parameters, literal precedence, 404, 405, HEAD, base paths."""

from __future__ import annotations

import pytest
from _mock_support import contract, get
from baton_adapter.mock import MockEngine


@pytest.fixture(scope="module")
def users() -> MockEngine:
    return MockEngine.from_contract(contract("users.yaml"), "users")


def test_path_templates_match_concrete_paths(users: MockEngine) -> None:
    resp = get(users, "/users/42")
    assert resp.status == 200
    assert resp.json()["email"] == "alice@example.com"
    assert get(users, "/users/42/profile").status == 200


def test_literal_segments_win_over_parameters(users: MockEngine) -> None:
    assert get(users, "/users/me").json()["email"] == "me@example.com"


def test_a_mistyped_path_parameter_is_a_422(users: MockEngine) -> None:
    resp = get(users, "/users/abc")
    assert resp.status == 422
    assert resp.json()["problems"] == [{"location": "path.id", "message": "'abc' is not of type 'integer'"}]
    assert get(users, "/users/0").status == 422  # minimum: 1


def test_unknown_paths_answer_a_json_404(users: MockEngine) -> None:
    resp = get(users, "/nowhere/at/all")
    assert resp.status == 404
    assert dict(resp.headers)["content-type"] == "application/json"
    assert resp.json()["error"] == "not_found"


def test_an_undocumented_method_on_a_known_path_is_a_405(users: MockEngine) -> None:
    resp = get(users, "/users/42", method="PATCH")
    assert resp.status == 405
    assert dict(resp.headers)["allow"] == "DELETE, GET, HEAD"
    assert resp.json()["allowed"] == ["DELETE", "GET", "HEAD"]


def test_head_is_served_for_any_get(users: MockEngine) -> None:
    resp = get(users, "/users", method="HEAD")
    assert resp.status == 200 and resp.body == b""
    assert "x-total-count" in dict(resp.headers)


def test_head_on_unknown_paths_has_no_body_either(users: MockEngine) -> None:
    resp = get(users, "/nowhere", method="HEAD")
    assert (resp.status, resp.body) == (404, b"")


def test_a_query_string_left_in_the_path_is_understood(users: MockEngine) -> None:
    assert get(users, "/users?limit=1000").status == 422
    assert get(users, "/users?limit=10").status == 200


def test_other_documented_methods_route(users: MockEngine) -> None:
    assert get(users, "/users/42", method="DELETE").status == 204


def test_server_base_paths_and_trailing_slashes(users: MockEngine) -> None:
    assert get(users, "/api/users/me").status == 200
    assert get(users, "/v2/users/me").status == 200  # server variables take their defaults
    assert get(users, "/users/me/").status == 200
    inventory = MockEngine.from_contract(contract("inventory.json"), "inventory")
    assert get(inventory, "/v1/items/SKU-1234").status == 200
    assert get(inventory, "/items/SKU-1234").status == 200


def test_percent_encoded_parameters_are_decoded() -> None:
    github = MockEngine.from_contract(contract("realworld_github.yaml"), "github")
    assert get(github, "/users/octo%20cat").status == 200
