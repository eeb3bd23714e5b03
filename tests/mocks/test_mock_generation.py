"""Generated values honour formats, bounds, lengths, patterns and composition keywords."""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import json
import re
import uuid
from pathlib import Path
from typing import Any

import pytest
from baton_adapter.mock import MockEngine, MockRequest


def _engine(tmp_path: Path, schema: dict[str, Any], version: str = "3.0.3") -> MockEngine:
    doc = {
        "openapi": version,
        "info": {"title": "g", "version": "1"},
        "paths": {"/v": {"get": {"responses": {"200": {"description": "ok", "content": {
            "application/json": {"schema": schema}}}}}}},
    }
    path = tmp_path / "g.json"
    path.write_text(json.dumps(doc))
    return MockEngine.from_contract(str(path), "gen")


def _values(engine: MockEngine, n: int = 25) -> list[Any]:
    request = MockRequest("GET", "/v", [], {"prefer": "dynamic=true"}, b"")
    return [json.loads(engine.handle(request).body) for _ in range(n)]


def _schema_loc(engine: MockEngine) -> str:
    media = engine.operations[0].responses["200"].content["application/json"]
    assert media.schema is not None
    return media.schema


def _all_valid(engine: MockEngine, values: list[Any]) -> None:
    for value in values:
        assert engine.problems(_schema_loc(engine), value) == [], value


FORMATS = {
    "date": lambda v: dt.date.fromisoformat(v),
    "date-time": lambda v: dt.datetime.fromisoformat(v),
    "email": lambda v: re.fullmatch(r"[^@\s]+@[^@\s]+\.[a-z]+", v) or pytest.fail(v),
    "uuid": lambda v: uuid.UUID(v),
    "uri": lambda v: v.startswith("https://") or pytest.fail(v),
    "ipv4": lambda v: ipaddress.IPv4Address(v),
    "byte": lambda v: base64.b64decode(v, validate=True),
}


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_string_formats(tmp_path: Path, fmt: str) -> None:
    engine = _engine(tmp_path, {"type": "string", "format": fmt})
    values = _values(engine)
    for value in values:
        FORMATS[fmt](value)
    _all_valid(engine, values)


def test_integer_formats_and_bounds(tmp_path: Path) -> None:
    engine = _engine(tmp_path, {"type": "object", "required": ["a", "b", "c", "d"], "properties": {
        "a": {"type": "integer", "format": "int32", "minimum": 2147483600},
        "b": {"type": "integer", "format": "int64", "maximum": -9223372036854775800},
        "c": {"type": "integer", "minimum": 5, "maximum": 6, "exclusiveMaximum": True},
        "d": {"type": "number", "minimum": 0, "maximum": 1, "exclusiveMinimum": True, "exclusiveMaximum": True},
    }})
    values = _values(engine)
    assert all(v["a"] <= 2**31 - 1 and v["c"] == 5 and 0 < v["d"] < 1 for v in values)
    assert all(v["b"] >= -(2**63) for v in values)
    _all_valid(engine, values)


def test_openapi_31_numeric_exclusive_bounds_and_type_arrays(tmp_path: Path) -> None:
    engine = _engine(tmp_path, {"type": "object", "required": ["n", "s"], "properties": {
        "n": {"type": "integer", "exclusiveMinimum": 10, "exclusiveMaximum": 13},
        "s": {"type": ["string", "null"], "minLength": 4, "maxLength": 4},
    }}, version="3.1.0")
    values = _values(engine)
    assert all(v["n"] in (11, 12) and (v["s"] is None or len(v["s"]) == 4) for v in values)
    _all_valid(engine, values)


def test_string_lengths_and_patterns(tmp_path: Path) -> None:
    engine = _engine(tmp_path, {"type": "object", "required": ["long", "short", "code"], "properties": {
        "long": {"type": "string", "minLength": 50},
        "short": {"type": "string", "maxLength": 2},
        "code": {"type": "string", "pattern": r"^[A-Z]{2}-\d{3}(-[a-z]+)?$", "maxLength": 12},
    }})
    values = _values(engine)
    assert all(len(v["long"]) >= 50 and len(v["short"]) <= 2 for v in values)
    assert all(re.fullmatch(r"[A-Z]{2}-\d{3}(-[a-z]+)?", v["code"]) for v in values)
    _all_valid(engine, values)


