"""A node's taint state while scanning is on: its active canaries, its seeds, sightings and counters.

``Node.taint`` holds one (None while off, so the data plane pays one attribute check per hook). Each exchange
starts an :class:`~.scan.ExchangeScan` over it when its request head arrives; what the scans find comes back
through :meth:`TaintState.record` into the sighting ring that ``GET /taint`` pages through.
"""

from __future__ import annotations

from typing import Any

from .sightings import MAX_PAGE, Sighting, SightingRing
from .spec import TaintSpec

__all__ = ["TaintState", "report_off"]


class TaintState:
    """Scanning settings and findings of one node for one generation of canaries."""

    def __init__(self, node: str, spec: TaintSpec, ring: SightingRing | None = None) -> None:
        self.node = node
        self.ring = ring if ring is not None else SightingRing()
        self.requests = 0  # exchanges scanned (counted when they end)
        self.responses = 0  # response heads among them (a backend's or the mock's)
        self.bytes = 0  # header and body bytes scanned (decoded bytes for an encoded body)
        self.skipped = 0  # bodies whose scanning stopped early (over the decode limits, undecodable encoding)
        self.apply(spec)

    def apply(self, spec: TaintSpec) -> None:
        """Take ``spec``'s canaries (a repeated ``PUT`` of the same generation keeps sightings and counters)."""
        self.spec = spec
        self.generation = spec.generation
        self.kinds: dict[str, str] = dict(spec.canaries)  # fingerprint -> kind
        self.families = spec.families()  # fingerprint -> family
        self.seeded = len(spec.seed)

    def seed_values(self) -> dict[str, list[str]]:
        """The canary values this node's mock puts in its responses, by kind."""
        values: dict[str, list[str]] = {}
        for canary in self.spec.seed:
            values.setdefault(canary.kind, []).append(canary.value)
        return values

    def record(self, fingerprint: str, direction: str, part: str, header: str, trace_id: str, method: str,
               path: str, target: str, status: int, seen_at: float) -> None:
        ring = self.ring
        ring.append(Sighting(ring.next_seq(), fingerprint, self.kinds.get(fingerprint, ""), self.node, direction,
                             part, header, trace_id, method, path, target, status, seen_at))

    # -- views ----------------------------------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        return {"node": self.node, "enabled": True, "generation": self.generation, "canaries": len(self.kinds),
                "seeded": self.seeded}

    def scanned(self) -> dict[str, int]:
        return {"requests": self.requests, "responses": self.responses, "bytes": self.bytes, "skipped": self.skipped}

    def report(self, since: int, instance: str) -> dict[str, Any]:
        """The ``GET /taint`` answer: sightings numbered above ``since``, oldest first."""
        page = self.ring.since(since, MAX_PAGE)
        return self.summary() | {
            "instance": instance,
            "sightings": [s.to_json() for s in page],
            "next": page[-1].seq if page else since,
            "dropped": self.ring.dropped,
            "scanned": self.scanned(),
        }


def report_off(node: str, since: int, instance: str) -> dict[str, Any]:
    """The ``GET /taint`` answer of a node that is not scanning."""
    return {"node": node, "instance": instance, "enabled": False, "generation": None, "canaries": 0, "seeded": 0,
            "sightings": [], "next": since, "dropped": 0,
            "scanned": {"requests": 0, "responses": 0, "bytes": 0, "skipped": 0}}
