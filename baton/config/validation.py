"""Turning pydantic's validation errors into one sentence that names the file,
the line and field path, and what was expected."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from baton.config.document import YamlDocument
from baton.errors import ConfigError

__all__ = ["PlacedValueError", "validate_document", "format_loc"]

M = TypeVar("M", bound=BaseModel)


class PlacedValueError(ValueError):
    """A cross-field error that knows which field of the document it is about."""

    def __init__(self, message: str, loc: tuple[Any, ...]) -> None:
        super().__init__(message)
        self.loc = loc


def format_loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _describe(error: dict[str, Any]) -> tuple[tuple[Any, ...], str]:
    loc = tuple(error.get("loc", ()))
    cause = (error.get("ctx") or {}).get("error")
    if isinstance(cause, PlacedValueError):
        return loc + cause.loc, str(cause)
    message = error.get("msg", "invalid value")
    if message.startswith("Value error, "):
        message = message[len("Value error, "):]
    kind = error.get("type", "")
    if kind == "missing":
        return loc, "this field is required but missing"
    if kind == "extra_forbidden":
        return loc, "this field is not allowed here"
    message = message[0].lower() + message[1:] if message else message
    if kind not in ("value_error", "assertion_error") and "input" in error:
        found = error["input"]
        if not isinstance(found, (dict, list)):
            message = f"{message}, found {found!r}"
    return loc, message


def validate_document(doc: YamlDocument, model: type[M], *, label: str | None = None) -> M:
    """Validate a YAML document against ``model``; errors become one :class:`ConfigError`."""
    label = label or doc.path.name
    try:
        return model.model_validate(doc.plain())
    except ValidationError as exc:
        errors = exc.errors()
        loc, message = _describe(errors[0])
        where = label
        line = doc.line_of(loc)
        if line is not None:
            where += f" line {line}"
        if loc:
            where += f" ({format_loc(loc)})"
        more = f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})" if len(errors) > 1 else ""
        raise ConfigError(f"{where}: {message}{more}; fix it and run the command again.") from None
