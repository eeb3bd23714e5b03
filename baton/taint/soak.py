"""The taint soak test, its pure parts: where canaries are seeded, which requests carry them, and the report.

A soak seeds canaries, drives traffic made from the contracts through the circuit, and reports every canary
that crossed a boundary it should not have (the judging is :mod:`baton.taint.judge`'s). Seeded data reaches
the circuit the way a user's would:

- an **ingress** node receives its canaries in the requests of its clients (the soak is that client);
- a **live** node receives its canaries in requests sent straight to its adapter (the data it holds comes
  from somewhere; the soak stands for that somewhere). Requests are generated from the node's contract with
  the canaries in the fields of their kind (``MockEngine.seed_canaries(..., direction="request")``: the same
  judgement of fields as a mock's responses). Those requests carry a trace id that starts with
  :data:`SEED_TRACE_PREFIX`, which the judge knows as the seeding hop itself, never a violation;
- a **mocked** node puts its canaries in the fields of its generated responses that take their format
  (the adapter does it, from the seeds it is given).

Which nodes hold which data: an ingress node every kind of the tiers asked for (clients send anything); any
other node the kinds whose tier its ``data_access`` declares (reads or writes), or every kind when the node is
named with ``--node``.
"""

from __future__ import annotations

import secrets
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, Field

from baton.config import CircuitConfig
from baton.config.topology import NodeRole
from baton.errors import BatonError, UsageError
from baton.taint.judge import SEED_TRACE_PREFIX

__all__ = [
    "SEED_TRACE_PREFIX",
    "SoakFailed",
    "SoakReport",
    "SoakTarget",
    "carries",
    "failure_summary",
    "render_markdown",
    "seed_plan",
    "seeding_traceparent",
    "soak_targets",
    "summarize",
]


_KINDS = ("email", "name", "ssn", "card", "phone")
_TIERS = {"email": "PII", "name": "PII", "ssn": "PII", "card": "FINANCIAL", "phone": "PII"}


def seed_plan(config: CircuitConfig, *, nodes: Sequence[str], tiers: Sequence[str]) -> dict[str, list[str]]:
    """Node -> the kinds of canary seeded there (see the module's docstring); nodes with none are left out."""
    known = {n.name for n in config.nodes}
    unknown = [n for n in nodes if n not in known]
    if unknown:
        raise UsageError(f"no node named {unknown[0]!r} in baton.yaml; known nodes: {', '.join(sorted(known))}.")
    wanted = {t.upper() for t in tiers}
    kinds = [k for k in _KINDS if _TIERS[k] in wanted]
    if not kinds:
        raise UsageError(f"no canary kind has tier {', '.join(sorted(wanted))}; the tiers are PII (email, name, ssn, "
                         "phone) and FINANCIAL (card).")
    plan: dict[str, list[str]] = {}
    for node in config.nodes:
        if nodes and node.name not in nodes:
            continue
        if node.role == NodeRole.INGRESS or node.name in nodes:
            chosen = kinds
        else:
            held = {t.upper() for t in (*node.data_access.reads, *node.data_access.writes)}
            chosen = [k for k in kinds if _TIERS[k] in held]
        if chosen:
            plan[node.name] = chosen
    if not plan:
        raise UsageError(f"no node of the circuit takes {', '.join(sorted(wanted))} data: no ingress node, and no "
                         "node declares it in data_access; name nodes with --node.")
    return plan


@dataclass(frozen=True)
class SoakTarget:
    """A node the soak sends requests to, and the canaries (kind -> values) those requests carry."""

    node: str
    url: str
    contract: str
    canaries: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    seeding: bool = False  # a live non-ingress node: its requests are the seeding hop


def soak_targets(config: CircuitConfig, *, live: Iterable[str], canaries: Sequence[Mapping[str, Any]],
                 url_of: Mapping[str, str], root: str = "") -> list[SoakTarget]:
    """Every ingress node, and every live node that has canaries of its own; ``url_of``: node -> data URL."""
    from pathlib import Path

    live = set(live)
    by_origin: dict[str, dict[str, list[str]]] = {}
    for canary in canaries:
        by_origin.setdefault(canary["origin"], {}).setdefault(canary["kind"], []).append(canary["value"])
    targets = []
    for node in config.nodes:
        ingress = node.role == NodeRole.INGRESS
        own = by_origin.get(node.name, {})
        if not ingress and not (node.name in live and own):
            continue
        contract = node.spec_path
        if contract and root and not Path(contract).is_absolute():
            contract = str(Path(root) / contract)
        targets.append(SoakTarget(node.name, url_of[node.name], contract,
                                  {k: tuple(v) for k, v in own.items()}, seeding=not ingress))
    return targets


def carries(body: bytes | None, values: Iterable[str]) -> bool:
    """Whether a request body holds one of the canary ``values`` (as the generator wrote it)."""
    return bool(body) and any(v.encode("utf-8") in body for v in values)


