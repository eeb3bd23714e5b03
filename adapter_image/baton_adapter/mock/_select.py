"""Response selection and content negotiation: which documented response, which media type, which example.

Selection follows Prism: the lowest documented 2xx by default (a ``2XX`` range answers 200), then a
``default`` response, then the lowest documented status; ``Prefer: code=404`` picks a status (a ``4XX``
range or ``default`` answers with the asked code), ``Prefer: example=name`` a named example and
``Prefer: dynamic=true`` fresh generated values.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from ._contract import MediaType, Operation, Response
from ._request import base_media_type, is_json

__all__ = ["NoResponse", "NotAcceptable", "Prefer", "choose_media", "choose_response", "parse_prefer"]

_PREFER = re.compile(r"\s*([A-Za-z_-]+)\s*=\s*(\"[^\"]*\"|[^,;\s]*)\s*")


@dataclass(frozen=True)
class Prefer:
    """What a ``Prefer`` header asks for."""

    code: str | None = None
    example: str | None = None
    dynamic: bool | None = None


@dataclass(frozen=True)
class NoResponse:
    """The asked status is not documented and no ``default`` response covers it."""

    code: str


@dataclass(frozen=True)
class NotAcceptable:
    """None of the documented media types is acceptable to the client."""

    accept: str
    documented: tuple[str, ...]


def parse_prefer(header: str | None) -> Prefer:
    """Parse ``Prefer: code=404, example=missing, dynamic=true`` (commas or semicolons)."""
    if not header:
        return Prefer()
    found: dict[str, str] = {}
    for part in re.split(r"[,;]", header):
        m = _PREFER.fullmatch(part)
        if m:
            found[m.group(1).lower()] = m.group(2).strip('"')
    dynamic = found.get("dynamic")
    return Prefer(
        code=found.get("code") or None,
        example=found.get("example") or None,
        dynamic=None if dynamic is None else dynamic.lower() in ("true", "1", "yes"),
    )


def _numeric(responses: Mapping[str, Response]) -> list[str]:
    return sorted(s for s in responses if s.isdigit())


def choose_response(operation: Operation, code: str | None) -> tuple[int, Response] | NoResponse:
    """The status to answer and the documented response that describes it."""
    responses = operation.responses
    if code is not None:
        if code in responses:
            return int(code), responses[code]
        ranged = f"{code[:1]}XX"
        if code.isdigit() and ranged in responses:
            return int(code), responses[ranged]
        if code.isdigit() and "default" in responses:
            return int(code), responses["default"]
        return NoResponse(code)
    numeric = _numeric(responses)
    success = [s for s in numeric if s.startswith("2")]
    if success:
        return int(success[0]), responses[success[0]]
    if "2XX" in responses:
        return 200, responses["2XX"]
    if "default" in responses:
        return 200, responses["default"]
    if numeric:
        return int(numeric[0]), responses[numeric[0]]
    ranges = sorted(s for s in responses if s.endswith("XX"))
    if ranges:
        return int(ranges[0][0]) * 100, responses[ranges[0]]
    return NoResponse("2xx")


def _accepted(accept: str) -> list[tuple[str, float, int]]:
    result = []
    for order, part in enumerate(accept.split(",")):
        pieces = [p.strip() for p in part.split(";")]
        if not pieces[0]:
            continue
        q = 1.0
        for param in pieces[1:]:
            if param.startswith("q="):
                try:
                    q = float(param[2:])
                except ValueError:
                    q = 0.0
        result.append((pieces[0].lower(), q, order))
    return result


def _matches(pattern: str, media: str) -> bool:
    if pattern == "*/*" or media in ("*/*",):
        return True
    p_major, _, p_minor = pattern.partition("/")
    m_major, _, m_minor = media.partition("/")
    if p_minor == "*" or m_minor == "*":
        return p_major == m_major
    return pattern == media


def choose_media(content: Mapping[str, MediaType], accept: str | None) -> MediaType | NotAcceptable | None:
    """The documented media type to answer with: JSON unless the client's ``Accept`` prefers another."""
    if not content:
        return None
    candidates = list(content.values())
    candidates.sort(key=lambda m: 0 if is_json(m.media_type) else 1)
    if not accept or accept.strip() in ("*/*", ""):
        return candidates[0]
    best: tuple[float, int, int] | None = None
    chosen: MediaType | None = None
    for rank, media in enumerate(candidates):
        base = base_media_type(media.media_type)
        for pattern, q, order in _accepted(accept):
            if q > 0 and _matches(pattern, base):
                specificity = 0 if pattern == "*/*" else 1 if pattern.endswith("/*") else 2
                key = (-q, -specificity, order * 100 + rank)
                if best is None or key < best:
                    best, chosen = key, media
    if chosen is None:
        return NotAcceptable(accept, tuple(content))
    return chosen


def answer_media_type(media: MediaType) -> str:
    """The ``Content-Type`` to send for a documented media type (wildcards become concrete)."""
    base = base_media_type(media.media_type)
    if base in ("*/*", "application/*"):
        return "application/json"
    if base.endswith("/*"):
        return base[:-1] + "plain" if base.startswith("text/") else "application/octet-stream"
    if is_json(base) and "charset" not in media.media_type:
        return base
    return media.media_type
