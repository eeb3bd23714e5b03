"""Canary values: every kind round-trips its fingerprint through every encoding the module promises, cards are
Luhn-valid test cards, SSNs use the never-issued 9xx area, ``find`` matches what the single-regex original
matched, and generated mock responses never carry an active fingerprint."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path
from urllib.parse import quote, urlencode

import pytest

from baton_adapter.taint.values import (
    DEFAULT_TIERS,
    FAMILIES,
    KINDS,
    MAX_TOKEN_BYTES,
    canary_value,
    find,
    find_text,
    fingerprint_of,
    new_fingerprint,
)

RNG_SEED = 20240516


def fingerprints(kind: str, count: int, seed: int = RNG_SEED) -> list[str]:
    rng = random.Random(f"{seed}-{kind}")
    edges = ["00000000", "05f5e0ff"] if kind == "ssn" else ["00000000", "ffffffff", "7fffffff"]
    return edges + [new_fingerprint(kind, rng.getrandbits) for _ in range(count)]


def luhn_ok(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        number = int(char) * (2 if index % 2 else 1)
        total += number - 9 if number > 9 else number
    return total % 10 == 0


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_round_trips_many_fingerprints(kind: str) -> None:
    for fp in fingerprints(kind, 3000):
        value = canary_value(kind, fp)
        assert fingerprint_of(kind, value) == fp, value
        [token] = find_text(value)
        assert (token.family, token.fingerprint) == (FAMILIES[kind], fp)
        assert token.end - token.start <= MAX_TOKEN_BYTES


def test_kinds_tiers_and_families() -> None:
    assert KINDS == ("email", "name", "ssn", "card", "phone")
    assert DEFAULT_TIERS == {"email": "PII", "name": "PII", "ssn": "PII", "card": "FINANCIAL", "phone": "PII"}
    assert FAMILIES["email"] == FAMILIES["name"] == "alpha"
    with pytest.raises(ValueError, match="unknown canary kind"):
        canary_value("iban", "0a1b2c3d")
    with pytest.raises(ValueError, match="unknown canary kind"):
        new_fingerprint("iban")


def test_cards_are_luhn_valid_test_cards_and_a_wrong_check_digit_is_no_card() -> None:
    for fp in fingerprints("card", 2000):
        value = canary_value("card", fp)
        assert re.fullmatch(r"40000\d{11}", value) and luhn_ok(value), value
        broken = value[:-1] + str((int(value[-1]) + 1) % 10)
        assert fingerprint_of("card", broken) is None


def test_ssns_use_the_9xx_area_and_fingerprints_that_fit() -> None:
    rng = random.Random(RNG_SEED)
    for _ in range(2000):
        fp = new_fingerprint("ssn", rng.getrandbits)
        assert int(fp, 16) < 10**8
        value = canary_value("ssn", fp)
        assert re.fullmatch(r"9\d\d-\d\d-\d{4}", value), value
    with pytest.raises(ValueError, match="does not fit an SSN"):
        canary_value("ssn", "05f5e100")


def test_phones_use_the_unassigned_country_code_999() -> None:
    for fp in fingerprints("phone", 500):
        assert re.fullmatch(r"\+999-\d{3}-\d{3}-\d{4}", canary_value("phone", fp))


ALPHA_SEPARATORS = ["-", "_", " ", ".", "+", "%20", "%2D", "%2d", "%5F", "%5f", ""]
DIGIT_SEPARATORS = ["-", ".", " ", "/", "_", "+", "%20", "%2D", "%2d", "%2E", "%2e", "%5F", "%2F", "%2f", ""]


def _resep(kind: str, value: str, sep: str) -> str:
    if kind in ("email", "name"):
        marker = value[6]  # canary-... / Canary_...
        return value[:6] + sep + value[7:] if marker in "-_" else value
    if kind == "card":
        return sep.join(value[i:i + 4] for i in range(0, 16, 4))
    return value.replace("-", sep)


def encodings(kind: str, value: str) -> dict[str, str]:
    """``value`` re-encoded the ways the module promises to survive."""
    out = {
        "plain": value,
        "json": json.dumps({"v": value}),
        "json-ascii-list": json.dumps([value, {"nested": value}], ensure_ascii=True),
        "form": urlencode({"v": value, "w": "a b"}),
        "percent": quote(value, safe=""),
        "percent-all": "".join(c if c.isalnum() else f"%{ord(c):02X}" for c in value),
        "percent-lower": "".join(c if c.isalnum() else f"%{ord(c):02x}" for c in value),
        "upper": value.upper(),
        "lower": value.lower(),
        "title": value.title(),
        "in-text": f"<p>contact:{value};</p>",
    }
    for sep in ALPHA_SEPARATORS if kind in ("email", "name") else DIGIT_SEPARATORS:
        out[f"sep {sep!r}"] = _resep(kind, value, sep)
        if sep in ("-", "_", ".", " ", "/", ""):  # a changed separator, then form-encoded (a space becomes +)
            out[f"sep {sep!r} form"] = urlencode({"v": _resep(kind, value, sep)})
    return out


@pytest.mark.parametrize("kind", KINDS)
def test_every_encoding_keeps_the_fingerprint(kind: str) -> None:
    for fp in fingerprints(kind, 200):
        value = canary_value(kind, fp)
        for name, encoded in encodings(kind, value).items():
            assert fingerprint_of(kind, encoded) == fp, f"{kind} {name}: {encoded!r}"


def test_tokens_inside_longer_runs_are_not_canaries() -> None:
    assert find(b"canary-0a1b2c3d9") == []  # a ninth hex character
    assert find(b"1900-12-3456") == [] and find(b"900-12-34567") == []
    assert find(b"14000012345678901") == [] and find(b"+1999-123-456-78901") == []
    assert [t.fingerprint for t in find(b"x canary-0A1B2C3D@baton.test y")] == ["0a1b2c3d"]


# -- find() matches exactly what the original single alternation matched ---------------------------------------

_SEP = rb"(?:[-. /_+]|%2[0dD]|%2[eE]|%5[fF]|%2[fF])?"
_REFERENCE = re.compile(
    rb"(?i:(?P<alpha>canary(?:[-_ .+]|%20|%2[dD]|%5[fF])?([0-9a-fA-F]{8})(?![0-9a-fA-F])))"
    rb"|(?P<ssn>(?<![0-9])9([0-9]{2})" + _SEP + rb"([0-9]{2})" + _SEP + rb"([0-9]{4})(?![0-9]))"
    rb"|(?P<card>(?<![0-9])4000" + _SEP + rb"0([0-9]{3})" + _SEP + rb"([0-9]{4})" + _SEP + rb"([0-9]{3})([0-9])"
    rb"(?![0-9]))"
    rb"|(?P<phone>(?<![0-9])999" + _SEP + rb"([0-9]{3})" + _SEP + rb"([0-9]{3})" + _SEP + rb"([0-9]{4})(?![0-9]))"
)
_GROUPS = {"alpha": (2,), "ssn": (4, 5, 6), "card": (8, 9, 10, 11), "phone": (13, 14, 15)}


def reference_find(data: bytes) -> list[tuple[str, str, int, int]]:
    """The matching of values.py as first written (one case-insensitive alternation), for comparison."""
    out = []
    for match in _REFERENCE.finditer(data):
        family = match.lastgroup
        assert family is not None
        parts = [match.group(i) for i in _GROUPS[family]]
        if family == "alpha":
            fp: str | None = parts[0].decode().lower()
        else:
            digits = b"".join(parts).decode()
            if family == "ssn":
                fp = f"{int(digits):08x}"
            elif family == "card":
                fp = f"{int(digits[:-1]):08x}" if luhn_ok("40000" + digits) else None
            else:
                fp = f"{int(digits):08x}"
            if fp is not None and int(fp, 16) >= 2**32:
                fp = None
        if fp is not None:
            out.append((family, fp, match.start(), match.end()))
    return out


_PIECES = [b"9", b"4", b"0", b"1", b"5", b"-", b".", b" ", b"/", b"_", b"+", b"%2D", b"%2d", b"%20", b"%2E", b"%5F",
           b"%2F", b"a", b"F", b"c", b"canary", b"CANARY", b"Canary_", b"999", b"4000", b"x", b'"', b"%", b"\xff"]


def test_find_matches_the_original_alternation_on_random_input() -> None:
    rng = random.Random(RNG_SEED)

    def piece() -> bytes:
        if rng.random() < 0.3:
            kind = rng.choice(KINDS)
            value = canary_value(kind, new_fingerprint(kind, rng.getrandbits)).encode()
            if rng.random() < 0.5:
                value = value.replace(b"-", rng.choice([b"", b" ", b".", b"%2D", b"/", b"_", b"+"]))
            return value.upper() if rng.random() < 0.3 else value
        return b"".join(rng.choice(_PIECES) for _ in range(rng.randint(1, 12)))

    for _ in range(30_000):
        data = b"".join(piece() for _ in range(rng.randint(1, 6)))
        assert [(t.family, t.fingerprint, t.start, t.end) for t in find(data)] == reference_find(data), data


# -- no false positive in generated mock responses ------------------------------------------------------------

PII_CONTRACT = """
openapi: 3.0.3
info: {title: People, version: 1.0.0}
paths: {}
components:
  schemas:
    Person:
      type: object
      required: [id, email, name, first_name, last_name, display_name, ssn, card_number, phone, mobile, tax_id,
                 created_at, balance, amount_cents, uuid, address, notes]
      properties:
        id: {type: integer, format: int64, minimum: 1}
        email: {type: string, format: email}
        contact_email: {type: string}
        name: {type: string}
        first_name: {type: string}
        last_name: {type: string}
        display_name: {type: string}
        ssn: {type: string, pattern: "^[0-9]{3}-[0-9]{2}-[0-9]{4}$"}
        tax_id: {type: string}
        card_number: {type: string, pattern: "^4[0-9]{15}$"}
        phone: {type: string}
        mobile: {type: string}
        created_at: {type: string, format: date-time}
        balance: {type: number}
        amount_cents: {type: integer, format: int64}
        uuid: {type: string, format: uuid}
        address:
          type: object
          properties: {street: {type: string}, city: {type: string}, zip: {type: string}}
        notes: {type: array, items: {type: string}}
