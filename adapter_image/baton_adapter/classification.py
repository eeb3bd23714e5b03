"""Which data classifications a node's contract declares for each of its operations (``x-data-classification``).

The original Baton reads ``x-data-classification`` on the schema properties of OpenAPI contracts and tags a
request's span with them (``baton.request.classifications``). Here an operation carries every classification
declared on a schema it uses (its parameters, its request bodies, its responses, their headers), on the schema
itself or on any property, item or ``allOf``/``anyOf``/``oneOf`` branch under it, through ``$ref``s; the value is
a string (``PII``) or a list of strings. What an operation carries is computed once, when the contract is loaded
(in a thread, off the event loop); a request is matched to its operation by the mock's router, and the answer
kept for the path (a bounded cache).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

__all__ = ["Classifier", "NO_MATCH"]

log = logging.getLogger(__name__)
KEY = "x-data-classification"
MAX_CACHED = 4096
MAX_DEPTH = 64
NO_MATCH: tuple[str, tuple[str, ...]] = ("", ())
_BRANCHES = ("allOf", "anyOf", "oneOf", "prefixItems")
_SUBSCHEMAS = ("items", "additionalProperties", "not", "contains", "if", "then", "else")


class Classifier:
    """Maps ``(method, path)`` to the operation's route template and its sorted classifications."""

    def __init__(self, router: Any = None, tags: dict[int, tuple[str, ...]] | None = None) -> None:
        self._router = router
        self._tags = tags or {}
        self._cache: dict[tuple[bytes, bytes], tuple[str, tuple[str, ...]]] = {}

    @classmethod
    def load(cls, contract_path: str | None, node: str = "") -> Classifier:
        """The classifier of the contract at ``contract_path`` (an empty one without a contract, or when it does
        not load: a bad contract is the mock's to report, not the tracer's)."""
        if not contract_path:
            return cls()
        try:
            from .mock._contract import load_contract
            from .mock._routing import Router

            contract = load_contract(contract_path)
        except Exception as exc:  # noqa: BLE001 - spans go out untagged
            log.warning("node %s: no classifications for its spans: contract %s does not load (%s)", node,
                        contract_path, exc)
            return cls()
        tags = {id(op): tuple(sorted(set(_operation_tags(contract, op)))) for op in contract.operations}
        return cls(Router(contract.operations, lambda op, params: True, contract.servers), tags)

    def lookup(self, method: bytes, path: bytes) -> tuple[str, tuple[str, ...]]:
        """``(route template, classifications)`` of the operation ``method path`` names (``path`` without its
        query); ``("", ())`` when the contract does not document it."""
        key = (method, path)
        found = self._cache.get(key)
        if found is not None:
            return found
        router = self._router
        if router is None:
            return NO_MATCH
        from urllib.parse import unquote

        match = router.match(method.decode("latin-1"), unquote(path.decode("latin-1")))
        operation = getattr(match, "operation", None)
        found = NO_MATCH if operation is None else (operation.path, self._tags.get(id(operation), ()))
        if len(self._cache) >= MAX_CACHED:
            self._cache.pop(next(iter(self._cache)))
        self._cache[key] = found
        return found


def _operation_tags(contract: Any, operation: Any) -> Iterator[str]:
    resolver = contract.registry.resolver()
    locations = [p.schema for p in operation.parameters]
    if operation.request_body is not None:
        locations += [m.schema for m in operation.request_body.content.values()]
    for response in operation.responses.values():
        locations += [m.schema for m in response.content.values()]
        locations += [h.schema for h in response.headers]
    seen: set[int] = set()
    for location in locations:
        if location is None:
            continue
        try:
            resolved = resolver.lookup(location)
        except Exception:  # noqa: BLE001 - an unresolvable schema declares nothing we can read
            continue
        yield from _schema_tags(resolved.contents, resolved.resolver, seen, 0)


def _schema_tags(schema: Any, resolver: Any, seen: set[int], depth: int) -> Iterator[str]:
    """The classifications declared on ``schema`` and under it (each schema object visited once)."""
    if not isinstance(schema, dict) or id(schema) in seen or depth > MAX_DEPTH:
        return
    seen.add(id(schema))
    declared = schema.get(KEY)
    if isinstance(declared, str) and declared:
        yield declared
    elif isinstance(declared, list):
        yield from (d for d in declared if isinstance(d, str) and d)
    ref = schema.get("$ref")
    if isinstance(ref, str):
        try:
            resolved = resolver.lookup(ref)
        except Exception:  # noqa: BLE001
            resolved = None
        if resolved is not None:
            yield from _schema_tags(resolved.contents, resolved.resolver, seen, depth + 1)
    properties = schema.get("properties")
    children: list[Any] = list(properties.values()) if isinstance(properties, dict) else []
    children += [schema.get(k) for k in _SUBSCHEMAS]
    for key in _BRANCHES:
        branch = schema.get(key)
        if isinstance(branch, list):
            children += branch
    for child in children:
        yield from _schema_tags(child, resolver, seen, depth + 1)
