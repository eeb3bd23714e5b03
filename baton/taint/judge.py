"""Whether a sighting is a violation, and why (pure).

The *receiver* of a sighting at node X is who got the data: X itself for a request; X's caller for a
response (when X has callers: with several, the check fails only when every one of them is outside the
scope; an ingress answers a client, which is not judged). It must be inside the canary's scope (its origin
and the origin's neighbours).

The *edge* is the call it crossed, caller -> X: ``a -> X`` with one caller, ``a|b -> X`` with several (the
check passes when any of them admits the tier), ``client -> X`` with none (no edge to check). An edge admits
tier t when t is in its ``data_tiers_in_flight``, or, when it declares none, when the node receiving the data
(X for a request, the caller for a response) reads or writes t (``data_access``).

A canary in a service's log is always a violation: data of a tier must not be logged (edge ``X -> log``).

The seeding hop is not judged: a request into a canary's own origin whose trace id starts with
:data:`SEED_TRACE_PREFIX` is the soak test handing a live node the data it holds (:mod:`baton.taint.soak`).
"""

from __future__ import annotations

from typing import Any

from baton.taint.registry import Canary
from baton.taint.sighting import Sighting
from baton.taint.violations import Violation

__all__ = ["judge", "edge_of", "SEED_TRACE_PREFIX"]

SEED_TRACE_PREFIX = "5eed5eed"


def _callers(config: Any, node: str) -> list[Any]:
    return [e for e in config.edges if e.target == node]


def edge_of(config: Any, node: str) -> str:
    """The name of the call a sighting at ``node`` crossed (see the module's documentation)."""
    callers = _callers(config, node)
    if not callers:
        return f"client -> {node}"
    return f"{'|'.join(e.source for e in callers)} -> {node}"


def _reads_or_writes(config: Any, name: str, tier: str) -> bool:
    node = config.node(name)
    if node is None:
        return False
    access = node.data_access
    return tier in access.reads or tier in access.writes


def _edge_verdict(config: Any, edge: Any, tier: str, receiver: str) -> str | None:
    """Why ``edge`` does not admit ``tier`` (None when it does)."""
    name = f"{edge.source} -> {edge.target}"
    if edge.data_tiers_in_flight:
        if tier in edge.data_tiers_in_flight:
            return None
        return f"{name} carries {', '.join(edge.data_tiers_in_flight)}, not {tier}"
    if _reads_or_writes(config, receiver, tier):
        return None
    return f"{name} declares no data tiers and {receiver} does not read or write {tier}"


def _scope_reason(canary: Canary, sighting: Sighting, receivers: list[str]) -> str | None:
    outside = [r for r in receivers if r not in canary.scope]
    if not receivers or len(outside) < len(receivers):
        return None
    where = f"{canary.tier} canary of {canary.origin}"
    scope = ", ".join(canary.scope)
    if sighting.direction == "request":
        return f"{where} seen at {sighting.node}, outside its scope {scope}"
    if len(receivers) == 1:
        return f"{where} sent by {sighting.node} back to {receivers[0]}, outside its scope {scope}"
    return f"{where} sent by {sighting.node} back to its callers {', '.join(receivers)}, all outside its scope {scope}"


def _tier_reason(config: Any, canary: Canary, sighting: Sighting, callers: list[Any]) -> str | None:
    verdicts = []
    for edge in callers:
        receiver = edge.target if sighting.direction == "request" else edge.source
        verdict = _edge_verdict(config, edge, canary.tier, receiver)
        if verdict is None:
            return None
        verdicts.append(verdict)
    if len(verdicts) == 1:
        return f"edge {verdicts[0]}"
    return f"no edge into {sighting.node} admits {canary.tier} ({'; '.join(verdicts)})"


def judge(config: Any, canary: Canary, sighting: Sighting, *, detected_at: float = 0.0) -> Violation | None:
    """The violation ``sighting`` of ``canary`` is under ``config`` (a CircuitConfig), or None."""
    node = sighting.node
    if sighting.direction == "log":
        part = sighting.part or "output"
        reasons = [f"{canary.tier} canary of {canary.origin} printed to the {part} log of {node}: {canary.tier} "
                   "must not be logged"]
        return _violation(canary, sighting, f"{node} -> log", reasons, detected_at)
    if sighting.direction == "request" and node == canary.origin and sighting.trace_id.startswith(SEED_TRACE_PREFIX):
        return None  # the soak seeding a live node
    callers = _callers(config, node)
    if sighting.direction == "response":
        if not callers:
            return None  # an ingress answering its client
        receivers = [e.source for e in callers]
    else:
        receivers = [node]
    reasons = [r for r in (_scope_reason(canary, sighting, receivers),
                           _tier_reason(config, canary, sighting, callers) if callers else None) if r]
    if not reasons:
        return None
    return _violation(canary, sighting, edge_of(config, node), reasons, detected_at)


def _violation(canary: Canary, sighting: Sighting, edge: str, reasons: list[str], detected_at: float) -> Violation:
    return Violation(fingerprint=canary.fingerprint, kind=canary.kind, tier=canary.tier, origin=canary.origin,
                     node=sighting.node, direction=sighting.direction, edge=edge, reasons=reasons,
                     trace_id=sighting.trace_id, method=sighting.method, path=sighting.path, time=sighting.time,
                     detected_at=detected_at, source="log" if sighting.direction == "log" else "adapter")
