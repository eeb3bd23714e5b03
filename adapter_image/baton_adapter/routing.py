"""Routing tables: which target serves a request. Matching is pure; the proxy does the I/O.

A routing config (POST /routing, or ``routing:`` in the node config) is::

    {"strategy": "single" | "weighted" | "header" | "canary",
     "targets": [{"name": "a", "host": "127.0.0.1", "port": 8001, "weight": 80},
                 {"name": "b", "mock": true, "weight": 20}],
     "rules": [{"header": "x-version", "value": "beta", "target": "b"}],   # header strategy
     "default_target": "a",                                                # header strategy
     "sticky_cookie": "baton_target",                                      # optional sticky sessions
     "locked": false}

``single`` takes exactly one target; ``weighted`` and ``canary`` need weights summing to 100 (canary names
its targets ``stable`` and ``canary``); ``header`` matches rules exactly (header names case-insensitive) and
falls back to ``default_target``. A table is immutable: a change builds a new table and swaps it atomically.
"""

from __future__ import annotations

import random
import re
from bisect import bisect_right
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from .config import Backend, ConfigError

__all__ = ["RoutingError", "RoutingTable", "Target", "parse_cookie_value"]

STRATEGIES = ("single", "weighted", "header", "canary")
# an HTTP field name (RFC 9110 token): what a rule's header can be, and all a request header can be called
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


class RoutingError(ConfigError):
    """A routing config was rejected; the message says what was expected and what arrived."""


@dataclass(frozen=True, slots=True)
class Target:
    """A named destination: a host and port, or the node's mock."""

    name: str
    host: str = ""
    port: int = 0
    weight: int = 100
    mock: bool = False
    addr: tuple[str, int] = field(init=False, repr=False, compare=False)  # (host, port), built once

    def __post_init__(self) -> None:
        object.__setattr__(self, "addr", (self.host, self.port))

    def label(self) -> str:
        return "mock" if self.mock else f"{self.host}:{self.port}"

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name, "weight": self.weight}
        data.update({"mock": True} if self.mock else {"host": self.host, "port": self.port})
        return data


@dataclass(frozen=True, slots=True)
class Rule:
    header: str
    value: str
    target: str