def seeding_traceparent() -> str:
    """A W3C traceparent whose trace id marks a seeding request."""
    return f"00-{SEED_TRACE_PREFIX}{secrets.token_hex(12)}-{secrets.token_hex(8)}-01"


class SoakReport(BaseModel):
    """What a soak found (``baton test --canary --json`` prints it; the run keeps it as an artifact)."""

    circuit: str
    passed: bool = Field(description="True when no canary crossed a boundary it should not have.")
    started_at: float
    ended_at: float
    duration_s: float = Field(description="How long traffic was driven.")
    rate: float = Field(description="Requests per second asked for.")
    tiers: list[str]
    canaries: list[dict[str, Any]] = Field(description="Each canary seeded: fingerprint, kind, tier, origin, value.")
    requests: dict[str, Any] = Field(description="sent, failed (no answer), carrying (with a canary), by_node.")
    violations: dict[str, Any] = Field(description="total, by_edge {edge: {kind: n}}, by_kind, first (up to 50).")


def summarize(*, circuit: str, tiers: Sequence[str], rate: float, started_at: float, ended_at: float,
              duration_s: float, canaries: Sequence[Mapping[str, Any]], sent: Mapping[str, Mapping[str, int]],
              violations: Sequence[Mapping[str, Any]]) -> SoakReport:
    """The report of a soak from what it seeded, sent and found."""
    by_edge: dict[str, Counter[str]] = {}
    for violation in violations:
        by_edge.setdefault(str(violation.get("edge", "?")), Counter())[str(violation.get("kind", "?"))] += 1
    by_kind = Counter(str(v.get("kind", "?")) for v in violations)
    requests = {
        "sent": sum(n.get("sent", 0) for n in sent.values()),
        "failed": sum(n.get("failed", 0) for n in sent.values()),
        "carrying": sum(n.get("carrying", 0) for n in sent.values()),
        "by_node": {node: dict(counts) for node, counts in sorted(sent.items())},
    }
    keep = ("fingerprint", "kind", "tier", "origin", "value")
    return SoakReport(
        circuit=circuit, passed=not violations, started_at=started_at, ended_at=ended_at,
        duration_s=round(duration_s, 3), rate=rate, tiers=list(tiers),
        canaries=[{k: c.get(k) for k in keep} for c in canaries], requests=requests,
        violations={"total": len(violations), "by_edge": {e: dict(k) for e, k in sorted(by_edge.items())},
                    "by_kind": dict(sorted(by_kind.items())), "first": [dict(v) for v in violations[:50]]},
    )


def render_markdown(report: SoakReport) -> str:
    """The report as the run's markdown artifact."""
    verdict = "passed: no canary crossed a boundary" if report.passed else \
        f"**FAILED: {report.violations['total']} violation(s)**"
    lines = [f"## Taint soak of {report.circuit}: {verdict}", "",
             f"{report.duration_s:.0f} s at {report.rate:g} req/s, tiers {', '.join(report.tiers)}: "
             f"{report.requests['sent']} requests sent ({report.requests['carrying']} carrying canaries, "
             f"{report.requests['failed']} unanswered), {len(report.canaries)} canaries seeded.", ""]
    if not report.passed:
        lines += ["| edge | kind | violations |", "|---|---|---|"]
        for edge, kinds in report.violations["by_edge"].items():
            lines += [f"| {edge} | {kind} | {count} |" for kind, count in sorted(kinds.items())]
        lines += ["", "First violations:", ""]
        for item in report.violations["first"][:10]:
            reasons = "; ".join(item.get("reasons") or [])
            lines.append(f"- {item.get('kind')} canary `{item.get('fingerprint')}` from {item.get('origin')} at "
                         f"{item.get('node')} ({item.get('direction')}, trace {item.get('trace_id') or '-'}): {reasons}")
        lines.append("")
    lines += ["| node | requests | carrying canaries | unanswered |", "|---|---|---|---|"]
    lines += [f"| {node} | {n.get('sent', 0)} | {n.get('carrying', 0)} | {n.get('failed', 0)} |"
              for node, n in report.requests["by_node"].items()]
    lines += ["", "| canary | kind | tier | origin |", "|---|---|---|---|"]
    lines += [f"| `{c['value']}` | {c['kind']} | {c['tier']} | {c['origin']} |" for c in report.canaries]
    return "\n".join(lines) + "\n"


class SoakFailed(BatonError):
    """The soak found canaries where they should not be."""


def failure_summary(report: SoakReport) -> str:
    """One sentence: how many violations, where (edge: kinds), and where the report is."""
    edges = "; ".join(f"{edge}: " + ", ".join(f"{kind} x{n}" for kind, n in sorted(kinds.items()))
                      for edge, kinds in report.violations["by_edge"].items())
    return (f"the taint soak found {report.violations['total']} violation(s) ({edges}); the report is in "
            ".baton/taint_report.json and on the run (`baton history show taint-soak`).")
