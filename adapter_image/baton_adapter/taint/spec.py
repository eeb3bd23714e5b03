"""What ``PUT /taint`` sets on a node: the circuit's active canaries, the ones this node seeds, a generation.

:func:`parse_spec` turns the JSON body into a :class:`TaintSpec` or raises :class:`TaintSpecError` with one
sentence (what was expected, what was found, what to do), which the management API answers as a 400::

    {"enabled": true, "generation": "g1",
     "canaries": [{"fingerprint": "0a1b2c3d", "kind": "email"}, ...],    # every active canary of the circuit
     "seed": [{"fingerprint": "0a1b2c3d", "kind": "email"}]}              # those originating at this node
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import AdapterError
from .values import FAMILIES, KINDS, SSN_LIMIT, canary_value

__all__ = ["MAX_CANARIES", "Canary", "TaintSpec", "TaintSpecError", "parse_spec"]

MAX_CANARIES = 10_000
MAX_GENERATION = 200  # characters of the opaque generation string
_FINGERPRINT = re.compile(r"[0-9a-f]{8}\Z")
_FIELDS = frozenset({"enabled", "generation", "canaries", "seed"})
_KINDS = ", ".join(KINDS)


class TaintSpecError(AdapterError, ValueError):
    """A ``PUT /taint`` body that cannot be applied (HTTP 400)."""


@dataclass(frozen=True, slots=True)
class Canary:
    """One active canary: its fingerprint (8 lower-case hex characters) and kind."""

    fingerprint: str
    kind: str

    @property
    def value(self) -> str:
        return canary_value(self.kind, self.fingerprint)


@dataclass(frozen=True)
class TaintSpec:
    """A node's taint settings: ``enabled`` false means off (as ``DELETE /taint``)."""

    enabled: bool
    generation: str
    canaries: Mapping[str, str]  # fingerprint -> kind, every active canary of the circuit
    seed: tuple[Canary, ...]  # the canaries this node puts in its mocked responses

    def families(self) -> dict[str, str]:
        """Fingerprint -> family (see ``values.FAMILIES``): what a found token must match to count."""
        return {fp: FAMILIES[kind] for fp, kind in self.canaries.items()}


def _canary(item: Any, where: str) -> Canary:
    if not isinstance(item, Mapping) or set(item) != {"fingerprint", "kind"}:
        got = sorted(item) if isinstance(item, Mapping) else type(item).__name__
        raise TaintSpecError(f"{where} must be an object {{fingerprint, kind}}, got {got}; send exactly those two "
                             "keys.")
    fingerprint, kind = item["fingerprint"], item["kind"]
    if not isinstance(kind, str) or kind not in FAMILIES:
        raise TaintSpecError(f"{where}.kind must be one of {_KINDS}, got {kind!r}; use a known kind.")
    if not isinstance(fingerprint, str) or not _FINGERPRINT.match(fingerprint):
        raise TaintSpecError(f"{where}.fingerprint must be 8 lower-case hex characters, got {fingerprint!r}; "
                             "send the fingerprint as the registry wrote it.")
    if kind == "ssn" and int(fingerprint, 16) >= SSN_LIMIT:
        raise TaintSpecError(f"{where}.fingerprint {fingerprint} is too large for an ssn canary (it must be below "
                             f"{SSN_LIMIT:08x}); draw ssn fingerprints below that.")
    return Canary(fingerprint, kind)


def _canaries(raw: Any, field: str, limit: int) -> list[Canary]:
    if not isinstance(raw, list):
        raise TaintSpecError(f"{field} must be a list of {{fingerprint, kind}} objects, got "
                             f"{type(raw).__name__}; send a JSON array.")
    if len(raw) > limit:
        raise TaintSpecError(f"{field} may hold at most {limit} canaries, got {len(raw)}; seed fewer canaries.")
    return [_canary(item, f"{field}[{i}]") for i, item in enumerate(raw)]


def parse_spec(data: Any) -> TaintSpec:
    """The taint settings in a ``PUT /taint`` body (raises ``TaintSpecError`` with one sentence)."""
    if not isinstance(data, Mapping):
        raise TaintSpecError(f"expected a JSON object {{enabled, generation, canaries, seed}}, got "
                             f"{type(data).__name__}; send an object.")
    unknown = sorted(set(data) - _FIELDS)
    if unknown:
        raise TaintSpecError(f"expected only the keys enabled, generation, canaries, seed, got also {unknown}; "
                             "remove them.")
    enabled = data.get("enabled", True)
    if not isinstance(enabled, bool):
        raise TaintSpecError(f"enabled must be true or false, got {enabled!r}; send a JSON boolean.")
    generation = data.get("generation")
    if not isinstance(generation, str) or not generation or len(generation) > MAX_GENERATION:
        raise TaintSpecError(f"generation must be a non-empty string of at most {MAX_GENERATION} characters, got "
                             f"{generation!r}; send the registry's generation.")
    if not enabled:
        return TaintSpec(False, generation, {}, ())
    if "canaries" not in data:
        raise TaintSpecError("canaries is missing; send every active canary of the circuit (an empty list when "
                             "there is none).")
    active: dict[str, str] = {}
    for i, canary in enumerate(_canaries(data["canaries"], "canaries", MAX_CANARIES)):
        known = active.setdefault(canary.fingerprint, canary.kind)
        if known != canary.kind:
            raise TaintSpecError(f"canaries[{i}] reuses fingerprint {canary.fingerprint} for a {canary.kind} "
                                 f"canary, already given as {known}; fingerprints must be unique across kinds.")
    seed: dict[str, Canary] = {}
    for i, canary in enumerate(_canaries(data.get("seed", []), "seed", MAX_CANARIES)):
        if active.get(canary.fingerprint) != canary.kind:
            raise TaintSpecError(f"seed[{i}] ({canary.kind} {canary.fingerprint}) is not among canaries; list every "
                                 "seeded canary in canaries too.")
        seed.setdefault(canary.fingerprint, canary)
    return TaintSpec(True, generation, active, tuple(seed.values()))
