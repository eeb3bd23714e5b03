"""Canary values for five kinds of PII-shaped data, each carrying a fingerprint readable from the value alone.

A fingerprint is 8 lower-case hex characters (32 bits). Each kind writes it so that it survives the ways data
is re-encoded on its way through services (JSON escaping, form and URL encoding, changed case, changed
separators) and so that no real value of the kind can carry it:

========  ==============================  ===================================================================
kind      value                           where the fingerprint is
========  ==============================  ===================================================================
email     ``canary-<fp>@baton.test``      the 8 hex characters after ``canary-`` (the original's shape)
name      ``Canary_<fp> Testuser``        the 8 hex characters after ``Canary_`` (the original's shape)
ssn       ``9DD-DD-DDDD``                 the 8 digits after the 9: the fingerprint in decimal. Area numbers
                                          900-999 are never issued as SSNs; an SSN fingerprint is drawn
                                          below 10**8 so that it fits
card      ``40000DDDDDDDDDDC``            16 digits, Luhn-valid, in the 40000 test range (Stripe's test
                                          cards): digits 6-15 are the fingerprint in decimal, C the check
phone     ``+999-DDD-DDD-DDDD``           the 10 digits after the country code 999, which the ITU reserves
                                          and never assigns: the fingerprint in decimal
========  ==============================  ===================================================================

The original split the fingerprint around the separators of SSN, card and phone values, so three of its five
kinds could never be found again; here every kind is found by :func:`find`, which returns candidates (any
fingerprint of the right shape) for a caller to look up in its set of active fingerprints.

Only the standard library is imported (the log pump imports this module).
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from typing import Callable

__all__ = [
    "DEFAULT_TIERS",
    "FAMILIES",
    "KINDS",
    "MAX_TOKEN_BYTES",
    "Found",
    "canary_value",
    "family_of",
    "find",
    "find_text",
    "fingerprint_of",
    "new_fingerprint",
]

KINDS = ("email", "name", "ssn", "card", "phone")
DEFAULT_TIERS = {"email": "PII", "name": "PII", "ssn": "PII", "card": "FINANCIAL", "phone": "PII"}
# email and name share a family: after a change of separator their forms cannot be told apart, and the set of
# active fingerprints (unique across kinds) says which kind a fingerprint is
FAMILIES = {"email": "alpha", "name": "alpha", "ssn": "ssn", "card": "card", "phone": "phone"}
SSN_LIMIT = 10**8
# the longest encoded form find() matches (a phone with every separator percent-encoded and a %2B prefix is
# 13 digits + 4 separators of 3 bytes + 3): a stream scanner keeps this many bytes across chunk boundaries
MAX_TOKEN_BYTES = 64


def family_of(kind: str) -> str:
    return FAMILIES[kind]


def new_fingerprint(kind: str, randbits: Callable[[int], int] = secrets.randbits) -> str:
    """A fresh random fingerprint that ``kind`` can carry (an SSN's fits in 8 decimal digits)."""
    if kind not in FAMILIES:
        raise ValueError(f"unknown canary kind {kind!r}; expected one of {', '.join(KINDS)}")
    while True:
        value = randbits(32)
        if kind != "ssn" or value < SSN_LIMIT:
            return f"{value:08x}"


def _luhn_digit(digits: str) -> str:
    total = 0
    for index, char in enumerate(reversed(digits)):
        number = int(char)
        if index % 2 == 0:  # the digit next to the (missing) check digit is doubled
            number *= 2
            if number > 9:
                number -= 9
        total += number
    return str((10 - total % 10) % 10)


def _luhn_valid(digits: str) -> bool:
    return _luhn_digit(digits[:-1]) == digits[-1]


def _number(fingerprint: str) -> int:
    if len(fingerprint) != 8:
        raise ValueError(f"a fingerprint is 8 hex characters, got {fingerprint!r}")
    return int(fingerprint, 16)


def canary_value(kind: str, fingerprint: str) -> str:
    """The canary value of ``kind`` carrying ``fingerprint``."""
    number = _number(fingerprint)
    fp = f"{number:08x}"
    if kind == "email":
        return f"canary-{fp}@baton.test"
    if kind == "name":
        return f"Canary_{fp} Testuser"
    if kind == "ssn":
        if number >= SSN_LIMIT:
            raise ValueError(f"fingerprint {fp} does not fit an SSN (it must be below {SSN_LIMIT:x} hex)")
        digits = f"9{number:08d}"
        return f"{digits[:3]}-{digits[3:5]}-{digits[5:]}"
    if kind == "card":
        body = f"40000{number:010d}"
        return body + _luhn_digit(body)
    if kind == "phone":
        digits = f"{number:010d}"
        return f"+999-{digits[:3]}-{digits[3:6]}-{digits[6:]}"
    raise ValueError(f"unknown canary kind {kind!r}; expected one of {', '.join(KINDS)}")


@dataclass(frozen=True, slots=True)
class Found:
    """A canary-shaped token: its family (see :data:`FAMILIES`), the fingerprint it carries, and where."""

    family: str
    fingerprint: str
    start: int
    end: int


# How find() stays cheap (the result is the same as one alternation of the four families, tried at each
# position in the order alpha, ssn, card, phone, resuming after each match):
# - a family that cannot match anywhere in the data is left out of the alternation. The digit families are
#   searched on their own first, each with a pattern that begins with a literal (9 for ssn and phone, which
#   share a branch, ssn first; 4000 for card), which the regex engine skips to; a y, found by memchr, gates
#   the alpha family, and only then is the data lower-cased (bytes.lower maps A-Z only, so positions hold) and
#   searched for ``canary``. Traffic without canaries costs two literal-prefix searches and a few memchr calls
#   (plus the lower-casing and one search for ``canary`` when it holds a y).
# - the digit patterns accept either case in percent-encoded separators, so they run on the data as it is.
#
# a separator that a kind allows to change: nothing, space, dash, dot, slash, or their encoded forms
# (form encoding writes a space as +, URL encoding as %20; JSON writes them as they are)
_SEP = rb"(?:[-. /_+]|%2[0dD]|%2[eE]|%5[fF]|%2[fF])?"
_NINE = (rb"(?:([0-9]{2})" + _SEP + rb"([0-9]{2})" + _SEP + rb"([0-9]{4})(?![0-9])"
         rb"|99" + _SEP + rb"([0-9]{3})" + _SEP + rb"([0-9]{3})" + _SEP + rb"([0-9]{4})(?![0-9]))")
_CARD = _SEP + rb"0([0-9]{3})" + _SEP + rb"([0-9]{4})" + _SEP + rb"([0-9]{3})([0-9])(?![0-9])"
# (branch, regex in an alternation, regex on its own): each starts with its literal first byte(s); the
# look-behind after it says no digit comes before the token
_BRANCHES = (
    ("alpha", rb"canary(?:[-_ .+]|%20|%2d|%5f)?([0-9a-f]{8})(?![0-9a-f])", None),  # on lower-cased data
    ("nine", rb"9(?<![0-9]9)" + _NINE, None),
    ("card", rb"4(?<![0-9]4)000" + _CARD, rb"4000(?<![0-9]4000)" + _CARD),
)
# the families each branch's groups belong to, in group order
_BRANCH_FAMILIES = {"alpha": (("alpha", 1),), "nine": (("ssn", 3), ("phone", 3)), "card": (("card", 4),)}
_Compiled = tuple[re.Pattern[bytes], dict[int, tuple[str, range]]]


def _compile(present: tuple[bool, bool, bool]) -> _Compiled:
    """The pattern of the branches present, and per family the index of its last group and its groups."""
    parts: list[bytes] = []
    last_groups: dict[int, tuple[str, range]] = {}
    group = 1
    alone = sum(present) == 1
    for (branch, regex, regex_alone), on in zip(_BRANCHES, present, strict=True):
        if not on:
            continue
        parts.append(regex_alone if alone and regex_alone is not None else regex)
        for family, count in _BRANCH_FAMILIES[branch]:
            last_groups[group + count - 1] = (family, range(group, group + count))
            group += count
    return re.compile(b"|".join(parts)), last_groups


_PATTERNS = {
    key: _compile(key)
    for key in ((a, n, c) for a in (False, True) for n in (False, True) for c in (False, True))
    if any(key)
}
_NINE_ALONE = _PATTERNS[(False, True, False)][0]
_CARD_ALONE = _PATTERNS[(False, False, True)][0]


def _decode(family: str, parts: tuple[bytes, ...]) -> str | None:
    if family == "alpha":
        return parts[0].decode("ascii")  # lower-case already
    digits = b"".join(parts).decode("ascii")
    if family == "ssn":
        return f"{int(digits):08x}"  # < 10**8 by construction
    if family == "card":
        if not _luhn_valid("40000" + digits):
            return None
        number = int(digits[:-1])
    else:
        number = int(digits)
    return f"{number:08x}" if number < 2**32 else None


def find(data: bytes) -> list[Found]:
    """Every canary-shaped token in ``data``, with the fingerprint it carries (active or not)."""
    # bytes.find of one byte is memchr (and cheaper than the in operator, which first asks for a buffer)
    nine = _NINE_ALONE.search(data) if data.find(b"9") >= 0 else None
    card = _CARD_ALONE.search(data) if data.find(b"4") >= 0 else None
    if data.find(b"y") >= 0 or data.find(b"Y") >= 0:  # every canary-... ends in a y
        low = data.lower()
        if low.find(b"canary") >= 0:
            return _tokens(_PATTERNS[(True, nine is not None, card is not None)], low, 0)
    if nine is None:
        return [] if card is None else _tokens(_PATTERNS[(False, False, True)], data, card.start())
    if card is None:
        return _tokens(_PATTERNS[(False, True, False)], data, nine.start())
    return _tokens(_PATTERNS[(False, True, True)], data, min(nine.start(), card.start()))


def _tokens(compiled: _Compiled, data: bytes, start: int) -> list[Found]:
    pattern, last_groups = compiled
    found = []
    for match in pattern.finditer(data, start):
        family, groups = last_groups[match.lastindex]  # type: ignore[index]  # every branch ends in a group
        fingerprint = _decode(family, match.group(*groups) if len(groups) > 1 else (match.group(groups[0]),))
        if fingerprint is not None:
            found.append(Found(family, fingerprint, match.start(), match.end()))
    return found


def find_text(text: str) -> list[Found]:
    """:func:`find` over text (positions are those of its UTF-8 encoding)."""
    return find(text.encode("utf-8", "surrogatepass"))


def fingerprint_of(kind: str, value: str) -> str | None:
    """The fingerprint a value of ``kind`` carries, or None when it is not a canary of that kind."""
    family = FAMILIES.get(kind)
    for token in find_text(value):
        if token.family == family:
            return token.fingerprint
    return None
