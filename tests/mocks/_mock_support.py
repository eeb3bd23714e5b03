"""Helpers shared by the mock engine tests (not a test module)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import quote

from baton_adapter.mock import MockEngine, MockRequest, MockResponse
from baton_adapter.mock._contract import NO_EXAMPLE, Operation

CONTRACTS = Path(__file__).parent / "contracts"
OPENAPI_CONTRACTS = ["users.yaml", "inventory.json", "realworld_github.yaml"]
ALL_CONTRACTS = [*OPENAPI_CONTRACTS, "measurement.schema.json"]


def contract(name: str) -> str:
    """The path of a contract under tests/mocks/contracts."""
    return str(CONTRACTS / name)


def get(engine: MockEngine, path: str, headers: dict[str, str] | None = None,
        query: list[tuple[str, str]] | None = None, method: str = "GET", body: bytes = b"") -> MockResponse:
    """Send one request to an engine."""
    return engine.handle(MockRequest(method, path, query or [], headers or {}, body))


def fill(engine: MockEngine, op: Operation) -> tuple[str, list[tuple[str, str]], dict[str, str]]:
    """A concrete, valid request for ``op``: path parameters and required query/header parameters filled."""
    path = op.path
    query: list[tuple[str, str]] = []
    headers: dict[str, str] = {}
    for i, p in enumerate(op.parameters):
        if p.where == "path" or p.required:
            value: Any = p.example if p.example is not NO_EXAMPLE else (
                engine.generate(p.schema, 1000 + i, direction="request") if p.schema else "1")
            text = str(value).lower() if isinstance(value, bool) else str(value)
            if p.where == "path":
                path = path.replace("{" + p.name + "}", quote(text, safe=""))
            elif p.where == "query":
                query.append((p.name, text))
            elif p.where == "header":
                headers[p.name.lower()] = text
    assert not re.search(r"\{[^}]*\}", path)
    return path, query, headers


def documented(op: Operation, status: int) -> Any:
    """The documented response for a status, or None."""
    code = str(status)
    return op.responses.get(code) or op.responses.get(f"{code[0]}XX") or op.responses.get("default")
