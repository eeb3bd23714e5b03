"""The operation model a contract is read into: operations, parameters, bodies, responses, media types.

Schemas are never copied or inlined here; each is named by its location (an absolute URI with a JSON
pointer fragment), which validators and the generator resolve through the contract's registry.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

__all__ = [
    "NO_EXAMPLE",
    "Header",
    "MediaType",
    "Operation",
    "Parameter",
    "Pointer",
    "RequestBody",
    "Response",
    "location",
]

Pointer = tuple[str, ...]

NO_EXAMPLE: Any = object()
"""Marks "no example given" (``None`` is a valid example)."""


def location(uri: str, pointer: Pointer) -> str:
    """The absolute URI naming the JSON value at ``pointer`` in the document at ``uri``."""
    escaped = "/".join(p.replace("~", "~0").replace("/", "~1") for p in pointer)
    return f"{uri}#" + (quote("/" + escaped, safe="/~") if pointer else "")


@dataclass(frozen=True)
class MediaType:
    """One media type of a body: its schema location and examples."""

    media_type: str
    schema: str | None
    example: Any = NO_EXAMPLE
    examples: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Header:
    """One documented response header."""

    name: str
    schema: str | None
    required: bool
    example: Any = NO_EXAMPLE


@dataclass(frozen=True)
class Response:
    """One documented response (``status`` is ``"200"``, ``"2XX"`` or ``"default"``)."""

    status: str
    headers: tuple[Header, ...]
    content: Mapping[str, MediaType]


@dataclass(frozen=True)
class Parameter:
    """One path, query, header or cookie parameter."""

    name: str
    where: str
    required: bool
    schema: str | None
    style: str
    explode: bool
    example: Any = NO_EXAMPLE


@dataclass(frozen=True)
class RequestBody:
    """A documented request body."""

    required: bool
    content: Mapping[str, MediaType]


@dataclass(frozen=True)
class Operation:
    """One documented method on one path template."""

    method: str
    path: str
    operation_id: str
    parameters: tuple[Parameter, ...]
    request_body: RequestBody | None
    responses: Mapping[str, Response]
    place: str
