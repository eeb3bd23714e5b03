"""Where a node saw an active canary: the sighting record and the bounded ring ``GET /taint`` pages through.

Sequence numbers grow by one per sighting for the life of the adapter process (a new ring continues from the
last number of the one it replaces), so a reader keeps one cursor per ``instance`` and asks for what follows it.
"""

from __future__ import annotations

import itertools
from collections import deque
from dataclasses import dataclass
from typing import Any

__all__ = ["MAX_PAGE", "RING_SIZE", "Sighting", "SightingRing"]

RING_SIZE = 10_000
MAX_PAGE = 1_000  # sightings per GET /taint


@dataclass(frozen=True, slots=True)
class Sighting:
    """An active canary in one part of one exchange (``direction``: request = into the node, response = out)."""

    seq: int
    fingerprint: str
    kind: str
    node: str
    direction: str  # request | response
    part: str  # header | body
    header: str  # the header's name (":path" for the request target), empty for a body
    trace_id: str
    method: str
    path: str
    target: str  # the name of the routing target that answered (as in GET /routing), "-" when none did
    status: int
    time: float

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq, "fingerprint": self.fingerprint, "kind": self.kind, "node": self.node,
            "direction": self.direction, "part": self.part, "header": self.header, "trace_id": self.trace_id,
            "method": self.method, "path": self.path, "target": self.target, "status": self.status,
            "time": self.time,
        }


class SightingRing:
    """The last ``size`` sightings; ``dropped`` counts those evicted before any reader was given them."""

    __slots__ = ("size", "items", "seq", "read", "dropped")

    def __init__(self, size: int = RING_SIZE, seq: int = 0) -> None:
        self.size = size
        self.items: deque[Sighting] = deque()
        self.seq = seq  # the number of the newest sighting (0: none yet)
        self.read = seq  # the highest number handed to a reader
        self.dropped = 0

    def __len__(self) -> int:
        return len(self.items)

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def append(self, sighting: Sighting) -> None:
        items = self.items
        if len(items) >= self.size:
            evicted = items.popleft()
            if evicted.seq > self.read:
                self.dropped += 1
        items.append(sighting)

    def since(self, seq: int, limit: int = MAX_PAGE) -> list[Sighting]:
        """Up to ``limit`` sightings numbered above ``seq``, oldest first (numbers in the ring are consecutive)."""
        items = self.items
        if not items or seq >= items[-1].seq:
            return []
        start = max(0, seq - items[0].seq + 1)
        page = list(itertools.islice(items, start, start + limit))
        if page and page[-1].seq > self.read:
            self.read = page[-1].seq
        return page
