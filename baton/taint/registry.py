"""The registry of active canaries, ``.baton/taint_canaries.jsonl``: what was seeded where, and the plan of a
new seeding (pure: which node originates which kind, with a fingerprint no active canary has).

A canary's *scope* is its origin and the origin's neighbours (edges either way): the nodes allowed to see it.
The registry's *generation* is a short hash of its content: an adapter that reports another one has another
set (an adapter restarted by the custodian comes back with none) and is loaded again.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from baton_adapter.taint.values import DEFAULT_TIERS, KINDS, canary_value, fingerprint_of, new_fingerprint
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from baton.circuit import CircuitGraph
from baton.errors import UsageError
from baton.jsonl import append_lines, read_lines, rewrite_lines

__all__ = ["CANARIES_FILE", "MAX_CANARIES", "Canary", "Registry", "generation", "load_canaries", "plan_seed",
           "append_canaries", "clear_registry", "save_canaries", "taint_body", "require_taint", "tiers_of_kinds"]

CANARIES_FILE = "taint_canaries.jsonl"
MAX_CANARIES = 10_000  # what an adapter accepts in one PUT /taint
MAX_PER_KIND = 1_000
Kind = Literal["email", "name", "ssn", "card", "phone"]


class Canary(BaseModel):
    """One seeded canary: a fake value of ``kind`` whose fingerprint can be read back from the value alone."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    fingerprint: str = Field(pattern=r"^[0-9a-f]{8}$", description="8 lower-case hex characters, unique among "
                                                                     "the active canaries.")
    kind: Kind = Field(description="email, name, ssn, card or phone.")
    value: str = Field(description="The canary value, carrying the fingerprint.")
    tier: str = Field(min_length=1, description="Its data tier (card: FINANCIAL, the others: PII).")
    origin: str = Field(min_length=1, description="The node that puts it in its responses.")
    scope: list[str] = Field(description="The nodes allowed to see it: the origin and its neighbours.")
    created_at: float = Field(description="When it was seeded (epoch seconds).")

    @model_validator(mode="after")
    def _value_carries_fingerprint(self) -> Canary:
        if fingerprint_of(self.kind, self.value) != self.fingerprint:
            raise ValueError(f"value {self.value!r} does not carry fingerprint {self.fingerprint} as a {self.kind}")
        return self


@dataclass(frozen=True)
class Registry:
    """The active canaries (unique fingerprints, file order) and how many lines of the file were unusable."""

    canaries: tuple[Canary, ...] = ()
    corrupt: int = 0

    def by_fingerprint(self) -> dict[str, Canary]:
        return {c.fingerprint: c for c in self.canaries}

    @property
    def generation(self) -> str:
        return generation(self.canaries)


def _path(state_dir: Path) -> Path:
    return Path(state_dir) / CANARIES_FILE


_LOADED: dict[str, tuple[tuple[int, int, int], Registry]] = {}  # path -> (its stat when read, what it held)


def load_canaries(state_dir: Path) -> Registry:
    """The registry; a line that is not a valid canary (or repeats a fingerprint) is skipped and counted. Kept
    while the file is unchanged (the conductor reads it every second; 10,000 canaries take ~0.1 s to check)."""
    path = _path(state_dir)
    try:
        stat = path.stat()
        seen = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
    except OSError:
        return Registry()
    cached = _LOADED.get(str(path))
    if cached is not None and cached[0] == seen:
        return cached[1]
    registry = _read(path)
    _LOADED.clear()  # one project per process, as a rule: keep one
    _LOADED[str(path)] = (seen, registry)
    return registry


def _read(path: Path) -> Registry:
    lines = read_lines(path)
    found: dict[str, Canary] = {}
    corrupt = lines.corrupt
    for record in lines.records:
        try:
            canary = Canary.model_validate(record)
        except ValidationError:
            corrupt += 1
            continue
        if canary.fingerprint in found:
            corrupt += 1
            continue
        found[canary.fingerprint] = canary
    return Registry(tuple(found.values()), corrupt)


def append_canaries(state_dir: Path, canaries: Iterable[Canary]) -> None:
    append_lines(_path(state_dir), (c.model_dump() for c in canaries))


def save_canaries(state_dir: Path, canaries: Iterable[Canary]) -> None:
    """Replace the registry atomically (a rewrite drops the lines that were corrupt)."""
    rewrite_lines(_path(state_dir), (c.model_dump() for c in canaries))


def clear_registry(state_dir: Path) -> int:
    """Empty the registry; returns how many canaries it held."""
    held = len(load_canaries(state_dir).canaries)
    save_canaries(state_dir, ())
    return held


def generation(canaries: Iterable[Canary]) -> str:
    """A short hash of the canary set ("" for none): equal sets, equal generations."""
    items = sorted(f"{c.fingerprint}:{c.kind}:{c.origin}" for c in canaries)
    if not items:
        return ""
    return hashlib.sha256("\n".join(items).encode()).hexdigest()[:12]


def taint_body(canaries: Sequence[Canary], node: str) -> dict[str, Any]:
    """The body of ``PUT /taint`` for ``node``: every active canary to scan for, those it originates to seed."""
    return {"enabled": True, "generation": generation(canaries),
            "canaries": [{"fingerprint": c.fingerprint, "kind": c.kind} for c in canaries],
            "seed": [{"fingerprint": c.fingerprint, "kind": c.kind} for c in canaries if c.origin == node]}