def test_arrays_objects_and_composition(tmp_path: Path) -> None:
    engine = _engine(tmp_path, {"type": "object", "required": ["tags", "extra", "either", "merged"], "properties": {
        "tags": {"type": "array", "minItems": 3, "maxItems": 3, "uniqueItems": True,
                 "items": {"type": "string", "enum": ["a", "b", "c", "d"]}},
        "extra": {"type": "object", "minProperties": 2, "additionalProperties": {"type": "integer"}},
        "either": {"oneOf": [{"type": "integer", "minimum": 0}, {"type": "string", "maxLength": 3}]},
        "merged": {"allOf": [
            {"type": "object", "required": ["x"], "properties": {"x": {"type": "integer"}}},
            {"type": "object", "required": ["y"], "properties": {"y": {"type": "boolean"}}},
        ]},
        "maybe": {"type": "string", "nullable": True},
        "closed": {"type": "object", "additionalProperties": False, "properties": {"k": {"type": "string"}}},
    }})
    values = _values(engine)
    assert all(len(set(v["tags"])) == 3 and len(v["extra"]) >= 2 and {"x", "y"} <= set(v["merged"]) for v in values)
    _all_valid(engine, values)


def test_invalid_examples_are_replaced_by_valid_values(tmp_path: Path) -> None:
    engine = _engine(tmp_path, {"type": "integer", "minimum": 10, "example": 3})
    value = json.loads(engine.handle(MockRequest("GET", "/v", [], {}, b"")).body)
    assert value >= 10


def test_recursive_schemas_terminate(tmp_path: Path) -> None:
    doc = {
        "openapi": "3.0.3", "info": {"title": "t", "version": "1"},
        "paths": {"/tree": {"get": {"responses": {"200": {"description": "ok", "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/Node"}}}}}}}},
        "components": {"schemas": {"Node": {"type": "object", "required": ["name"], "properties": {
            "name": {"type": "string"}, "children": {"type": "array", "items": {"$ref": "#/components/schemas/Node"}}}}}},
    }
    path = tmp_path / "tree.json"
    path.write_text(json.dumps(doc))
    engine = MockEngine.from_contract(str(path), "tree")
    resp = engine.handle(MockRequest("GET", "/tree", [], {}, b""))
    assert resp.status == 200 and "name" in json.loads(resp.body)


def test_openapi_31_ref_siblings_apply_together(tmp_path: Path) -> None:
    doc = {
        "openapi": "3.1.0", "info": {"title": "s", "version": "1"},
        "paths": {"/v": {"get": {"responses": {"200": {"description": "ok", "content": {"application/json": {
            "schema": {"$ref": "#/components/schemas/Pet", "required": ["extra"],
                       "properties": {"extra": {"type": "integer", "minimum": 5}}}}}}}}}},
        "components": {"schemas": {"Pet": {"type": "object", "required": ["name"],
                                           "properties": {"name": {"type": "string"}}}}},
    }
    path = tmp_path / "s.json"
    path.write_text(json.dumps(doc))
    engine = MockEngine.from_contract(str(path), "s")
    values = _values(engine, 10)
    assert all(isinstance(v["name"], str) and v["extra"] >= 5 for v in values)
    _all_valid(engine, values)


def test_wide_recursive_schemas_stay_small(tmp_path: Path) -> None:
    node = {"type": "object", "required": ["id"], "properties": {
        "id": {"type": "integer"},
        **{f"kids{i}": {"type": "array", "items": {"$ref": "#/components/schemas/Node"}} for i in range(6)},
        **{f"link{i}": {"$ref": "#/components/schemas/Node"} for i in range(6)},
    }}
    doc = {
        "openapi": "3.0.3", "info": {"title": "w", "version": "1"},
        "paths": {"/w": {"get": {"responses": {"200": {"description": "ok", "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/Node"}}}}}}}},
        "components": {"schemas": {"Node": node}},
    }
    path = tmp_path / "w.json"
    path.write_text(json.dumps(doc))
    engine = MockEngine.from_contract(str(path), "w")
    resp = engine.handle(MockRequest("GET", "/w", [], {}, b""))
    assert resp.status == 200 and len(resp.body) < 200_000
