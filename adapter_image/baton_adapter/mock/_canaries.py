"""Seeded canaries in generated mock responses: which string fields are PII of which kind, and the value.

A node's mock seeded through ``PUT /taint`` (``MockEngine.seed_canaries``) answers with canary values in the
fields that look like the kind: by ``format``, by property name, or (ssn) by a ``pattern`` an SSN satisfies::

    email   format email/idn-email, or a property named like *email*
    name    name, full_name, display_name, first_name, last_name, ... (the whole ``Canary_<fp> Testuser``)
    ssn     ssn, social_security(_number), tax_id, or a pattern an SSN satisfies and a word or a short number not
    card    card_number, pan, credit_card, cc_number, ..., or format credit-card
    phone   a property named like *phone*/*mobile*/tel, or format phone

A canary is written in the first of its spellings that the schema admits (``minLength``, ``maxLength``,
``pattern``; the digits of an SSN, card or phone may lose their separators, which the scanner still reads);
when none does, or the schema is an ``enum``/``const``, the field keeps its ordinary value.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Mapping
from typing import Any

__all__ = ["canary_for", "canary_kind"]

_FORMATS = {"email": "email", "idn-email": "email", "credit-card": "card", "phone": "phone"}
_NAMES = frozenset({
    "name", "full_name", "fullname", "display_name", "displayname", "first_name", "firstname", "last_name",
    "lastname", "given_name", "family_name", "middle_name", "surname", "legal_name", "customer_name",
})
_SSN = frozenset({"ssn", "social_security", "social_security_number", "social_security_no", "tax_id", "taxid"})
_CARDS = frozenset({
    "card_number", "cardnumber", "card_no", "pan", "credit_card", "creditcard", "credit_card_number", "cc_number",
    "ccnumber", "cc_num",
})
_NOT_STRING = ("properties", "required", "additionalProperties", "minProperties", "items", "prefixItems", "minItems",
               "maxItems", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf", "allOf",
               "oneOf", "anyOf", "$ref")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
# an SSN-shaped pattern is satisfied by a canary SSN and by neither of these
_NOT_SSN = ("alpha-1", "12345")
_SAMPLE_SSN = ("900-12-3456", "900123456", "900 12 3456")


def _snake(name: str) -> str:
    return _CAMEL.sub("_", name).lower().replace("-", "_").replace(" ", "_")


def _is_string(schema: Mapping[str, Any]) -> bool:
    declared = schema.get("type")
    if isinstance(declared, list):
        return "string" in declared
    if declared is None:  # as the generator infers a type: a string unless other keywords say otherwise
        return not any(k in schema for k in _NOT_STRING)
    return declared == "string"


def _search(pattern: str, text: str) -> bool:
    try:
        return re.search(pattern, text) is not None
    except re.error:
        return False


def canary_kind(schema: Mapping[str, Any], name: str) -> str | None:
    """The PII kind a string field holds, judged by its format, its property name or its pattern."""
    if "enum" in schema or "const" in schema or not _is_string(schema):
        return None
    fmt = schema.get("format")
    if isinstance(fmt, str) and fmt in _FORMATS:
        return _FORMATS[fmt]
    key = _snake(name)
    if key:
        if "email" in key:
            return "email"
        if key in _NAMES:
            return "name"
        if key in _SSN:
            return "ssn"
        if key in _CARDS:
            return "card"
        if "phone" in key or "mobile" in key or key in ("tel", "tel_no") or key.endswith("_tel"):
            return "phone"
    pattern = schema.get("pattern")
    if (isinstance(pattern, str) and any(_search(pattern, s) for s in _SAMPLE_SSN)
            and not any(_search(pattern, s) for s in _NOT_SSN)):
        return "ssn"
    return None


def _spellings(kind: str, value: str) -> tuple[str, ...]:
    """``value`` as written, then with other separators (every one of them is found by the scanner)."""
    if kind == "ssn":
        return value, value.replace("-", ""), value.replace("-", " ")
    if kind == "card":
        return value, "-".join(value[i:i + 4] for i in range(0, 16, 4)), " ".join(value[i:i + 4] for i in range(0, 16, 4))
    if kind == "phone":
        return value, value.replace("-", ""), value[1:], value.replace("-", " ")
    return (value,)


def _fits(schema: Mapping[str, Any], text: str) -> bool:
    low, high = schema.get("minLength"), schema.get("maxLength")
    if isinstance(low, int) and len(text) < low:
        return False
    if isinstance(high, int) and len(text) > high:
        return False
    pattern = schema.get("pattern")
    return not isinstance(pattern, str) or _search(pattern, text)


def canary_for(schema: Mapping[str, Any], name: str, canaries: Mapping[str, tuple[str, ...]]) -> str | None:
    """A seeded canary value for this field (``canaries``: values by kind), or None to generate as usual.

    With several canaries of the kind, the property name picks one, so a body is the same on every request.
    """
    kind = canary_kind(schema, name)
    values = canaries.get(kind) if kind is not None else None
    if not values or kind is None:
        return None
    value = values[zlib.crc32(name.encode("utf-8")) % len(values)]
    for text in _spellings(kind, value):
        if _fits(schema, text):
            return text
    return None
