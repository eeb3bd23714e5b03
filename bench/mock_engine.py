"""Benchmark: MockEngine.handle() calls per second (no network; the adapter adds its HTTP cost on top).

Usage: python bench/mock_engine.py [--seconds 2] [--contract path --path /x]
Prints one line per case: a small example GET, a generated-body GET (cached), the same with
``Prefer: dynamic=true`` (generated per request), a validated query GET, and a contract-less GET.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from baton_adapter.mock import MockEngine, MockRequest

CONTRACT = {
    "openapi": "3.0.3",
    "info": {"title": "bench", "version": "1"},
    "paths": {
        "/ping": {"get": {"responses": {"200": {"description": "ok", "content": {
            "application/json": {"schema": {"type": "object"}, "example": {"pong": True}}}}}}},
        "/users/{id}": {"get": {
            "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}},
                           {"name": "fields", "in": "query", "schema": {"type": "array", "items": {"type": "string"}}}],
            "responses": {"200": {"description": "ok", "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/User"}}}}}}},
    },
    "components": {"schemas": {"User": {"type": "object", "required": ["id", "email", "name"], "properties": {
        "id": {"type": "integer", "minimum": 1}, "email": {"type": "string", "format": "email"},
        "name": {"type": "string", "maxLength": 40}, "createdAt": {"type": "string", "format": "date-time"},
        "tags": {"type": "array", "items": {"type": "string", "enum": ["a", "b", "c"]}},
        "address": {"type": "object", "properties": {"city": {"type": "string"}, "zip": {"type": "string", "pattern": "^[0-9]{5}$"}}},
    }}}},
}


def rate(engine: MockEngine, request: MockRequest, seconds: float) -> tuple[float, int]:
    """Calls per second of ``engine.handle(request)`` over about ``seconds``, and the status seen."""
    status = engine.handle(request).status
    calls, start = 0, time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(200):
            engine.handle(request)
        calls += 200
        now = time.perf_counter()
        if now >= deadline:
            return calls / (now - start), status


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--contract", help="benchmark a GET of your own contract as well")
    parser.add_argument("--path", default="/", help="the path to GET with --contract")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.json"
        path.write_text(json.dumps(CONTRACT))
        started = time.perf_counter()
        engine = MockEngine.from_contract(str(path), "bench")
        load_ms = (time.perf_counter() - started) * 1000
        cases = [
            ("small GET, example body", engine, MockRequest("GET", "/ping")),
            ("GET, generated body (cached)", engine, MockRequest("GET", "/users/42")),
            ("GET, generated body, query validated", engine,
             MockRequest("GET", "/users/42", [("fields", "a"), ("fields", "b")])),
            ("GET, Prefer: dynamic=true", engine, MockRequest("GET", "/users/42", [], {"prefer": "dynamic=true"})),
            ("contract-less GET /", MockEngine.from_contract(None, "bench"), MockRequest("GET", "/")),
        ]
        if args.contract:
            cases.append((f"your contract GET {args.path}", MockEngine.from_contract(args.contract, "bench"),
                          MockRequest("GET", args.path)))
        print(f"contract load: {load_ms:.1f} ms")
        for label, eng, request in cases:
            per_second, status = rate(eng, request, args.seconds)
            print(f"{label:<40} {per_second:>12,.0f} calls/s  ({1e6 / per_second:7.1f} us/call, status {status})")


if __name__ == "__main__":
    main()