@dataclass(frozen=True)
class RoutingTable:
    """An immutable routing decision table with precomputed lookups."""

    strategy: str
    targets: tuple[Target, ...]
    rules: tuple[Rule, ...] = ()
    default_target: str | None = None
    locked: bool = False
    sticky_cookie: str | None = None
    _by_name: dict[str, Target] = field(default_factory=dict, repr=False, compare=False)
    _cumulative: list[int] = field(default_factory=list, repr=False, compare=False)
    _rule_headers: frozenset[bytes] = field(default=frozenset(), repr=False, compare=False)
    _routable: frozenset[str] = field(default=frozenset(), repr=False, compare=False)

    def __post_init__(self) -> None:
        self._by_name.update({t.name: t for t in self.targets})
        total = 0
        for t in self.targets:
            total += t.weight
            self._cumulative.append(total)
        object.__setattr__(self, "_rule_headers", frozenset(r.header.encode("latin-1") for r in self.rules))
        # a weighted (or canary) target at weight 0 gets no new request, sticky or fallback: it can be drained
        weighs = self.strategy in ("weighted", "canary")
        object.__setattr__(self, "_routable", frozenset(t.name for t in self.targets if t.weight > 0 or not weighs))

    # -- construction -------------------------------------------------------------------------------------

    @classmethod
    def empty(cls) -> RoutingTable:
        """No backend: every request is answered 503."""
        return cls(strategy="single", targets=())

    @classmethod
    def single(cls, backend: Backend | None, *, locked: bool = False) -> RoutingTable:
        if backend is None:
            return cls(strategy="single", targets=(), locked=locked)
        target = Target("primary", backend.host, backend.port, 100, backend.mock)
        return cls(strategy="single", targets=(target,), locked=locked)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> RoutingTable:
        """Validate a routing config; raise ``RoutingError`` with one sentence on the first problem."""
        if not isinstance(data, Mapping):
            raise RoutingError(f"a routing config must be an object, got {type(data).__name__}.")
        known = {"strategy", "targets", "rules", "default_target", "locked", "sticky_cookie"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise RoutingError(f"a routing config accepts {sorted(known)}, got unknown key(s) {unknown}.")
        strategy = data.get("strategy", "single")
        if strategy not in STRATEGIES:
            raise RoutingError(f"strategy must be one of {list(STRATEGIES)}, got {strategy!r}.")
        raw_targets = data.get("targets", [])
        if not isinstance(raw_targets, list):
            raise RoutingError(f"targets must be a list, got {raw_targets!r}.")
        targets = tuple(_parse_target(t, i) for i, t in enumerate(raw_targets))
        names = [t.name for t in targets]
        if len(set(names)) != len(names):
            raise RoutingError(f"target names must be unique, got {names}.")
        locked = data.get("locked", False)
        if not isinstance(locked, bool):
            raise RoutingError(f"locked must be true or false, got {locked!r}.")
        sticky = data.get("sticky_cookie")
        if sticky is not None and (not isinstance(sticky, str) or not sticky.isascii() or not sticky.isidentifier()):
            raise RoutingError(f"sticky_cookie must be a cookie name (ASCII letters, digits, _), got {sticky!r}.")
        rules: tuple[Rule, ...] = ()
        default = data.get("default_target")
        if strategy == "single":
            if len(targets) != 1:
                raise RoutingError(f"strategy single needs exactly one target, got {len(targets)}.")
        elif strategy in ("weighted", "canary"):
            if len(targets) < 2:
                raise RoutingError(f"strategy {strategy} needs at least two targets, got {len(targets)}.")
            total = sum(t.weight for t in targets)
            if total != 100:
                raise RoutingError(f"strategy {strategy} needs weights summing to 100, got {total}.")
            if strategy == "canary" and sorted(names) != ["canary", "stable"]:
                raise RoutingError(f"strategy canary needs targets named stable and canary, got {names}.")
        else:
            rules = _parse_rules(data.get("rules", []), set(names))
            if not isinstance(default, str) or default not in names:
                raise RoutingError(f"strategy header needs default_target naming a target in {names}, got {default!r}.")
        return cls(strategy, targets, rules, default if strategy == "header" else None, locked, sticky)

    def with_locked(self, locked: bool) -> RoutingTable:
        return RoutingTable(self.strategy, self.targets, self.rules, self.default_target, locked, self.sticky_cookie)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "strategy": self.strategy,
            "targets": [t.to_json() for t in self.targets],
            "locked": self.locked,
        }
        if self.strategy == "header":
            data["rules"] = [{"header": r.header, "value": r.value, "target": r.target} for r in self.rules]
            data["default_target"] = self.default_target
        if self.sticky_cookie:
            data["sticky_cookie"] = self.sticky_cookie
        return data

    # -- matching (pure) ----------------------------------------------------------------------------------

    def target(self, name: str) -> Target | None:
        return self._by_name.get(name)

    def routed_addrs(self) -> frozenset[tuple[str, int]]:
        """Backend addresses a new request may be sent to (weight-0 targets of a weighted split excluded)."""
        return frozenset(t.addr for t in self.targets if not t.mock and t.name in self._routable)

    @property
    def needs_headers(self) -> bool:
        """True when choosing a target reads request headers (header rules or a sticky cookie)."""
        return bool(self._rule_headers) or self.sticky_cookie is not None

    def choose(
        self,
        headers: Iterable[tuple[bytes, bytes]] = (),
        exclude: frozenset[str] | set[str] = frozenset(),
        rnd: random.Random | None = None,
    ) -> Target | None:
        """Pick the target for one request, skipping ``exclude`` (e.g. targets whose breaker is open)."""
        targets = self.targets
        if not targets:
            return None
        if len(targets) == 1:
            t = targets[0]
            return None if t.name in exclude else t
        if self.needs_headers:
            chosen = self._by_headers(headers)
            if chosen is not None and chosen.name not in exclude:
                return chosen
        # weighted split, or the fallback when the header-chosen target is excluded
        return self._weighted(exclude, rnd or random)

    def _by_headers(self, headers: Iterable[tuple[bytes, bytes]]) -> Target | None:
        wanted = self._rule_headers
        cookie_name = self.sticky_cookie
        found: dict[bytes, bytes] = {}
        sticky: str | None = None
        for name, value in headers:
            lname = name.lower()
            if lname in wanted:
                found[lname] = value
            elif cookie_name and lname == b"cookie":
                sticky = parse_cookie_value(value, cookie_name) or sticky
        if sticky is not None and sticky in self._routable:
            return self._by_name[sticky]
        for rule in self.rules:
            value = found.get(rule.header.encode("latin-1"))
            if value is not None and value.decode("latin-1") == rule.value:
                return self._by_name[rule.target]
        if self.strategy == "header":
            return self._by_name.get(self.default_target or "")
        return None

    def _weighted(self, exclude: frozenset[str] | set[str], rnd: Any) -> Target | None:
        if not exclude:
            total = self._cumulative[-1]
            if total <= 0:
                return self.targets[0]
            return self.targets[bisect_right(self._cumulative, rnd.random() * total)]
        routable = self._routable
        live = [t for t in self.targets if t.name not in exclude and t.name in routable]
        if not live:
            return None
        total = sum(t.weight for t in live)
        if total <= 0:
            return live[0]
        point = rnd.random() * total
        for t in live:
            point -= t.weight
            if point < 0:
                return t
        return live[-1]