# -- planning a seeding (pure) ------------------------------------------------------------------------------


def require_taint(config: Any) -> None:
    if not config.taint.enabled:
        raise UsageError("taint analysis is off in baton.yaml (taint.enabled is false); add `taint: {enabled: "
                         "true}` to baton.yaml, then run the command again.")


def tiers_of_kinds() -> dict[str, list[str]]:
    """Tier -> the kinds that carry it by default."""
    tiers: dict[str, list[str]] = {}
    for kind in KINDS:
        tiers.setdefault(DEFAULT_TIERS[kind], []).append(kind)
    return tiers


def _kinds(config: Any, kinds: Sequence[str] | None, tiers: Sequence[str] | None) -> list[str]:
    wanted = [k.strip().lower() for k in kinds] if kinds else list(config.taint.categories)
    unknown = [k for k in wanted if k not in KINDS]
    if unknown:
        where = "" if kinds else " in taint.categories of baton.yaml"
        raise UsageError(f"unknown canary kind {unknown[0]!r}{where}; expected some of {', '.join(KINDS)}.")
    by_tier = tiers_of_kinds()
    if tiers:
        chosen = [t.strip().upper() for t in tiers]
        missing = [t for t in chosen if t not in by_tier]
        if missing:
            known = "; ".join(f"{t} ({', '.join(k)})" for t, k in by_tier.items())
            raise UsageError(f"no canary kind has tier {missing[0]!r}; the tiers are {known}.")
        kept = [k for k in wanted if DEFAULT_TIERS[k] in chosen]
        if not kept:
            raise UsageError(f"none of the kinds {', '.join(wanted)} has tier {', '.join(chosen)}; choose kinds of "
                             f"that tier ({', '.join(k for t in chosen for k in by_tier[t])}) or another tier.")
        wanted = kept
    return list(dict.fromkeys(wanted))


def plan_seed(config: Any, *, nodes: Sequence[str] | None = None, kinds: Sequence[str] | None = None,
              tiers: Sequence[str] | None = None, per_kind: int = 1, existing: Iterable[Canary] = (),
              kinds_by_node: Mapping[str, Sequence[str]] | None = None,
              randbits: Callable[[int], int] = secrets.randbits, now: float | None = None) -> list[Canary]:
    """New canaries: for each node seeded (default: every node of the circuit), ``per_kind`` canaries of each
    kind (default: ``taint.categories``) whose default tier is in ``tiers`` (default: any); or, with
    ``kinds_by_node`` (node -> kinds), exactly those. Fingerprints are unique against ``existing`` and each
    other. Refuses, with one sentence, taint disabled, an unknown node, kind or tier, and more than
    :data:`MAX_CANARIES` active canaries."""
    require_taint(config)
    known = [n.name for n in config.nodes]
    if not known:
        raise UsageError("the circuit has no nodes to seed canaries at; add one with `baton node add <name>`.")
    if kinds_by_node is not None:
        chosen_nodes = list(kinds_by_node)
    else:
        chosen_nodes = list(dict.fromkeys(nodes)) if nodes else known
    unknown = [n for n in chosen_nodes if n not in known]
    if unknown:
        raise UsageError(f"no node named {unknown[0]!r} in baton.yaml; known nodes: {', '.join(known)}.")
    if not 1 <= per_kind <= MAX_PER_KIND:
        raise UsageError(f"canaries per kind must be within 1-{MAX_PER_KIND}, found {per_kind}.")
    if kinds_by_node is not None:
        plan = {node: _kinds(config, list(wanted), None) for node, wanted in kinds_by_node.items() if wanted}
    else:
        plan = dict.fromkeys(chosen_nodes, _kinds(config, kinds, tiers))
    existing = list(existing)
    total = len(existing) + sum(len(k) for k in plan.values()) * per_kind
    if total > MAX_CANARIES:
        raise UsageError(f"an adapter scans for at most {MAX_CANARIES} canaries, and this seeding would make "
                         f"{total} active; seed fewer nodes or kinds, or `baton taint clear` first.")
    graph = CircuitGraph.from_config(config)
    taken = {c.fingerprint for c in existing}
    created = time.time() if now is None else now
    planned = []
    for node, chosen_kinds in plan.items():
        scope = [node, *graph.neighbours(node)]
        for kind in chosen_kinds:
            for _ in range(per_kind):
                fingerprint = _fresh(kind, taken, randbits)
                taken.add(fingerprint)
                planned.append(Canary(fingerprint=fingerprint, kind=kind, value=canary_value(kind, fingerprint),
                                      tier=DEFAULT_TIERS[kind], origin=node, scope=scope, created_at=created))
    return planned


def _fresh(kind: str, taken: set[str], randbits: Callable[[int], int]) -> str:
    for _ in range(1000):
        fingerprint = new_fingerprint(kind, randbits)
        if fingerprint not in taken:
            return fingerprint
    raise UsageError(f"could not draw a {kind} fingerprint unlike the {len(taken)} active ones in 1000 tries; "
                     "`baton taint clear` and seed again.")
