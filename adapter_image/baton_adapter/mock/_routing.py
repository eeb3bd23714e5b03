"""Routing: path templates compiled once to regular expressions; matching is pure."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from ._contract import Operation

__all__ = ["Found", "MethodNotAllowed", "NotFound", "Router"]

_PARAM = re.compile(r"\{([^{}/]+)\}")


@dataclass(frozen=True)
class Found:
    """A documented operation matched; ``params`` holds the decoded path parameters."""

    operation: Operation
    params: Mapping[str, str]
    head: bool = False


@dataclass(frozen=True)
class MethodNotAllowed:
    """The path is documented but not for this method."""

    template: str
    allowed: tuple[str, ...]


@dataclass(frozen=True)
class NotFound:
    """No documented path matches."""


@dataclass(frozen=True)
class _Route:
    template: str
    regex: re.Pattern[str]
    names: tuple[str, ...]
    literals: int
    operations: dict[str, Operation] = field(default_factory=dict)


def _compile(template: str) -> _Route:
    parts = []
    names = []
    last = 0
    for match in _PARAM.finditer(template):
        parts.append(re.escape(template[last : match.start()]))
        names.append(match.group(1))
        parts.append(f"(?P<p{len(names) - 1}>[^/]+)")
        last = match.end()
    parts.append(re.escape(template[last:]))
    literal_text = _PARAM.sub("", template)
    literals = len([s for s in literal_text.split("/") if s])
    return _Route(template, re.compile("".join(parts) + r"\Z"), tuple(names), literals)


def _normalise(path: str) -> str:
    path = path or "/"
    return path.rstrip("/") or "/"


class Router:
    """Matches a method and a path to an operation; literal segments win over parameters.

    ``fits(operation, params)`` tells whether decoded path parameters have the documented types; among
    several matching templates the first that fits wins, otherwise the most specific one (so that request
    validation can answer 422 for ``/users/abc`` when only ``/users/{id:int}`` exists).
    """

    def __init__(
        self,
        operations: Iterable[Operation],
        fits: Callable[[Operation, Mapping[str, str]], bool],
        base_paths: Iterable[str] = (),
    ) -> None:
        routes: dict[str, _Route] = {}
        for op in operations:
            key = _normalise(op.path)
            route = routes.get(key) or routes.setdefault(key, _compile(key))
            route.operations[op.method] = op
        self._routes = sorted(routes.values(), key=lambda r: (-r.literals, len(r.names)))
        self._fits = fits
        prefixes = {_normalise(urlsplit(b).path) for b in base_paths}
        self._prefixes = sorted((p for p in prefixes if p != "/"), key=len, reverse=True)

    def match(self, method: str, raw_path: str) -> Found | MethodNotAllowed | NotFound:
        """Route ``method raw_path``; HEAD is served by GET when HEAD is not documented."""
        method = method.lower()
        path = _normalise(raw_path)
        result = self._match(method, path)
        if isinstance(result, NotFound):
            for prefix in self._prefixes:
                if path == prefix or path.startswith(prefix + "/"):
                    result = self._match(method, path[len(prefix) :] or "/")
                    break
        return result

    def _match(self, method: str, path: str) -> Found | MethodNotAllowed | NotFound:
        fallback: Found | None = None
        not_allowed: MethodNotAllowed | None = None
        for route in self._routes:
            m = route.regex.match(path)
            if m is None:
                continue
            op = route.operations.get(method)
            head = False
            if op is None and method == "head":
                op, head = route.operations.get("get"), True
            if op is None:
                if not_allowed is None:
                    allowed = set(route.operations)
                    if "get" in allowed:
                        allowed.add("head")
                    not_allowed = MethodNotAllowed(route.template, tuple(sorted(a.upper() for a in allowed)))
                continue
            params = {name: unquote(m.group(f"p{i}")) for i, name in enumerate(route.names)}
            found = Found(op, params, head)
            if self._fits(op, params):
                return found
            fallback = fallback or found
        return fallback or not_allowed or NotFound()
