"""Contracts: OpenAPI 3.x documents or plain JSON Schemas attached to nodes.

Reading is bounded (:mod:`baton.config.bounded`): a contract and every file its ``$ref`` entries name total at
most 10 MiB (``BATON_MAX_CONTRACT_BYTES``), nest at most 200 levels and their YAML aliases repeat at most
100,000 values. YAML is parsed with libyaml (JSON with :mod:`json`); line numbers for errors are found
afterwards, only when an error needs one. Validation uses ``openapi-spec-validator`` and ``jsonschema``'s
meta-schemas, and ``$ref`` resolution (local and cross-file) uses ``jsonref``.

``$ref`` confinement: every ``$ref`` must name a file inside the contract's *root*: the nearest directory
above the contract holding ``baton.yaml`` (its project), else the nearest holding ``baton-service.yaml``
(its service), else the contract's own directory; callers may pass ``root`` explicitly. Remote
(``http:``, ``https:``...) refs are refused, and so is anything that leaves the root (``/etc/passwd``,
``../../x``, a symlink pointing out). Everything is checked before a validator follows a single ref.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import urldefrag, urljoin, urlparse
from urllib.request import url2pathname

import jsonref
from jsonschema.exceptions import SchemaError
from jsonschema.validators import validator_for
from openapi_spec_validator import validate as validate_openapi
from openapi_spec_validator.validation.exceptions import OpenAPIValidationError

from baton.config.bounded import compose_yaml, contract_limits, load_json, load_yaml, read_text
from baton.config.document import describe
from baton.config.validation import format_loc
from baton.errors import ConfigError, ContractError

__all__ = ["ContractKind", "Contract", "load_contract", "contract_root"]

HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
MAX_REF_FILES = 1000
_EXPECTED = "an OpenAPI 3.x or JSON Schema document"


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
    root: Path | None = None  # $refs stay inside it; None: the default root of ``path``

    def resolved(self) -> dict[str, Any]:
        """The document with every ``$ref`` (local and cross-file, confined to the root) resolved lazily."""
        root = (self.root or contract_root(self.path)).resolve()
        return jsonref.replace_refs(
            self.document, base_uri=self.path.resolve().as_uri(), loader=_RefLoader(root), lazy_load=True
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


def contract_root(path: Path) -> Path:
    """The directory a contract's ``$ref``s must stay in: its project, else its service, else its own directory."""
    path = Path(path).resolve()
    for marker in ("baton.yaml", "baton-service.yaml"):
        for parent in path.parents:
            if (parent / marker).is_file():
                return parent
    return path.parent


class _Source:
    """One contract file read: its label, text and plain data; line numbers are found on demand."""

    def __init__(self, path: Path, label: str, budget: int | None = None) -> None:
        limits = contract_limits()
        self.path, self.label = path, label
        try:
            self.text = read_text(path, limits, label, budget=budget)
            if path.suffix.lower() == ".json":
                data = load_json(self.text, limits, label)
            else:
                data = load_yaml(self.text, limits, label)
        except ConfigError as exc:
            raise ContractError(str(exc).replace("fix the YAML syntax", "fix the contract")) from None
        if not isinstance(data, dict):
            found = "an empty file" if data is None else describe(data)
            raise ContractError(
                f"expected {_EXPECTED} in {label}, found {found}; point at the contract file or write one there."
            )
        self.data: dict[str, Any] = _plain(data)
        self._root_node: Any = None

    def line_of(self, loc: tuple[Any, ...]) -> int | None:
        """1-based line of the deepest element of ``loc`` that the file places (JSON is YAML here)."""
        if self._root_node is None:
            try:
                self._root_node = compose_yaml(self.text, contract_limits(), self.label)
            except ConfigError:
                return None
        node, line = self._root_node, None
        for part in loc:
            if node is None:
                break
            child = None
            if node.id == "mapping":
                for key, value in node.value:
                    if key.id == "scalar" and key.value == str(part):
                        line, child = key.start_mark.line + 1, value
                        break
            elif node.id == "sequence" and isinstance(part, int) and 0 <= part < len(node.value):
                child = node.value[part]
                line = child.start_mark.line + 1
            node = child
        return line

    def where(self, loc: tuple[Any, ...]) -> str:
        line = self.line_of(loc)
        where = self.label + (f" line {line}" if line else "")
        return where + (f" ({format_loc(loc)})" if loc else "")


