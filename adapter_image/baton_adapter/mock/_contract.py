"""Loading a contract: files, cross-file ``$ref`` resolution, checks, and building the operation model.

A contract is read once into a :class:`Contract`: every file it references is parsed up front and held
in one :mod:`referencing` registry, so nothing is read from disk while requests are served.

``$ref`` confinement (the same rule as Baton's control plane): a ``$ref`` may name only files inside the
contract's *root*: ``root`` when the caller passes one, else the nearest directory above the contract that
holds ``baton.yaml`` (its project), else the nearest holding ``baton-service.yaml`` (its service), else the
contract's own directory. Remote refs and refs leaving the root (``/etc/passwd``, ``../../x``, symlinks
pointing out) are refused with :class:`ContractError`, as are more than 1,000 referenced files or more than
``BATON_MAX_CONTRACT_BYTES`` (10 MiB) in all.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urldefrag, urljoin, urlsplit
from urllib.request import url2pathname

import referencing.exceptions
from jsonschema.exceptions import best_match
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from ._errors import ContractError
from ._model import NO_EXAMPLE, Header, MediaType, Operation, Parameter, Pointer, RequestBody, Response, location
from ._source import SourceDoc, max_contract_bytes, pointer_text, read_source

__all__ = [
    "NO_EXAMPLE",
    "Contract",
    "Dialect",
    "Header",
    "MediaType",
    "Operation",
    "Parameter",
    "RequestBody",
    "Response",
    "contract_root",
    "load_contract",
    "location",
]

logger = logging.getLogger(__name__)

Dialect = Literal["oas30", "oas31", "jsonschema"]
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
MAX_REF_FILES = 1000


@dataclass(frozen=True)
class Contract:
    """A loaded contract: its dialect, its documents in one registry, and its operations."""

    name: str
    dialect: Dialect
    registry: Registry[Any]
    docs: Mapping[str, SourceDoc]
    operations: tuple[Operation, ...]
    servers: tuple[str, ...] = ()


def contract_root(path: str | os.PathLike[str]) -> Path:
    """The directory a contract's ``$ref``s must stay in: its project, else its service, else its own directory."""
    resolved = Path(path).resolve()
    for marker in ("baton.yaml", "baton-service.yaml"):
        for parent in resolved.parents:
            if (parent / marker).is_file():
                return parent
    return resolved.parent


def load_contract(path: str | os.PathLike[str], *, root: str | os.PathLike[str] | None = None) -> Contract:
    """Read, resolve and check the contract at ``path``, its ``$ref``s confined to ``root`` (default:
    :func:`contract_root`); raise :class:`ContractError` with the place."""
    name = os.fspath(path)
    confine = Path(root).resolve() if root is not None else contract_root(name)
    main = read_source(Path(name), name)
    contents = main.contents
    if not isinstance(contents, dict):
        raise ContractError(
            f"expected an OpenAPI 3.x or JSON Schema document in {name}, found {_kind(contents)}; "
            "point at the contract file or write one there.",
            file=name,
        )
    if "swagger" in contents:
        raise ContractError(
            f"{main.where(('swagger',))}: expected OpenAPI 3.0 or 3.1, found Swagger "
            f"{contents['swagger']}; convert the contract to OpenAPI 3.",
            file=name,
        )
    if "openapi" not in contents and ("paths" in contents or "info" in contents):
        raise ContractError(
            f"{main.where(())}: expected an openapi version field (openapi: 3.1.0) next to paths/info, found none; "
            "fix the contract.",
            file=name,
        )
    docs = _load_referenced(main, confine)
    registry = _registry(docs)
    _check_refs(docs, registry)
    if "openapi" not in contents:
        _check_json_schema(main)
        return Contract(name, "jsonschema", registry, docs, _schema_operations(main))
    version = str(contents["openapi"])
    if version.startswith("3.0"):
        dialect: Dialect = "oas30"
    elif version.startswith("3.1"):
        dialect = "oas31"
    else:
        raise ContractError(
            f"{main.where(('openapi',))}: expected openapi 3.0.x or 3.1.x, found {version!r}; fix the contract.",
            file=name,
        )
    _check_spec(main, dialect)
    try:
        operations = tuple(_Builder(main, docs, registry).operations())
    except ContractError:
        raise
    except (AttributeError, TypeError, ValueError, KeyError, referencing.exceptions.Unresolvable) as exc:
        raise ContractError(
            f"{name}: expected operations the mock can serve, found a shape it cannot read ({exc}); fix the contract.",
            file=name,
        ) from exc
    servers = tuple(_server_url(s) for s in contents.get("servers") or [] if isinstance(s, dict))
    return Contract(name, dialect, registry, docs, operations, servers)


