"""Static compatibility of a consumer's expected API against its provider's
contract: paths, methods, required parameters and fields, and types.

Pure: takes resolved OpenAPI documents, returns findings. Direction matters:
what the consumer *sends* must be accepted by the provider, and what the
provider *returns* must satisfy what the consumer reads.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

__all__ = ["Severity", "Finding", "check_compatibility"]

_TEMPLATE = re.compile(r"\{[^}/]*\}")
_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
_MAX_DEPTH = 12


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True)
class Finding:
    severity: Severity
    consumer: str
    provider: str
    operation: str
    location: str
    message: str

    def to_json(self) -> dict[str, str]:
        return {k: str(v) for k, v in asdict(self).items()}


def _normalize(path: str) -> str:
    return _TEMPLATE.sub("{}", path.rstrip("/") or "/")


def _types(schema: dict[str, Any]) -> set[str] | None:
    """Declared JSON types, or None for 'anything'."""
    declared = schema.get("type")
    if declared is None:
        return None
    types = {declared} if isinstance(declared, str) else set(declared)
    if schema.get("nullable"):
        types.add("null")
    return types


def _accepts(receiver: set[str] | None, sender: set[str] | None) -> bool:
    if receiver is None or sender is None:
        return True
    widened = set(receiver) | ({"integer"} if "number" in receiver else set())
    return sender <= widened


def _flatten(schema: Any) -> dict[str, Any]:
    """Merge ``allOf`` parts into one schema (properties and required)."""
    if not isinstance(schema, dict):
        return {}
    parts = schema.get("allOf")
    if not parts:
        return schema
    merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
    props = dict(merged.get("properties") or {})
    required = list(merged.get("required") or [])
    for part in parts:
        flat = _flatten(part)
        props.update(flat.get("properties") or {})
        required += [r for r in flat.get("required") or [] if r not in required]
        if "type" in flat and "type" not in merged:
            merged["type"] = flat["type"]
    merged["properties"], merged["required"] = props, required
    return merged


class _Checker:
    def __init__(self, consumer: str, provider: str) -> None:
        self.consumer, self.provider = consumer, provider
        self.findings: list[Finding] = []
        self.operation = ""

    def add(self, severity: Severity, location: str, message: str) -> None:
        self.findings.append(Finding(severity, self.consumer, self.provider, self.operation, location, message))

    def compare(self, sender: Any, receiver: Any, where: str, *, sender_name: str, depth: int = 0) -> None:
        """Check that data valid for ``sender``'s schema is acceptable to ``receiver``'s schema."""
        if depth > _MAX_DEPTH or not isinstance(sender, dict) or not isinstance(receiver, dict):
            return
        sender, receiver = _flatten(sender), _flatten(receiver)
        if not _accepts(_types(receiver), _types(sender)):
            self.add(
                Severity.ERROR,
                where,
                f"{sender_name} uses type {'/'.join(sorted(_types(sender) or []))} "
                f"but the other side expects {'/'.join(sorted(_types(receiver) or []))}",
            )
            return
        if "items" in sender and "items" in receiver:
            self.compare(sender["items"], receiver["items"], f"{where}[]", sender_name=sender_name, depth=depth + 1)
        s_props, r_props = sender.get("properties") or {}, receiver.get("properties") or {}
        s_required = set(sender.get("required") or [])
        for name in receiver.get("required") or []:
            if name not in s_props:
                self.add(Severity.ERROR, f"{where}.{name}", f"required field {name!r} is never provided by the {sender_name}")
            elif name not in s_required:
                self.add(Severity.WARNING, f"{where}.{name}", f"required field {name!r} is optional for the {sender_name}")
        for name, schema in s_props.items():
            if name in r_props:
                self.compare(schema, r_props[name], f"{where}.{name}", sender_name=sender_name, depth=depth + 1)


def _operations(doc: dict[str, Any]) -> dict[tuple[str, str], tuple[str, dict[str, Any], list[Any]]]:
    found = {}
    for path, item in (doc.get("paths") or {}).items():
        if not isinstance(item, dict):
            continue
        shared = list(item.get("parameters") or [])
        for method in _METHODS:
            if isinstance(item.get(method), dict):
                op = item[method]
                found[(method, _normalize(str(path)))] = (str(path), op, shared + list(op.get("parameters") or []))
    return found


def _json_schema(container: dict[str, Any] | None) -> dict[str, Any] | None:
    content = (container or {}).get("content") or {}
    for media, body in content.items():
        if "json" in media and isinstance(body, dict):
            return body.get("schema")
    return None


def _success(responses: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    codes = sorted(str(c) for c in responses if str(c).startswith("2"))
    if codes:
        return codes[0], responses[codes[0]] if isinstance(responses[codes[0]], dict) else {}
    if "default" in responses:
        return "default", responses["default"]
    return None


def check_compatibility(expected: dict[str, Any], provided: dict[str, Any], *, consumer: str, provider: str) -> list[Finding]:
    """Findings for every operation the consumer expects from the provider."""
    checker = _Checker(consumer, provider)
    have = _operations(provided)
    by_path = {path for _, path in have}
    for (method, norm), (raw_path, op, params) in sorted(_operations(expected).items(), key=lambda kv: (kv[0][1], kv[0][0])):
        checker.operation = f"{method.upper()} {raw_path}"
        if (method, norm) not in have:
            if norm in by_path:
                checker.add(Severity.ERROR, raw_path, f"the provider documents {raw_path} but not {method.upper()}")
            else:
                checker.add(Severity.ERROR, raw_path, f"the provider has no path matching {raw_path}")
            continue
        _, p_op, p_params = have[(method, norm)]
        sent = {(p.get("in"), p.get("name")) for p in params if isinstance(p, dict)}
        for p in p_params:
            if isinstance(p, dict) and p.get("required") and p.get("in") != "path" and (p.get("in"), p.get("name")) not in sent:
                checker.add(Severity.ERROR, f"{p.get('in')}:{p.get('name')}", f"the provider requires {p.get('in')} parameter {p.get('name')!r}")
        p_body, c_body = _json_schema(p_op.get("requestBody")), _json_schema(op.get("requestBody"))
        if p_body is not None and (p_op.get("requestBody") or {}).get("required") and c_body is None:
            checker.add(Severity.ERROR, "requestBody", "the provider requires a JSON request body the consumer never sends")
        elif p_body is not None and c_body is not None:
            checker.compare(c_body, p_body, "requestBody", sender_name="consumer")
        expected_ok = _success(op.get("responses") or {})
        provided_ok = _success(p_op.get("responses") or {})
        if expected_ok and provided_ok:
            c_schema = _json_schema(expected_ok[1])
            p_schema = _json_schema(provided_ok[1])
            if c_schema is not None and p_schema is None:
                checker.add(Severity.ERROR, f"response {provided_ok[0]}", "the consumer reads a JSON body the provider does not document")
            elif c_schema is not None:
                checker.compare(p_schema, c_schema, f"response {provided_ok[0]}", sender_name="provider")
        elif expected_ok and not provided_ok:
            checker.add(Severity.ERROR, "responses", "the provider documents no success response")
    return checker.findings
