"""``.baton/taint_violations.jsonl``: every sighting judged a violation, one line each (bounded: past 10 MiB
the file becomes ``.1``, the previous ``.1`` is dropped), and the grouping ``baton taint violations`` shows."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from baton.jsonl import append_lines, read_lines, rewrite_lines, tail_lines

__all__ = ["VIOLATIONS_FILE", "VIOLATIONS_MAX_BYTES", "Violation", "append_violations", "load_violations",
           "clear_violations", "group_violations", "violation_summary"]

VIOLATIONS_FILE = "taint_violations.jsonl"
VIOLATIONS_MAX_BYTES = 10 * 1024 * 1024
TAIL_BYTES = 64 * 1024  # enough to hold the newest line


class Violation(BaseModel):
    """A canary seen where it must not be, and why (one sentence per rule broken)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    fingerprint: str
    kind: str
    tier: str
    origin: str = Field(description="The node the canary was seeded at.")
    node: str = Field(description="Where it was seen.")
    direction: Literal["request", "response", "log"]
    edge: str = Field(description="What it crossed: 'a -> b', 'a|b -> c' (several callers), 'client -> a' "
                                  "(an ingress), 'a -> log'.")
    reasons: list[str]
    trace_id: str = ""
    method: str = ""
    path: str = ""
    time: float = Field(default=0.0, description="When it was seen (epoch seconds).")
    detected_at: float = Field(default=0.0, description="When it was judged.")
    source: Literal["adapter", "log"] = "adapter"


def _path(state_dir: Path) -> Path:
    return Path(state_dir) / VIOLATIONS_FILE


def append_violations(state_dir: Path, violations: Iterable[Violation]) -> None:
    append_lines(_path(state_dir), (v.model_dump() for v in violations), max_bytes=VIOLATIONS_MAX_BYTES)


def load_violations(state_dir: Path) -> tuple[list[Violation], int]:
    """Every recorded violation, oldest first (the rotated file first), and the number of unusable lines."""
    lines = read_lines(_path(state_dir), rotated=True)
    found, corrupt = [], lines.corrupt
    for record in lines.records:
        try:
            found.append(Violation.model_validate(record))
        except ValidationError:
            corrupt += 1
    return found, corrupt


def clear_violations(state_dir: Path) -> int:
    """Forget every violation; returns how many there were."""
    count = violation_summary(state_dir)["count"]
    rewrite_lines(_path(state_dir), (), rotated=True)
    return count


def violation_summary(state_dir: Path) -> dict[str, Any]:
    """How many violations are recorded and the newest, without parsing the others (``baton status``)."""
    path = _path(state_dir)
    count = 0
    for one in (path.with_name(path.name + ".1"), path):
        try:
            with one.open("rb") as handle:
                count += sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))
        except OSError:
            continue
    last = None
    for record in reversed(tail_lines(path, TAIL_BYTES).records):
        try:
            last = Violation.model_validate(record).model_dump()
            break
        except ValidationError:
            continue
    return {"count": count, "last": last}


def group_violations(violations: Sequence[Violation]) -> list[dict[str, Any]]:
    """Grouped by (edge, kind): count, first and last time seen, the canaries, their origins, up to five trace
    ids and the distinct reasons; the most frequent first."""
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    for v in violations:
        group = groups.setdefault((v.edge, v.kind), {
            "edge": v.edge, "kind": v.kind, "tier": v.tier, "node": v.node, "count": 0, "first": v.time,
            "last": v.time, "directions": [], "origins": [], "fingerprints": [], "trace_ids": [], "reasons": []})
        group["count"] += 1
        group["first"] = min(group["first"], v.time)
        group["last"] = max(group["last"], v.time)
        for key, value in (("directions", v.direction), ("origins", v.origin), ("fingerprints", v.fingerprint)):
            if value not in group[key]:
                group[key].append(value)
        if v.trace_id and v.trace_id not in group["trace_ids"] and len(group["trace_ids"]) < 5:
            group["trace_ids"].append(v.trace_id)
        for reason in v.reasons:
            if reason not in group["reasons"] and len(group["reasons"]) < 10:
                group["reasons"].append(reason)
    return sorted(groups.values(), key=lambda g: (-g["count"], g["edge"], g["kind"]))