def parse_cookie_value(header: bytes, name: str) -> str | None:
    """The value of cookie ``name`` in a Cookie header, or None."""
    prefix = name + "="
    for part in header.decode("latin-1").split(";"):
        part = part.strip()
        if part.startswith(prefix):
            return part[len(prefix):]
    return None


def _parse_target(raw: Any, index: int) -> Target:
    where = f"targets[{index}]"
    if not isinstance(raw, Mapping):
        raise RoutingError(f"{where} must be an object {{name, host, port, weight}}, got {raw!r}.")
    unknown = sorted(set(raw) - {"name", "host", "port", "weight", "mock"})
    if unknown:
        raise RoutingError(f"{where} accepts name, host, port, weight, mock; got unknown key(s) {unknown}.")
    name = raw.get("name")
    if (not isinstance(name, str) or not name or len(name) > 64 or not name.isascii()
            or not name.replace("-", "_").isidentifier()):
        raise RoutingError(f"{where}.name must be a short identifier, got {name!r}.")
    weight = raw.get("weight", 100)
    if isinstance(weight, bool) or not isinstance(weight, int) or not 0 <= weight <= 100:
        raise RoutingError(f"{where}.weight must be an integer in 0..100, got {weight!r}.")
    try:
        backend = Backend.from_mapping({k: v for k, v in raw.items() if k in ("host", "port", "mock")}, where)
    except ConfigError as exc:
        raise RoutingError(str(exc)) from exc
    return Target(name, backend.host, backend.port, weight, backend.mock)


def _parse_rules(raw: Any, names: set[str]) -> tuple[Rule, ...]:
    if not isinstance(raw, list):
        raise RoutingError(f"rules must be a list of {{header, value, target}}, got {raw!r}.")
    rules = []
    for i, r in enumerate(raw):
        if not isinstance(r, Mapping) or not all(isinstance(r.get(k), str) for k in ("header", "value", "target")):
            raise RoutingError(f"rules[{i}] must be an object of strings {{header, value, target}}, got {r!r}.")
        if r["target"] not in names:
            raise RoutingError(f"rules[{i}].target must name a target in {sorted(names)}, got {r['target']!r}.")
        if not _TOKEN.fullmatch(r["header"]) or len(r["header"]) > 256:
            raise RoutingError(
                f"rules[{i}].header must be an HTTP header name (up to 256 letters, digits and !#$%&'*+-.^_`|~), "
                f"got {r['header']!r}."
            )
        if not _latin1(r["value"]) or any(c in r["value"] for c in "\r\n\0"):
            raise RoutingError(f"rules[{i}].value must be latin-1 text without CR, LF or NUL, got {r['value']!r}.")
        rules.append(Rule(r["header"].lower(), r["value"], r["target"]))
    return tuple(rules)


def _latin1(text: str) -> bool:
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True
