"""Request validation: path, query, header and cookie parameters and the body, checked against the contract.

Parameters arrive as text; each is coerced to its documented type (integer, number, boolean, array by
``style``/``explode``, ``deepObject``) before the schema validator sees it, so the problems a client reads
are the schema's own ("'abc' is not of type 'integer'").
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qsl

from referencing import Registry
from referencing._core import Resolver

from ._contract import Operation, Parameter, RequestBody
from ._schemas import Problem, ValidatorFactory

__all__ = ["RequestChecker", "UnsupportedMediaType", "base_media_type", "is_json"]


_IGNORED_HEADERS = frozenset({"accept", "content-type", "authorization"})


def base_media_type(value: str) -> str:
    """``"application/json; charset=utf-8"`` -> ``"application/json"``."""
    return value.split(";", 1)[0].strip().lower()


def is_json(media_type: str) -> bool:
    """True for ``application/json`` and ``+json`` media types."""
    base = base_media_type(media_type)
    return base in ("application/json", "*/*", "application/*") or base.endswith("+json")


@dataclass(frozen=True)
class UnsupportedMediaType:
    """The request body's media type is not documented for the operation."""

    found: str
    documented: tuple[str, ...]


def _types(registry: Registry[Any], location: str | None) -> tuple[str, str]:
    """The primary type of the schema at ``location`` (following ``$ref``/``allOf``) and its item type."""
    if location is None:
        return "string", "string"
    resolved = registry.resolver().lookup(location)
    return _types_of(resolved.contents, resolved.resolver)


def _types_of(schema: Any, resolver: Resolver[Any]) -> tuple[str, str]:
    for _ in range(16):
        if not isinstance(schema, Mapping):
            return "string", "string"
        if isinstance(schema.get("$ref"), str):
            resolved = resolver.lookup(schema["$ref"])
            schema, resolver = resolved.contents, resolved.resolver
            continue
        declared = schema.get("type")
        if isinstance(declared, list):
            declared = next((t for t in declared if t != "null"), "null")
        if declared is None:
            for key in ("allOf", "oneOf", "anyOf"):
                parts = schema.get(key)
                if isinstance(parts, list) and parts:
                    schema = parts[0]
                    break
            else:
                return "string", "string"
            continue
        item = "string"
        items = schema.get("items")
        if declared == "array" and isinstance(items, Mapping):
            item = _types_of(items, resolver)[0]
        return str(declared), item
    return "string", "string"


def coerce(text: str, kind: str) -> Any:
    """Coerce parameter text to ``kind``; leave it as text when it does not convert (the validator says why)."""
    if kind == "integer":
        try:
            return int(text)
        except ValueError:
            return text
    if kind == "number":
        try:
            number = float(text)
        except ValueError:
            return text
        return int(number) if number.is_integer() and "." not in text and "e" not in text.lower() else number
    if kind == "boolean":
        return {"true": True, "false": False}.get(text.lower(), text)
    if kind == "null":
        return None if text in ("", "null") else text
    return text


@dataclass(frozen=True)
class _Param:
    spec: Parameter
    kind: str
    item: str
    properties: Mapping[str, tuple[str, str]]


