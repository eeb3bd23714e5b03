"""Requests made from a contract: one operation's path, query, headers and body, generated from its schemas.

Slot-time validation probes a service with them (:mod:`._slot`, one fixed seed) and the taint soak test drives
a circuit with them (a seed per request, so requests vary; canaries seeded for requests with
``MockEngine.seed_canaries(..., direction="request")`` go in the fields of their kind, and a body is then
generated from its schema rather than taken from an example). Path parameters are never a literal ``{id}``;
required query and header parameters are filled; a JSON body is generated for methods that carry one.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from ._contract import NO_EXAMPLE, MediaType, Operation, Parameter
from ._engine import MockEngine
from ._generate import derive_seed
from ._select import choose_media

__all__ = ["ExampleRequest", "example_request"]

BODYLESS_METHODS = frozenset({"get", "head"})


@dataclass(frozen=True)
class ExampleRequest:
    """One request for an operation: ``body`` is the JSON value to send (None: no body)."""

    method: str
    path: str
    query: list[tuple[str, str]] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None

    def body_bytes(self) -> bytes | None:
        return None if self.body is None else json.dumps(self.body).encode("utf-8")


def text(value: Any) -> str:
    """A parameter value as it is written in a path, query or header."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def _param_value(engine: MockEngine, op: Operation, param: Parameter, seed: int) -> Any:
    if param.example is not NO_EXAMPLE:
        return param.example
    if param.schema is None:
        return "1"
    return engine.generate(param.schema, derive_seed(seed, op.method, op.path, param.where, param.name),
                           direction="request")


def example_request(engine: MockEngine, op: Operation, seed: int) -> ExampleRequest:
    """The request for ``op`` derived from ``seed`` (examples first, then values generated from the schemas)."""
    path = op.path
    query: list[tuple[str, str]] = []
    headers = {"accept": "application/json, */*;q=0.5"}
    for param in op.parameters:
        if param.where == "path":
            value = _param_value(engine, op, param, seed)
            written = ",".join(map(text, value)) if isinstance(value, list) else text(value)
            path = path.replace("{" + param.name + "}", quote(written, safe=""))
        elif param.required and param.where == "query":
            value = _param_value(engine, op, param, seed)
            query.extend((param.name, text(v)) for v in (value if isinstance(value, list) else [value]))
        elif param.required and param.where == "header":
            headers[param.name] = text(_param_value(engine, op, param, seed))
    path = re.sub(r"\{[^{}/]+\}", "1", path)
    body: Any = None
    if op.request_body is not None and op.method not in BODYLESS_METHODS:
        media = choose_media(op.request_body.content, "application/json")
        if isinstance(media, MediaType):
            if media.example is not NO_EXAMPLE and not (engine.seeded("request") and media.schema is not None):
                body = media.example
            elif media.schema is not None:
                body = engine.generate(media.schema, derive_seed(seed, op.path, "body"), direction="request")
            else:
                body = {}
            headers["content-type"] = "application/json"
    return ExampleRequest(op.method.upper(), path, query, headers, body)