def _server_url(server: Mapping[str, Any]) -> str:
    """A server's URL with its variables replaced by their defaults (``{scheme}://host/{base}``)."""
    url = str(server.get("url", ""))
    variables = server.get("variables") or {}
    for name, spec in variables.items():
        if isinstance(spec, Mapping) and "default" in spec:
            url = url.replace("{" + str(name) + "}", str(spec["default"]))
    return url


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    return "plain text"


def _walk_refs(value: Any, pointer: Pointer = ()) -> Iterator[tuple[Pointer, str]]:
    if isinstance(value, dict):
        ref = value.get("$ref")
        if isinstance(ref, str):
            yield (*pointer, "$ref"), ref
        for key, item in value.items():
            if key != "example" and not key.startswith("x-"):
                yield from _walk_refs(item, (*pointer, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _walk_refs(item, (*pointer, str(i)))


def _load_referenced(root: SourceDoc, confine: Path) -> dict[str, SourceDoc]:
    docs = {root.uri: root}
    budget = max_contract_bytes() - Path(url2pathname(urlsplit(root.uri).path)).stat().st_size
    pending = [root]
    while pending:
        doc = pending.pop()
        for pointer, ref in _walk_refs(doc.contents):
            target = urldefrag(urljoin(doc.uri, ref)).url
            if not target or target in docs:
                continue
            if urlsplit(target).scheme != "file":
                raise ContractError(
                    f"{doc.where(pointer)}: expected a local or relative $ref, found the remote {ref!r}; "
                    "download the referenced file next to the contract and reference it by path.",
                    file=doc.name,
                    line=doc.line_of(pointer),
                )
            file_path = Path(url2pathname(urlsplit(target).path))
            if not file_path.resolve().is_relative_to(confine):
                raise ContractError(
                    f"{doc.where(pointer)}: expected a $ref to a file inside {confine}, found {ref!r}, which points "
                    "outside it; copy the file into the contract's project and reference it there.",
                    file=doc.name,
                    line=doc.line_of(pointer),
                )
            try:
                display = os.path.relpath(file_path)
            except ValueError:
                display = str(file_path)
            if not file_path.is_file():
                raise ContractError(
                    f"{doc.where(pointer)}: $ref {ref!r} names the file {display}, which does not exist; "
                    "fix the reference.",
                    file=doc.name,
                    line=doc.line_of(pointer),
                )
            if len(docs) >= MAX_REF_FILES:
                raise ContractError(
                    f"{doc.where(pointer)}: expected a contract to reference at most {MAX_REF_FILES} files, found "
                    "more; merge some of them.",
                    file=doc.name,
                    line=doc.line_of(pointer),
                )
            loaded = read_source(file_path, display, budget=budget)
            budget -= file_path.stat().st_size
            docs[loaded.uri] = loaded
            pending.append(loaded)
    return docs


def _registry(docs: Mapping[str, SourceDoc]) -> Registry[Any]:
    resources = []
    for uri, doc in docs.items():
        if isinstance(doc.contents, dict) and "openapi" not in doc.contents:
            resource = Resource.from_contents(doc.contents, default_specification=DRAFT202012)
        else:
            resource = DRAFT202012.create_resource(doc.contents)
        resources.append((uri, resource))
    return Registry().with_resources(resources).crawl()


def _check_refs(docs: Mapping[str, SourceDoc], registry: Registry[Any]) -> None:
    for doc in docs.values():
        resolver = registry.resolver(base_uri=doc.uri)
        for pointer, ref in _walk_refs(doc.contents):
            try:
                resolver.lookup(ref)
            except referencing.exceptions.Unresolvable as exc:
                if _has_id(doc.contents):
                    continue  # relative to an embedded $id: resolved when used, not checked here
                raise ContractError(
                    f"{doc.where(pointer)}: $ref {ref!r} under {pointer_text(pointer[:-1])} does not resolve "
                    "to anything; fix the reference.",
                    file=doc.name,
                    line=doc.line_of(pointer),
                ) from exc


def _has_id(value: Any) -> bool:
    if isinstance(value, dict):
        return "$id" in value or any(_has_id(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_id(v) for v in value)
    return False


def _check_json_schema(root: SourceDoc) -> None:
    """Check a plain JSON Schema contract against its own metaschema (``$schema``, default 2020-12)."""
    from jsonschema.validators import Draft202012Validator, validator_for

    cls = validator_for(root.contents, default=Draft202012Validator)
    error = best_match(cls(cls.META_SCHEMA).iter_errors(root.contents))
    if error is None:
        return
    pointer = tuple(str(p) for p in error.absolute_path)
    raise ContractError(
        f"{root.where(pointer)}: expected a valid JSON Schema under {pointer_text(pointer)}, found "
        f"{_short(error.message)}; fix the contract.",
        file=root.name,
        line=root.line_of(pointer),
    )


def _short(message: str, limit: int = 240) -> str:
    return message if len(message) <= limit else message[: limit - 3] + "..."


def _check_spec(root: SourceDoc, dialect: Dialect) -> None:
    """Check the document against the OpenAPI schema, then the spec validator's semantic rules."""
    from openapi_spec_validator import OpenAPIV30SpecValidator, OpenAPIV31SpecValidator
    from openapi_spec_validator.schemas import openapi_v30_schema_validator, openapi_v31_schema_validator

    structural = openapi_v30_schema_validator if dialect == "oas30" else openapi_v31_schema_validator
    error = best_match(structural.iter_errors(root.contents))
    if error is None:
        cls = OpenAPIV30SpecValidator if dialect == "oas30" else OpenAPIV31SpecValidator
        try:
            error = next(iter(cls(root.contents, base_uri=root.uri).iter_errors()), None)
        except Exception:
            logger.debug("semantic OpenAPI check of %s failed", root.name, exc_info=True)
            error = None
    if error is None:
        return
    pointer = tuple(str(p) for p in error.absolute_path)
    if error.validator == "type" and isinstance(error.validator_value, str):
        wanted = {"object": "a mapping", "array": "a list"}.get(error.validator_value, f"a {error.validator_value}")
        what = f"expected {wanted} under {pointer_text(pointer)}, found {_kind(error.instance)}"
    else:
        what = f"invalid OpenAPI under {pointer_text(pointer)} ({_short(error.message)})"
    raise ContractError(
        f"{root.where(pointer)}: {what}; fix the contract.", file=root.name, line=root.line_of(pointer)
    )


def _schema_operations(root: SourceDoc) -> tuple[Operation, ...]:
    """A plain JSON Schema contract is served as one route: GET / answers an instance, POST / checks one."""
    media = {"application/json": MediaType("application/json", location(root.uri, ()))}
    answer = Operation("get", "/", "schema", (), None, {"200": Response("200", (), media)}, root.name)
    check = Operation(
        "post", "/", "schema-check", (), RequestBody(True, media), {"204": Response("204", (), {})}, root.name
    )
    return answer, check


class _Builder:
    """Builds the operation model, following ``$ref`` on path items, parameters, bodies and responses."""

    def __init__(self, root: SourceDoc, docs: Mapping[str, SourceDoc], registry: Registry[Any]) -> None:
        self.root = root
        self.docs = docs
        self.registry = registry

    def deref(self, value: Any, uri: str, pointer: Pointer) -> tuple[Any, str, Pointer]:
        """Follow ``$ref`` chains on a non-schema object; return it with its own location."""
        seen: set[str] = set()
        while isinstance(value, dict) and isinstance(value.get("$ref"), str):
            target = urljoin(uri, value["$ref"])
            if target in seen:
                raise ContractError(f"{self.where(uri, pointer)}: $ref cycle through {target}; fix the contract.")
            seen.add(target)
            uri, fragment = urldefrag(target)
            value = self.registry.resolver(base_uri=uri).lookup(target).contents
            pointer = tuple(
                p.replace("~1", "/").replace("~0", "~") for p in unquote(fragment).split("/")[1:]
            )
        return value, uri, pointer

    def where(self, uri: str, pointer: Pointer) -> str:
        doc = self.docs.get(uri)
        return doc.where(pointer) if doc else uri

    def mapping(self, value: Any, uri: str, pointer: Pointer) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise ContractError(
                f"{self.where(uri, pointer)}: expected a mapping under {pointer_text(pointer)}, found "
                f"{_kind(value)}; fix the contract.",
                file=self.docs[uri].name if uri in self.docs else uri,
            )
        return value

    def operations(self) -> Iterator[Operation]:
        uri = self.root.uri
        paths = self.mapping(self.root.contents.get("paths"), uri, ("paths",))
        for template, raw_item in paths.items():
            item, item_uri, item_ptr = self.deref(raw_item, uri, ("paths", template))
            item = self.mapping(item, item_uri, item_ptr)
            shared = self.parameters(item.get("parameters"), item_uri, (*item_ptr, "parameters"))
            for method in METHODS:
                if method not in item:
                    continue
                op_ptr = (*item_ptr, method)
                op = self.mapping(item[method], item_uri, op_ptr)
                own = self.parameters(op.get("parameters"), item_uri, (*op_ptr, "parameters"))
                merged = {(p.name, p.where): p for p in shared}
                merged.update({(p.name, p.where): p for p in own})
                yield Operation(
                    method=method,
                    path=template,
                    operation_id=str(op.get("operationId") or f"{method} {template}"),
                    parameters=tuple(merged.values()),
                    request_body=self.request_body(op.get("requestBody"), item_uri, (*op_ptr, "requestBody")),
                    responses=self.responses(op.get("responses"), item_uri, (*op_ptr, "responses")),
                    place=self.where(item_uri, op_ptr),
                )

    def parameters(self, raw: Any, uri: str, pointer: Pointer) -> list[Parameter]:
        if raw is None:
            return []
        result = []
        for i, entry in enumerate(raw):
            value, p_uri, p_ptr = self.deref(entry, uri, (*pointer, str(i)))
            where = str(value.get("in", "query"))
            style = str(value.get("style") or ("form" if where in ("query", "cookie") else "simple"))
            schema_uri, schema_ptr, example = p_uri, (*p_ptr, "schema"), value.get("example", NO_EXAMPLE)
            if "schema" not in value and isinstance(value.get("content"), dict) and value["content"]:
                media_key = next(iter(value["content"]))
                schema_ptr = (*p_ptr, "content", media_key, "schema")
            has_schema = _get(value, schema_ptr[len(p_ptr):]) is not None
            if example is NO_EXAMPLE and isinstance(value.get("examples"), dict) and value["examples"]:
                first, _, _ = self.deref(next(iter(value["examples"].values())), p_uri, (*p_ptr, "examples"))
                example = first.get("value", NO_EXAMPLE) if isinstance(first, dict) else NO_EXAMPLE
            result.append(
                Parameter(
                    name=str(value.get("name")),
                    where=where,
                    required=bool(value.get("required", where == "path")),
                    schema=location(schema_uri, schema_ptr) if has_schema else None,
                    style=style,
                    explode=bool(value.get("explode", style == "form")),
                    example=example,
                )
            )
        return result

    def media(self, raw: Any, uri: str, pointer: Pointer) -> dict[str, MediaType]:
        content = self.mapping(raw, uri, pointer)
        result = {}
        for media_type, entry in content.items():
            entry = self.mapping(entry, uri, (*pointer, media_type)) if entry is not None else {}
            examples: dict[str, Any] = {}
            for ex_name, ex in (entry.get("examples") or {}).items():
                ex_value, _, _ = self.deref(ex, uri, (*pointer, media_type, "examples", ex_name))
                if isinstance(ex_value, dict) and "value" in ex_value:
                    examples[ex_name] = ex_value["value"]
            schema = location(uri, (*pointer, media_type, "schema")) if "schema" in entry else None
            result[media_type.lower()] = MediaType(
                media_type.lower(), schema, entry.get("example", NO_EXAMPLE), examples
            )
        return result

    def request_body(self, raw: Any, uri: str, pointer: Pointer) -> RequestBody | None:
        if raw is None:
            return None
        value, b_uri, b_ptr = self.deref(raw, uri, pointer)
        value = self.mapping(value, b_uri, b_ptr)
        content = self.media(value.get("content"), b_uri, (*b_ptr, "content"))
        return RequestBody(bool(value.get("required", False)), content)

    def responses(self, raw: Any, uri: str, pointer: Pointer) -> dict[str, Response]:
        result = {}
        for status, entry in self.mapping(raw, uri, pointer).items():
            value, r_uri, r_ptr = self.deref(entry, uri, (*pointer, status))
            value = self.mapping(value, r_uri, r_ptr)
            headers = []
            for h_name, h_raw in (value.get("headers") or {}).items():
                h_value, h_uri, h_ptr = self.deref(h_raw, r_uri, (*r_ptr, "headers", h_name))
                headers.append(
                    Header(
                        h_name,
                        location(h_uri, (*h_ptr, "schema")) if "schema" in h_value else None,
                        bool(h_value.get("required", False)),
                        h_value.get("example", NO_EXAMPLE),
                    )
                )
            content = self.media(value.get("content"), r_uri, (*r_ptr, "content"))
            result[str(status).upper() if str(status).lower() != "default" else "default"] = Response(
                str(status), tuple(headers), content
            )
        return result


def _get(value: Any, pointer: Pointer) -> Any:
    for part in pointer:
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value