"""


@pytest.mark.slow  # about 25 s: generating 100,000 bodies is the cost, scanning them takes under a second
def test_no_false_positive_over_100000_generated_mock_responses(tmp_path: Path) -> None:
    from baton_adapter.mock._contract import load_contract
    from baton_adapter.mock._generate import Generator

    path = tmp_path / "people.yaml"
    path.write_text(PII_CONTRACT)
    contract = load_contract(str(path))
    # the mock's generator without the validation pass (its values validate: the pass would only cost time)
    generator = Generator(contract.dialect, contract.registry, lambda location, direction, value: True)
    location = f"{path.resolve().as_uri()}#/components/schemas/Person"
    rng = random.Random(RNG_SEED)
    active = {new_fingerprint(kind, rng.getrandbits): FAMILIES[kind] for kind in KINDS for _ in range(10)}
    assert len(active) == 50
    hits, candidates, scanned = [], 0, 0
    for seed in range(100_000):
        body = json.dumps(generator.generate(location, seed, examples=False)).encode()
        scanned += len(body)
        for token in find(body):
            candidates += 1
            if active.get(token.fingerprint) == token.family:
                hits.append((seed, body[token.start:token.end]))
    assert hits == []
    assert scanned > 100_000 * 300  # real bodies were scanned (about 500 bytes each)
    assert candidates < 100_000  # SSN-shaped values in the 9xx area exist; they carry no active fingerprint
