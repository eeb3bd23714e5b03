"""Contracts: OpenAPI 3.x documents or plain JSON Schemas attached to nodes.

Parsing uses the same lossless YAML reader as baton.yaml (so errors carry line
numbers), validation uses ``openapi-spec-validator`` and ``jsonschema``'s
meta-schemas, and ``$ref`` resolution (local and cross-file) uses ``jsonref``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import urlparse
from urllib.request import url2pathname

import jsonref
from jsonschema.exceptions import SchemaError
from jsonschema.validators import validator_for
from openapi_spec_validator import validate as validate_openapi
from openapi_spec_validator.validation.exceptions import OpenAPIValidationError

from baton.config.document import YamlDocument
from baton.config.validation import format_loc
from baton.errors import ConfigError, ContractError

__all__ = ["ContractKind", "Contract", "load_contract"]

HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


class ContractKind(StrEnum):
    OPENAPI = "openapi"
    JSON_SCHEMA = "json-schema"


@dataclass(frozen=True)
class Contract:
    """A parsed, validated contract."""

    path: Path
    kind: ContractKind
    version: str
    document: dict[str, Any]

    def resolved(self) -> dict[str, Any]:
        """The document with every ``$ref`` (local and cross-file) resolved lazily."""
        return jsonref.replace_refs(
            self.document, base_uri=self.path.resolve().as_uri(), loader=_load_ref, lazy_load=True
        )

    def operations(self) -> list[tuple[str, str]]:
        """``(METHOD, path)`` of every documented operation; one ``POST /`` for a JSON Schema."""
        if self.kind is ContractKind.JSON_SCHEMA:
            return [("POST", "/")]
        ops: list[tuple[str, str]] = []
        for path, item in (self.document.get("paths") or {}).items():
            if isinstance(item, dict):
                ops.extend((m.upper(), str(path)) for m in HTTP_METHODS if m in item)
        return ops

    @property
    def summary(self) -> str:
        if self.kind is ContractKind.JSON_SCHEMA:
            return "JSON Schema"
        return f"OpenAPI {self.version}, {len(self.operations())} operations"


def _load_ref(uri: str) -> Any:
    parsed = urlparse(uri)
    if parsed.scheme not in ("", "file"):
        raise ContractError(f"$ref {uri} points outside the local files; contracts may only reference local files.")
    path = Path(url2pathname(parsed.path))
    return _parse(path, path.name)[0].plain()


def _parse(path: Path, label: str) -> tuple[YamlDocument, dict[str, Any]]:
    try:
        doc = YamlDocument.load(path, label=label)
    except ConfigError as exc:
        raise ContractError(str(exc).replace("fix the YAML syntax", "fix the contract")) from None
    return doc, doc.plain()


def _where(doc: YamlDocument, label: str, loc: tuple[Any, ...]) -> str:
    line = doc.line_of(loc)
    where = label + (f" line {line}" if line else "")
    return where + (f" ({format_loc(loc)})" if loc else "")


def load_contract(path: Path, *, label: str | None = None) -> Contract:
    """Parse and validate a contract; any problem is one :class:`ContractError` sentence."""
    path = Path(path)
    label = label or str(path)
    if not path.is_file():
        raise ContractError(f"contract {label} does not exist; check the path (relative paths start at the project).")
    doc, data = _parse(path, label)
    if "openapi" in data:
        version = str(data["openapi"])
        if not version.startswith("3."):
            raise ContractError(f"{_where(doc, label, ('openapi',))}: expected OpenAPI 3.x, found {version}; convert it.")
        try:
            validate_openapi(data, base_uri=path.resolve().as_uri())
        except OpenAPIValidationError as exc:
            loc = tuple(exc.absolute_path)
            raise ContractError(
                f"{_where(doc, label, loc)}: not valid OpenAPI {version}: {exc.message}; fix the contract."
            ) from None
        except Exception as exc:  # unresolvable refs and the like surface as assorted errors
            raise ContractError(f"{label}: not valid OpenAPI {version} ({exc}); fix the contract.") from None
        return Contract(path, ContractKind.OPENAPI, version, data)
    if "swagger" in data:
        raise ContractError(f"{label}: Swagger 2.0 is not supported; convert it to OpenAPI 3.x.")
    if _looks_like_schema(data):
        try:
            validator_for(data).check_schema(data)
        except SchemaError as exc:
            loc = tuple(exc.absolute_path)
            raise ContractError(f"{_where(doc, label, loc)}: not a valid JSON Schema: {exc.message}; fix the contract.") from None
        return Contract(path, ContractKind.JSON_SCHEMA, str(data.get("$schema", "")), data)
    raise ContractError(
        f"{label}: expected an OpenAPI 3.x document (an `openapi:` key) or a JSON Schema "
        f"(`$schema`, `type` or `properties`), found keys {', '.join(sorted(map(str, data))) or 'none'}."
    )


def _looks_like_schema(data: dict[str, Any]) -> bool:
    return bool({"$schema", "type", "properties", "$ref", "allOf", "oneOf", "anyOf", "$defs"} & set(data))