def _plain(value: Any) -> Any:
    """Keys as strings (``200:`` is the status "200"), as OpenAPI and JSON Schema mean them."""
    if isinstance(value, dict):
        return {_key(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _key(key: Any) -> str:
    if isinstance(key, bool):
        return "true" if key else "false"
    return key if isinstance(key, str) else str(key)


def _refs(value: Any, base: str, loc: tuple[Any, ...] = ()) -> Any:
    """``(loc, ref, absolute target)`` of every ``$ref`` string, honouring ``$id`` as a new base."""
    stack = [(value, base, loc)]
    while stack:
        node, base, loc = stack.pop()
        if isinstance(node, dict):
            if isinstance(node.get("$id"), str):
                base = urljoin(base, node["$id"])
            ref = node.get("$ref")
            if isinstance(ref, str) and not ref.startswith("#"):
                yield (*loc, "$ref"), ref, urldefrag(urljoin(base, ref)).url
            stack.extend((v, base, (*loc, k)) for k, v in node.items())
        elif isinstance(node, list):
            stack.extend((v, base, (*loc, i)) for i, v in enumerate(node))


def _confined(target: str, root: Path) -> Path | None:
    """The local file a ``$ref`` target names if it lies inside ``root`` (symlinks followed), else None."""
    parsed = urlparse(target)
    if parsed.scheme != "file" or parsed.netloc not in ("", "localhost"):
        return None
    path = Path(url2pathname(parsed.path)).resolve()
    return path if path.is_relative_to(root) else None


def _check_refs(main: _Source, root: Path) -> None:
    """Follow every ``$ref`` across files before any validator does: each must be local, inside ``root``,
    exist, and the files together must fit the contract size cap."""
    limits = contract_limits()
    budget = limits.max_bytes - len(main.text.encode("utf-8"))
    seen = {main.path.resolve()}
    pending = deque([main])
    while pending:
        source = pending.popleft()
        for loc, ref, target in _refs(source.data, source.path.resolve().as_uri()):
            if urlparse(target).scheme != "file":
                raise ContractError(
                    f"{source.where(loc)}: expected a $ref to a file inside {root}, found the remote {ref!r}; "
                    "download it into the project and reference it by path."
                )
            path = _confined(target, root)
            if path is None:
                raise ContractError(
                    f"{source.where(loc)}: expected a $ref to a file inside {root}, found {ref!r}, which points "
                    "outside it; copy the file into the project and reference it there."
                )
            if path in seen:
                continue
            if not path.is_file():
                raise ContractError(
                    f"{source.where(loc)}: $ref {ref!r} names {path}, which does not exist; fix the reference."
                )
            seen.add(path)
            if len(seen) > MAX_REF_FILES:
                raise ContractError(
                    f"{source.where(loc)}: expected a contract to reference at most {MAX_REF_FILES} files, found "
                    "more; merge some of them."
                )
            if path.stat().st_size > budget:
                raise ContractError(
                    f"{source.where(loc)}: expected the contract and the files its $refs name to total at most "
                    f"{limits.max_bytes:,} bytes, found more once {ref!r} is added; shrink them or raise {limits.env}."
                )
            referenced = _Source(path, str(path.relative_to(root)), budget=budget)
            budget -= len(referenced.text.encode("utf-8"))
            pending.append(referenced)


class _RefLoader:
    """jsonref's loader: a referenced file, read bounded, only from inside the root."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def __call__(self, uri: str) -> Any:
        path = _confined(uri, self.root)
        if path is None:
            raise ContractError(
                f"expected a $ref to a file inside {self.root}, found {uri}; contracts may only reference files "
                "inside their project."
            )
        return _Source(path, str(path)).data


def load_contract(path: Path, *, label: str | None = None, root: Path | None = None) -> Contract:
    """Parse and validate a contract, its ``$ref``s confined to ``root`` (default: :func:`contract_root`);
    any problem is one :class:`ContractError` sentence."""
    path = Path(path)
    label = label or str(path)
    if not path.is_file():
        raise ContractError(f"contract {label} does not exist; check the path (relative paths start at the project).")
    root = Path(root).resolve() if root is not None else contract_root(path)
    source = _Source(path, label)
    data = source.data
    _check_refs(source, root)
    if "openapi" in data:
        version = str(data["openapi"])
        if not version.startswith("3."):
            raise ContractError(f"{source.where(('openapi',))}: expected OpenAPI 3.x, found {version}; convert it.")
        try:
            validate_openapi(data, base_uri=path.resolve().as_uri())
        except OpenAPIValidationError as exc:
            loc = tuple(exc.absolute_path)
            raise ContractError(
                f"{source.where(loc)}: not valid OpenAPI {version}: {exc.message}; fix the contract."
            ) from None
        except Exception as exc:  # unresolvable refs and the like surface as assorted errors
            raise ContractError(f"{label}: not valid OpenAPI {version} ({exc}); fix the contract.") from None
        return Contract(path, ContractKind.OPENAPI, version, data, root)
    if "swagger" in data:
        raise ContractError(f"{label}: Swagger 2.0 is not supported; convert it to OpenAPI 3.x.")
    if _looks_like_schema(data):
        try:
            validator_for(data).check_schema(data)
        except SchemaError as exc:
            loc = tuple(exc.absolute_path)
            raise ContractError(f"{source.where(loc)}: not a valid JSON Schema: {exc.message}; fix the contract.") from None
        return Contract(path, ContractKind.JSON_SCHEMA, str(data.get("$schema", "")), data, root)
    raise ContractError(
        f"{label}: expected an OpenAPI 3.x document (an `openapi:` key) or a JSON Schema "
        f"(`$schema`, `type` or `properties`), found keys {', '.join(sorted(map(str, data))) or 'none'}."
    )


def _looks_like_schema(data: dict[str, Any]) -> bool:
    return bool({"$schema", "type", "properties", "$ref", "allOf", "oneOf", "anyOf", "$defs"} & set(data))
