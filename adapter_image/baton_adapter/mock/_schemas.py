"""Schema validators for a contract's dialect, compiled once per schema location."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal
from urllib.parse import urlsplit

from jsonschema import FormatChecker
from jsonschema.protocols import Validator
from jsonschema.validators import Draft202012Validator, validator_for
from openapi_schema_validator import (
    OAS30ReadValidator,
    OAS30WriteValidator,
    OAS31Validator,
    oas30_format_checker,
    oas31_format_checker,
)
from referencing import Registry

from ._contract import Dialect

__all__ = ["Problem", "SchemaValidator", "ValidatorFactory", "format_checker"]

Direction = Literal["request", "response"]

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def _is_uri(value: object) -> bool:
    if not isinstance(value, str):
        return True
    parts = urlsplit(value)
    scheme_ok = re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]*", parts.scheme) is not None
    return scheme_ok and " " not in value


def _is_email(value: object) -> bool:
    return not isinstance(value, str) or _EMAIL.match(value) is not None


def _is_base64(value: object) -> bool:
    if not isinstance(value, str):
        return True
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


@lru_cache(maxsize=4)
def format_checker(dialect: Dialect) -> FormatChecker:
    """The dialect's format checker, plus ``uri``, ``byte`` and a stricter ``email``, needing no extra packages."""
    base = oas30_format_checker if dialect == "oas30" else oas31_format_checker
    checker = FormatChecker(formats=())
    checker.checkers = dict(base.checkers)
    checker.checks("uri")(_is_uri)
    checker.checks("email")(_is_email)
    checker.checks("byte")(_is_base64)
    return checker


@dataclass(frozen=True)
class Problem:
    """One reason an instance does not validate: where (``body.name``), and what is wrong."""

    where: str
    message: str

    def to_json(self) -> dict[str, str]:
        """The problem as a JSON object."""
        return {"location": self.where, "message": self.message}


class SchemaValidator:
    """Validates instances against the schema at one location of a contract."""

    def __init__(self, validator: Validator) -> None:
        self._validator = validator

    def is_valid(self, instance: Any) -> bool:
        """True when ``instance`` validates."""
        return bool(self._validator.is_valid(instance))

    def problems(self, instance: Any, prefix: str) -> list[Problem]:
        """Every problem with ``instance``, each located under ``prefix`` (e.g. ``body``)."""
        result = []
        for error in sorted(self._validator.iter_errors(instance), key=lambda e: list(map(str, e.absolute_path))):
            where = ".".join([prefix, *map(str, error.absolute_path)])
            message = error.message if len(error.message) <= 200 else error.message[:197] + "..."
            result.append(Problem(where, message))
        return result


def _has_ref(value: Any) -> bool:
    if isinstance(value, dict):
        return any(k in ("$ref", "$dynamicRef", "$id") or _has_ref(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_ref(v) for v in value)
    return False


class ValidatorFactory:
    """Builds and caches :class:`SchemaValidator` objects for one contract."""

    def __init__(self, dialect: Dialect, registry: Registry[Any]) -> None:
        self._dialect = dialect
        self._registry = registry
        self._cache: dict[tuple[str, Direction], SchemaValidator] = {}

    def __call__(self, location: str, direction: Direction = "response") -> SchemaValidator:
        """The validator for the schema at ``location`` (an absolute URI with a JSON pointer fragment)."""
        key = (location, direction)
        cached = self._cache.get(key)
        if cached is None:
            cls = self._class(location, direction)
            contents = self._registry.resolver().lookup(location).contents
            # A schema without references is compiled as it is (no lookup per call); others via $ref.
            schema = contents if isinstance(contents, dict) and not _has_ref(contents) else {"$ref": location}
            validator = cls(schema, registry=self._registry, format_checker=format_checker(self._dialect))
            cached = self._cache[key] = SchemaValidator(validator)
        return cached

    def _class(self, location: str, direction: Direction) -> Callable[..., Validator]:
        if self._dialect == "oas30":
            return OAS30WriteValidator if direction == "request" else OAS30ReadValidator  # type: ignore[no-any-return]
        if self._dialect == "oas31":
            return OAS31Validator  # type: ignore[no-any-return]
        contents = self._registry.resolver().lookup(location).contents
        return validator_for(contents, default=Draft202012Validator)  # type: ignore[no-any-return]
