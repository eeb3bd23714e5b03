"""Encoding mock answers: JSON bodies, XML for XML media types, plain text otherwise, and header values."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote
from xml.sax.saxutils import escape

from ._request import is_json

__all__ = ["encode_body", "header_text", "is_xml", "xml_root_name"]

_XML_NAME = re.compile(r"[^A-Za-z0-9_.-]")


def is_xml(media_type: str) -> bool:
    """True for ``application/xml``, ``text/xml`` and ``+xml`` media types."""
    base = media_type.split(";", 1)[0].strip().lower()
    return base in ("application/xml", "text/xml") or base.endswith("+xml")


def xml_root_name(schema: Any) -> str:
    """The root element for a schema: its ``xml.name``, else the name its ``$ref`` points at, else ``root``."""
    if isinstance(schema, Mapping):
        xml = schema.get("xml")
        if isinstance(xml, Mapping) and isinstance(xml.get("name"), str):
            return _tag(xml["name"])
        ref = schema.get("$ref")
        if isinstance(ref, str) and "/" in ref:
            return _tag(ref.rsplit("/", 1)[-1])
        if schema.get("type") == "array":
            return "items"
    return "root"


def _tag(name: str) -> str:
    tag = _XML_NAME.sub("_", name) or "item"
    return tag if tag[0].isalpha() or tag[0] == "_" else f"_{tag}"


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return escape(str(value))


def _element(name: str, value: Any) -> str:
    tag = _tag(name)
    if value is None:
        return f"<{tag}/>"
    if isinstance(value, Mapping):
        inner = "".join(_elements(str(k), v) for k, v in value.items())
        return f"<{tag}>{inner}</{tag}>"
    if isinstance(value, list):
        return f"<{tag}>{''.join(_element('item', v) for v in value)}</{tag}>"
    return f"<{tag}>{_scalar(value)}</{tag}>"


def _elements(name: str, value: Any) -> str:
    """A property: arrays repeat the property's element (OpenAPI's default, unwrapped XML arrays)."""
    if isinstance(value, list):
        return "".join(_element(name, v) for v in value)
    return _element(name, value)


def to_xml(value: Any, root: str) -> str:
    """A generated value as a small XML document."""
    return '<?xml version="1.0" encoding="UTF-8"?>' + _element(root, value)


def encode_body(value: Any, content_type: str, xml_root: str = "root") -> bytes:
    """The body bytes of ``value`` for ``content_type``: JSON, XML, or plain text for everything else."""
    if is_json(content_type):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    if value is None:
        return b""
    if is_xml(content_type):
        return to_xml(value, xml_root).encode("utf-8")
    return json.dumps(value, ensure_ascii=False).encode("utf-8")


def header_text(value: Any) -> str:
    """A header value as latin-1-safe text on one line (non-latin-1 characters are percent-encoded)."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, list):
        text = ",".join(map(str, value))
    else:
        text = str(value)
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        text = quote(text, safe=" !#$&'()*+,/:;=?@[]~<>\"{}|^`")
    return text.replace("\r", " ").replace("\n", " ")