class RequestChecker:
    """Checks one request against one operation; built once per operation at load."""

    def __init__(self, operation: Operation, registry: Registry[Any], validators: ValidatorFactory) -> None:
        self.operation = operation
        self._validators = validators
        self._params = []
        for p in operation.parameters:
            if p.where == "header" and p.name.lower() in _IGNORED_HEADERS:
                continue  # the OpenAPI specification says these definitions SHALL be ignored
            kind, item = _types(registry, p.schema)
            properties = _property_kinds(registry, p.schema) if kind == "object" and p.schema else {}
            self._params.append(_Param(p, kind, item, properties))
        self._path_params = [p for p in self._params if p.spec.where == "path"]
        self._body = operation.request_body
        self._body_kinds: dict[str, dict[str, tuple[str, str]]] = {}
        for param in operation.parameters:  # compile validators now, not on the first request
            if param.schema is not None:
                validators(param.schema, "request")
        if self._body is not None:
            for media, entry in self._body.content.items():
                if entry.schema is not None:
                    validators(entry.schema, "request")
                if base_media_type(media) == "application/x-www-form-urlencoded" and entry.schema:
                    self._body_kinds[media] = _property_kinds(registry, entry.schema)

    def path_fits(self, params: Mapping[str, str]) -> bool:
        """True when every typed path parameter converts to its type (used to choose among templates)."""
        for p in self._path_params:
            value = params.get(p.spec.name)
            if value is None:
                continue
            if p.kind in ("integer", "number", "boolean") and isinstance(coerce(value, p.kind), str):
                return False
        return True

    def check(
        self,
        path_params: Mapping[str, str],
        query: Sequence[tuple[str, str]],
        headers: Mapping[str, str],
        body: bytes,
    ) -> list[Problem] | UnsupportedMediaType:
        """Every problem with the request, or :class:`UnsupportedMediaType`; an empty list means valid."""
        problems: list[Problem] = []
        cookies: dict[str, str] = {}
        if "cookie" in headers and any(p.spec.where == "cookie" for p in self._params):
            jar: SimpleCookie = SimpleCookie()
            jar.load(headers["cookie"])
            cookies = {k: m.value for k, m in jar.items()}
        for p in self._params:
            where = p.spec.where
            if where == "path":
                raw: Any = path_params.get(p.spec.name)
                value = None if raw is None else self._scalar_or_array(p, [raw])
            elif where == "query":
                value = self._query_value(p, query)
            elif where == "header":
                raw = headers.get(p.spec.name.lower())
                value = None if raw is None else self._scalar_or_array(p, [raw])
            else:
                raw = cookies.get(p.spec.name)
                value = None if raw is None else self._scalar_or_array(p, [raw])
            if value is None:
                if p.spec.required:
                    problems.append(Problem(f"{where}.{p.spec.name}", "required parameter is missing"))
                continue
            if p.spec.schema is not None:
                problems.extend(self._validators(p.spec.schema, "request").problems(value, f"{where}.{p.spec.name}"))
        body_result = self._check_body(self._body, headers, body)
        if isinstance(body_result, UnsupportedMediaType):
            return body_result
        return problems + body_result

    def _scalar_or_array(self, p: _Param, values: list[str]) -> Any:
        if p.kind == "array":
            if len(values) == 1 and not (p.spec.where == "query" and p.spec.explode):
                sep = {"spaceDelimited": " ", "pipeDelimited": "|"}.get(p.spec.style, ",")
                values = values[0].split(sep) if values[0] else []
            return [coerce(v, p.item) for v in values]
        return coerce(values[-1], p.kind)

    def _query_value(self, p: _Param, query: Sequence[tuple[str, str]]) -> Any:
        name = p.spec.name
        if p.kind == "object" and p.spec.style == "deepObject":
            prefix = name + "["
            found = {}
            for key, text in query:
                if key.startswith(prefix) and key.endswith("]"):
                    prop = key[len(prefix) : -1]
                    found[prop] = coerce(text, p.properties.get(prop, ("string", "string"))[0])
            return found or None
        values = [v for k, v in query if k == name]
        if not values:
            return None
        return self._scalar_or_array(p, values)

    def _check_body(
        self, spec: RequestBody | None, headers: Mapping[str, str], body: bytes
    ) -> list[Problem] | UnsupportedMediaType:
        if spec is None or not spec.content:
            return []
        if not body:
            return [Problem("body", "required request body is missing")] if spec.required else []
        found = base_media_type(headers.get("content-type", "application/json"))
        media = _pick(spec.content, found)
        if media is None:
            return UnsupportedMediaType(found, tuple(spec.content))
        entry = spec.content[media]
        if entry.schema is None:
            return []
        if is_json(found):
            try:
                value = json.loads(body)
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                return [Problem("body", f"expected a JSON document, found invalid JSON ({exc})")]
        elif found == "application/x-www-form-urlencoded":
            kinds = self._body_kinds.get(media, {})
            value = {}
            for key, text in parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True):
                kind, item = kinds.get(key, ("string", "string"))
                if kind == "array":
                    value.setdefault(key, []).append(coerce(text, item))
                else:
                    value[key] = coerce(text, kind)
        elif found.startswith("text/"):
            value = body.decode("utf-8", "replace")
        else:
            return []
        return self._validators(entry.schema, "request").problems(value, "body")


def _pick(content: Mapping[str, Any], found: str) -> str | None:
    for media in content:
        if base_media_type(media) == found:
            return media
    major = found.split("/", 1)[0]
    for media in content:
        base = base_media_type(media)
        if base in ("*/*", f"{major}/*"):
            return media
    return None


def _property_kinds(registry: Registry[Any], location: str) -> dict[str, tuple[str, str]]:
    """The coercion types of an object schema's properties (for form bodies)."""
    resolved = registry.resolver().lookup(location)
    schema, resolver = resolved.contents, resolved.resolver
    while isinstance(schema, Mapping) and isinstance(schema.get("$ref"), str):
        resolved = resolver.lookup(schema["$ref"])
        schema, resolver = resolved.contents, resolved.resolver
    properties = schema.get("properties") if isinstance(schema, Mapping) else None
    return {name: _types_of(sub, resolver) for name, sub in (properties or {}).items()}
