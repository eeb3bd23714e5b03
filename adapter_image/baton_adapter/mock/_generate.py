"""Value generation: examples first, otherwise values that validate against the schema.

Generation walks a schema through the contract's :mod:`referencing` resolver, so ``$ref`` (local, nested or
cross-file), ``allOf``/``oneOf``/``anyOf``, ``nullable`` and 3.1 type arrays are followed where they are.
Each generated value is validated against its schema; a value that does not validate (an invalid example in
the contract, an unlucky ``oneOf`` branch) is regenerated with the next derived seed, so output stays
deterministic for a given seed.

Seeded canaries (``Generator.canaries``, set through ``MockEngine.seed_canaries``) replace the values of
response fields that look like their kind (:mod:`._canaries`); without them nothing here changes.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import hashlib
import logging
import math
import random
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeGuard

import rstr
from referencing import Registry
from referencing._core import Resolver

from ._canaries import canary_for
from ._contract import Dialect

__all__ = ["Generator", "derive_seed", "node_seed"]

logger = logging.getLogger(__name__)

_WORDS = ("alpha", "bravo", "cedar", "delta", "ember", "falcon", "garnet", "harbor", "indigo", "juniper")
_SURNAMES = ("Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson", "Perlman")
_NAMES = ("Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Radia", "Tim")
_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)
_MAX_DEPTH = 6
_HARD_DEPTH = 60
_BUDGET = 2000
_ATTEMPTS = 12


def node_seed(node: str) -> int:
    """The default seed of a node: stable across processes and platforms (not Python's ``hash``)."""
    return int.from_bytes(hashlib.sha256(node.encode("utf-8")).digest()[:8], "big")


def derive_seed(seed: int, *parts: object) -> int:
    """A seed derived from ``seed`` and ``parts`` (e.g. an operation and a status), stable everywhere."""
    text = "\x1f".join([str(seed), *map(str, parts)])
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")


def _stable_keep(name: str) -> bool:
    """Whether an optional property is part of the stable subset (about four in five are)."""
    return hashlib.sha256(name.encode("utf-8")).digest()[0] % 5 != 0


@dataclass
class _Spent:
    """Shared state of one walk: values generated so far (past the budget only what the schema requires is
    generated) and the name of the property being generated (a hint for realistic strings)."""

    values: int = 0
    name: str = ""


@dataclass
class _Walk:
    rng: random.Random
    examples: bool
    direction: str
    resolver: Resolver[Any]
    spent: _Spent
    seeded: bool = False  # seeded canaries go in fields of their kind

    def at(self, resolver: Resolver[Any], examples: bool | None = None) -> _Walk:
        """The same walk continued under another resolver (after a ``$ref``)."""
        return _Walk(self.rng, self.examples if examples is None else examples, self.direction, resolver, self.spent,
                     self.seeded)

    @property
    def saturated(self) -> bool:
        """True once the walk has generated its budget of values (keeps huge schemas' bodies small)."""
        return self.spent.values > _BUDGET


class Generator:
    """Generates values for schema locations of one contract."""

    def __init__(
        self, dialect: Dialect, registry: Registry[Any], is_valid: Callable[[str, str, Any], bool]
    ) -> None:
        self._dialect = dialect
        self._registry = registry
        self._is_valid = is_valid
        self.canaries: Mapping[str, tuple[str, ...]] = {}  # seeded canary values by kind
        self.canary_direction = "response"  # the values they go in: responses (a mock), requests (the soak test)

    def generate(
        self, location: str, seed: int, *, direction: str = "response", examples: bool = True
    ) -> Any:
        """A value for the schema at ``location`` that validates, derived from ``seed``."""
        value: Any = None
        seeded = bool(self.canaries) and direction == self.canary_direction
        for attempt in range(_ATTEMPTS * 2 if seeded else _ATTEMPTS):
            rng = random.Random(derive_seed(seed, attempt % _ATTEMPTS))
            resolved = self._registry.resolver().lookup(location)
            walk = _Walk(rng, examples and attempt % _ATTEMPTS == 0, direction, resolved.resolver, _Spent(),
                         seeded and attempt < _ATTEMPTS)  # canaries the schema rejects: try without them
            value = self._value(resolved.contents, walk, 0)
            if self._is_valid(location, direction, value):
                return value
        logger.warning("no generated value validates against %s after %d attempts", location, _ATTEMPTS)
        return value

    # -- the walk -------------------------------------------------------------------------------------

    def _value(self, schema: Any, walk: _Walk, depth: int, canary: bool = True) -> Any:
        if depth > _HARD_DEPTH:  # a schema that requires itself has no finite instance
            return None
        if walk.seeded and canary and isinstance(schema, Mapping):
            value = canary_for(schema, walk.spent.name, self.canaries)
            if value is not None:
                self._value(schema, walk, depth, False)  # the random stream goes on as without the canary
                return value
        walk.spent.values += 1
        if schema is True or schema == {}:
            return walk.rng.choice(_WORDS)
        if not isinstance(schema, Mapping):
            return None
        ref = schema.get("$ref")
        if isinstance(ref, str):
            resolved = walk.resolver.lookup(ref)
            inner = walk.at(resolved.resolver)
            siblings = {k: v for k, v in schema.items() if k not in ("$ref", "description", "summary")}
            if self._dialect == "oas30" or not siblings:
                return self._value(resolved.contents, inner, depth + 1)
            first = self._value(resolved.contents, inner, depth + 1)
            return _merge(first, self._value(siblings, walk, depth + 1))
        if walk.examples:
            if "example" in schema:
                return copy.deepcopy(schema["example"])
            examples = schema.get("examples")
            if isinstance(examples, list) and examples:
                return copy.deepcopy(examples[0])
        if "const" in schema:
            return copy.deepcopy(schema["const"])
        if isinstance(schema.get("enum"), list) and schema["enum"]:
            choices = [v for v in schema["enum"] if v is not None] or schema["enum"]
            return copy.deepcopy(walk.rng.choice(choices))
        if walk.examples and "default" in schema:
            return copy.deepcopy(schema["default"])
        if isinstance(schema.get("allOf"), list):
            rest = {k: v for k, v in schema.items() if k != "allOf"}
            value = self._value(rest, walk, depth + 1) if _has_constraints(rest) else None
            for part in schema["allOf"]:
                value = _merge(value, self._value(part, walk, depth + 1))
            return value
        for key in ("oneOf", "anyOf"):
            branches = schema.get(key)
            if isinstance(branches, list) and branches:
                return self._branch(schema, branches, walk, depth)
        kind = self._type(schema, walk.rng)
        return self._typed(kind, schema, walk, depth)

    def _branch(self, schema: Mapping[str, Any], branches: list[Any], walk: _Walk, depth: int) -> Any:
        ordered = sorted(branches, key=_is_null_schema)  # informative branches before a bare null
        branch = ordered[walk.rng.randrange(len(ordered)) if not walk.examples else 0]
        rest = {k: v for k, v in schema.items() if k not in ("oneOf", "anyOf", "discriminator")}
        value = self._value(branch, walk, depth + 1)
        if _has_constraints(rest):
            value = _merge(self._value(rest, walk, depth + 1), value)
        discriminator = schema.get("discriminator")
        if isinstance(discriminator, Mapping) and isinstance(value, dict) and isinstance(branch, Mapping):
            target = branch.get("$ref")
            prop = discriminator.get("propertyName")
            if isinstance(target, str) and isinstance(prop, str):
                mapping = discriminator.get("mapping") or {}
                names = [k for k, v in mapping.items() if v == target or target.endswith("/" + str(v))]
                value[prop] = names[0] if names else target.rsplit("/", 1)[-1]
        return value

    def _type(self, schema: Mapping[str, Any], rng: random.Random) -> str:
        declared = schema.get("type")
        if isinstance(declared, list):
            concrete = [t for t in declared if t != "null"]
            return str(concrete[0]) if concrete else "null"
        if isinstance(declared, str):
            return declared
        if any(k in schema for k in ("properties", "required", "additionalProperties", "minProperties")):
            return "object"
        if any(k in schema for k in ("items", "prefixItems", "minItems", "maxItems")):
            return "array"
        if any(k in schema for k in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf")):
            return "number"
        return "string"

    def _typed(self, kind: str, schema: Mapping[str, Any], walk: _Walk, depth: int) -> Any:
        if kind == "object":
            return self._object(schema, walk, depth)
        if kind == "array":
            return self._array(schema, walk, depth)
        if kind == "integer":
            return _integer(schema, walk.rng)
        if kind == "number":
            return _number(schema, walk.rng)
        if kind == "boolean":
            return walk.rng.random() < 0.5
        if kind == "null":
            return None
        return _string(schema, walk.rng, walk.spent.name)

    def _object(self, schema: Mapping[str, Any], walk: _Walk, depth: int) -> dict[str, Any]:
        result: dict[str, Any] = {}
        properties = schema.get("properties") or {}
        required = set(schema.get("required") or [])
        skip = "writeOnly" if walk.direction == "response" else "readOnly"
        for name, sub in properties.items():
            if isinstance(sub, Mapping) and sub.get(skip) is True and name not in required:
                continue
            if name not in required and (depth >= _MAX_DEPTH or walk.saturated or not _stable_keep(name)):
                continue
            walk.spent.name = name
            result[name] = self._value(sub, walk, depth + 1)
        extra = schema.get("additionalProperties")
        for name in sorted(required - set(result)):
            sub = extra if isinstance(extra, Mapping) else {}
            walk.spent.name = name
            result[name] = self._value(sub, walk, depth + 1)
        wanted = int(schema.get("minProperties") or 0)
        if extra not in (None, False) and (not properties or len(result) < wanted):
            optional = 1 if not properties and depth < _MAX_DEPTH and not walk.saturated else 0
            count = max(wanted - len(result), optional)
            for i in range(count):
                result[f"key{i + 1}"] = self._value(extra if isinstance(extra, Mapping) else {}, walk, depth + 1)
        return result

    def _array(self, schema: Mapping[str, Any], walk: _Walk, depth: int) -> list[Any]:
        low = int(schema.get("minItems") or 0)
        high = schema.get("maxItems")
        count = max(low, 2 if depth < _MAX_DEPTH and not walk.saturated else 0)
        if high is not None:
            count = min(count, int(high))
        raw_prefix = schema.get("prefixItems")
        prefix: list[Any] = raw_prefix if isinstance(raw_prefix, list) else []
        items = schema.get("items", {})
        if items is False:
            count = min(count, len(prefix))
        result: list[Any] = []
        for i in range(count):
            sub = prefix[i] if i < len(prefix) else items
            value = self._value(sub if sub is not None else {}, walk, depth + 1)
            if schema.get("uniqueItems"):
                for _ in range(8):
                    if value not in result:
                        break
                    value = self._value(sub, walk.at(walk.resolver, examples=False), depth + 1)
            result.append(value)
        return result


def _is_null_schema(schema: Any) -> bool:
    return isinstance(schema, Mapping) and schema.get("type") == "null"


def _has_constraints(schema: Mapping[str, Any]) -> bool:
    ignored = {"description", "title", "discriminator", "nullable", "example", "examples", "xml", "externalDocs"}
    return any(k not in ignored and not k.startswith("x-") for k in schema)


def _merge(left: Any, right: Any) -> Any:
    """Merge two generated values of ``allOf`` parts: objects key by key, otherwise the later one."""
    if isinstance(left, dict) and isinstance(right, dict):
        merged = dict(left)
        for key, value in right.items():
            merged[key] = _merge(merged[key], value) if key in merged else value
        return merged
    return left if right is None else right


def _num(value: Any) -> TypeGuard[float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _bounds(schema: Mapping[str, Any], default_low: float, default_high: float, step: float) -> tuple[float, float]:
    """Inclusive bounds from ``minimum``/``maximum`` and 3.0 (boolean) or 3.1 (numeric) exclusive bounds."""
    low: float | None = None
    high: float | None = None
    minimum, maximum = schema.get("minimum"), schema.get("maximum")
    ex_min, ex_max = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
    if _num(minimum):
        low = minimum + (step if ex_min is True else 0)
    if _num(ex_min):
        low = ex_min + step if low is None else max(low, ex_min + step)
    if _num(maximum):
        high = maximum - (step if ex_max is True else 0)
    if _num(ex_max):
        high = ex_max - step if high is None else min(high, ex_max - step)
    if low is None:
        low = default_low if high is None or high >= default_low else high - (default_high - default_low)
    if high is None:
        high = default_high if low <= default_high else low + (default_high - default_low)
    return low, max(low, high)


def _integer(schema: Mapping[str, Any], rng: random.Random) -> int:
    hard_low, hard_high = _INT32 if schema.get("format") == "int32" else _INT64
    low_f, high_f = _bounds(schema, 1, 1000, 1)
    low, high = max(math.ceil(low_f), hard_low), min(math.floor(high_f), hard_high)
    multiple = schema.get("multipleOf")
    if isinstance(multiple, int) and multiple > 0:
        first = -(-low // multiple) * multiple
        steps = max((high - first) // multiple, 0)
        return int(first + multiple * rng.randint(0, min(steps, 1000)))
    return rng.randint(low, max(low, high))


def _number(schema: Mapping[str, Any], rng: random.Random) -> float | int:
    low, high = _bounds(schema, 0.0, 1000.0, 0.01)
    multiple = schema.get("multipleOf")
    if _num(multiple) and multiple > 0:
        first = math.ceil(low / multiple)
        steps = max(math.floor(high / multiple) - first, 0)
        value = (first + rng.randint(0, min(steps, 1000))) * multiple
        return int(value) if isinstance(multiple, int) else round(value, 10)
    if high - low < 0.02:
        return low
    value = round(rng.uniform(low, high), 2)
    return min(max(value, low), high)


def _string(schema: Mapping[str, Any], rng: random.Random, name: str = "") -> str:
    fmt = schema.get("format")
    low = int(schema.get("minLength") or 0)
    high = schema.get("maxLength")
    pattern = schema.get("pattern")
    if isinstance(pattern, str):
        generated = _from_pattern(pattern, rng, low, high)
        if generated is not None:
            return generated
    maker = _FORMATS.get(str(fmt)) if fmt else None
    hinted = None if maker else _hinted(name.lower(), rng)
    text = maker(rng) if maker else hinted or f"{rng.choice(_WORDS)}-{rng.randint(1, 999)}"
    if maker is None or fmt == "password":
        if len(text) < low:
            text += "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(low - len(text)))
        if high is not None and len(text) > int(high):
            text = text[: int(high)]
    return text


class _Xeger(rstr.Rstr):
    """rstr's regex generator with short open repeats (``+``/``*``/``{n,}``) for readable values."""

    def __init__(self, rng: random.Random, extra: int) -> None:
        super().__init__(rng)
        self._extra = extra

    def _handle_repeat(self, start_range: int, end_range: int, value: Any) -> str:
        return str(super()._handle_repeat(start_range, min(end_range, start_range + self._extra), value))


_CITIES = ("Berlin", "Lisbon", "Osaka", "Toronto", "Nairobi", "Lima", "Oslo", "Austin")
_SENTENCES = ("A short note.", "Works as expected.", "Needs review.", "Ready to ship.", "First draft.")


def _hinted(name: str, rng: random.Random) -> str | None:
    """A realistic string for a property named like ``email``, ``*_url``, ``name``, ``created_at``..."""
    if not name:
        return None
    if "email" in name:
        return _FORMATS["email"](rng)
    if name.endswith(("url", "uri", "href", "link")) or name in ("website", "homepage"):
        return _FORMATS["uri"](rng)
    if name.endswith(("_at", "_on")) or name in ("timestamp", "created", "updated"):
        return _FORMATS["date-time"](rng)
    if name in ("uuid", "guid") or name.endswith(("_uuid", "_guid")):
        return _FORMATS["uuid"](rng)
    if name in ("username", "login", "handle", "slug"):
        return f"{rng.choice(_NAMES).lower()}{rng.randint(1, 99)}"
    if name in ("name", "full_name", "fullname", "display_name", "author", "first_name", "firstname"):
        return rng.choice(_NAMES) + ("" if "first" in name else f" {rng.choice(_SURNAMES)}")
    if name in ("last_name", "lastname", "surname"):
        return rng.choice(_SURNAMES)
    if name == "city":
        return rng.choice(_CITIES)
    if "phone" in name:
        return f"+1555{rng.randint(1000000, 9999999)}"
    if name in ("color", "colour"):
        return f"#{rng.getrandbits(24):06x}"
    if name in ("description", "summary", "message", "comment", "body", "bio", "note", "title"):
        return rng.choice(_SENTENCES)
    return None


def _from_pattern(pattern: str, rng: random.Random, low: int, high: Any) -> str | None:
    try:
        compiled = re.compile(pattern)
    except re.error:
        return None
    for extra in (8, 8, 8, 32, 32, 100, 100):
        try:
            text = _Xeger(rng, max(extra, low)).xeger(pattern)
        except Exception:  # noqa: BLE001 - rstr cannot express every regex; fall back to validating-only
            return None
        if compiled.search(text) and len(text) >= low and (high is None or len(text) <= int(high)):
            return text
    return None


def _date(rng: random.Random) -> dt.date:
    return dt.date(2020, 1, 1) + dt.timedelta(days=rng.randrange(365 * 6))


_FORMATS: dict[str, Callable[[random.Random], str]] = {
    "date": lambda rng: _date(rng).isoformat(),
    "date-time": lambda rng: f"{_date(rng).isoformat()}T{rng.randrange(24):02d}:{rng.randrange(60):02d}:"
    f"{rng.randrange(60):02d}Z",
    "time": lambda rng: f"{rng.randrange(24):02d}:{rng.randrange(60):02d}:{rng.randrange(60):02d}Z",
    "email": lambda rng: f"{rng.choice(_NAMES).lower()}.{rng.randint(1, 999)}@example.com",
    "idn-email": lambda rng: f"{rng.choice(_NAMES).lower()}@example.com",
    "uuid": lambda rng: str(uuid.UUID(int=rng.getrandbits(128), version=4)),
    "uri": lambda rng: f"https://example.com/{rng.choice(_WORDS)}/{rng.randint(1, 999)}",
    "url": lambda rng: f"https://example.com/{rng.choice(_WORDS)}/{rng.randint(1, 999)}",
    "uri-reference": lambda rng: f"/{rng.choice(_WORDS)}/{rng.randint(1, 999)}",
    "hostname": lambda rng: f"{rng.choice(_WORDS)}.example.com",
    "idn-hostname": lambda rng: f"{rng.choice(_WORDS)}.example.com",
    "ipv4": lambda rng: ".".join(str(rng.randint(1, 254)) for _ in range(4)),
    "ipv6": lambda rng: ":".join(f"{rng.getrandbits(16):x}" for _ in range(8)),
    "byte": lambda rng: base64.b64encode(rng.randbytes(rng.randint(3, 12))).decode("ascii"),
    "binary": lambda rng: rng.choice(_WORDS),
    "password": lambda rng: f"pw-{rng.getrandbits(32):08x}",
    "regex": lambda rng: "^[a-z]+$",
}
