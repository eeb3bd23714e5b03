"""Static compatibility of a consumer's expected API against its provider's contract."""

from __future__ import annotations

from baton.compat import Severity, check_compatibility


def _api(paths: dict) -> dict:
    return {"openapi": "3.0.3", "info": {"title": "t", "version": "1"}, "paths": paths}


def _json(schema: dict) -> dict:
    return {"content": {"application/json": {"schema": schema}}}


USER = {"type": "object", "required": ["id", "email"], "properties": {
    "id": {"type": "integer"}, "email": {"type": "string"}, "nick": {"type": "string"}}}

PROVIDER = _api({
    "/users/{userId}": {"get": {"responses": {"200": {"description": "ok", **_json(USER)}}}},
    "/users": {"post": {
        "requestBody": {"required": True, **_json({"type": "object", "required": ["email"],
                                                    "properties": {"email": {"type": "string"}}})},
        "responses": {"201": {"description": "created", **_json(USER)}},
    }},
})


def errors(findings):
    return [f for f in findings if f.severity is Severity.ERROR]


def test_matching_expectations_are_compatible_even_with_other_parameter_names() -> None:
    expected = _api({"/users/{id}": {"get": {"responses": {"200": {"description": "ok", **_json(
        {"type": "object", "required": ["id"], "properties": {"id": {"type": "integer"}}})}}}}})
    assert check_compatibility(expected, PROVIDER, consumer="web", provider="users") == []


def test_missing_path_and_method() -> None:
    expected = _api({"/accounts": {"get": {"responses": {"200": {"description": "ok"}}}},
                     "/users": {"get": {"responses": {"200": {"description": "ok"}}}}})
    found = errors(check_compatibility(expected, PROVIDER, consumer="web", provider="users"))
    assert [f.message for f in found] == [
        "the provider has no path matching /accounts",
        "the provider documents /users but not GET",
    ]


def test_consumer_reading_a_field_the_provider_never_returns() -> None:
    expected = _api({"/users/{id}": {"get": {"responses": {"200": {"description": "ok", **_json(
        {"type": "object", "required": ["id", "avatar", "nick"],
         "properties": {"id": {"type": "string"}, "avatar": {"type": "string"}, "nick": {"type": "string"}}})}}}}})
    found = check_compatibility(expected, PROVIDER, consumer="web", provider="users")
    by_location = {f.location: f for f in found}
    assert by_location["response 200.avatar"].severity is Severity.ERROR
    assert by_location["response 200.nick"].severity is Severity.WARNING  # optional on the provider
    assert by_location["response 200.id"].severity is Severity.ERROR  # integer vs string
    assert "type integer" in by_location["response 200.id"].message


def test_request_body_missing_a_required_field_and_missing_body() -> None:
    expected = _api({"/users": {"post": {
        "requestBody": _json({"type": "object", "properties": {"name": {"type": "string"}}}),
        "responses": {"201": {"description": "created"}}}}})
    found = errors(check_compatibility(expected, PROVIDER, consumer="web", provider="users"))
    assert [f.location for f in found] == ["requestBody.email"]
    no_body = _api({"/users": {"post": {"responses": {"201": {"description": "created"}}}}})
    found = errors(check_compatibility(no_body, PROVIDER, consumer="web", provider="users"))
    assert [f.location for f in found] == ["requestBody"]


def test_all_of_is_merged_and_integers_fit_numbers() -> None:
    provider = _api({"/p": {"get": {"responses": {"200": {"description": "ok", **_json({"allOf": [
        {"type": "object", "required": ["a"], "properties": {"a": {"type": "integer"}}},
        {"required": ["b"], "properties": {"b": {"type": "string"}}}]})}}}}})
    expected = _api({"/p": {"get": {"responses": {"200": {"description": "ok", **_json(
        {"type": "object", "required": ["a", "b"], "properties": {"a": {"type": "number"}, "b": {"type": "string"}}})}}}}})
    assert check_compatibility(expected, provider, consumer="c", provider="p") == []
