"""How far an adapter's ring of recent records (signals, service events) has been read: pure.

An adapter keeps its most recent signals and service events in rings of fixed size and hands them out oldest
first, each stamped with the adapter's ``timestamp``. Signals are numbered too (``GET /signals?since=SEQ``):
for them the cursor keeps the adapter process's ``instance`` and the last number read (``seq``), and a reader
asks for what follows. Service events carry no number: a cursor remembers the timestamp of the newest record
already written and how many records carry exactly that timestamp, so a window of the ring read again yields
only what is new (no record twice), and says whether the window reached back to what was already written (if
not, records may have fallen off the ring between two reads). The timestamps also guard signals after a
restart of the reader: what the file's end holds moves the cursor past records a saved ``seq`` predates.

Within one ring timestamps never decrease (records are appended in the order they are stamped).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

__all__ = ["RingCursor", "Split", "split_window"]


@dataclass(frozen=True)
class RingCursor:
    """``ts``: the newest timestamp written (None: nothing yet); ``at_ts``: how many written records carry it;
    ``instance``: the adapter process whose numbers ``seq`` counts (another one numbers from 1 again); ``seq``:
    the number of the last record read; ``dropped``: records lost before they were read, over the cursor's
    life."""

    ts: float | None = None
    at_ts: int = 0
    instance: str = ""
    seq: int = 0
    dropped: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"ts": self.ts, "at_ts": self.at_ts, "instance": self.instance, "seq": self.seq,
                "dropped": self.dropped}

    @classmethod
    def from_json(cls, data: Any) -> RingCursor:
        if not isinstance(data, dict):
            return cls()
        ts = data.get("ts")
        return cls(ts=float(ts) if isinstance(ts, (int, float)) else None, at_ts=int(data.get("at_ts") or 0),
                   instance=str(data.get("instance") or ""), seq=int(data.get("seq") or 0),
                   dropped=int(data.get("dropped") or 0))

    def after(self, records: Sequence[dict[str, Any]]) -> RingCursor:
        """The cursor once ``records`` (new ones, oldest first) are written."""
        if not records:
            return self
        newest = _ts(records[-1])
        same = sum(1 for r in records if _ts(r) == newest)
        return replace(self, ts=newest, at_ts=same + (self.at_ts if newest == self.ts else 0))

    def ahead(self, ts: float, at_ts: int) -> RingCursor:
        """This cursor moved to (``ts``, ``at_ts``) when that is further (what a file holds that the saved cursor
        missed: a crash between the append and the cursor's save)."""
        if self.ts is None or ts > self.ts or (ts == self.ts and at_ts > self.at_ts):
            return replace(self, ts=ts, at_ts=at_ts)
        return self


@dataclass(frozen=True)
class Split:
    """A window of a ring split at the cursor: the new records, and whether the window reached back to records
    already written (``covered``; always True for a cursor that has written nothing and a whole ring)."""

    new: tuple[dict[str, Any], ...]
    covered: bool


def _ts(record: dict[str, Any]) -> float:
    value = record.get("timestamp")
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0


def split_window(cursor: RingCursor, window: Sequence[dict[str, Any]]) -> Split:
    """The records of ``window`` (a ring's last records, oldest first) that ``cursor`` has not written.

    Records older than the cursor's timestamp are old; of those at exactly its timestamp the first ``at_ts`` are
    old (when the window starts inside that group, fewer may be: then some of the group's records are taken as
    old that were not, never the reverse, so nothing is written twice)."""
    if cursor.ts is None:
        return Split(tuple(window), covered=True)
    new: list[dict[str, Any]] = []
    same_seen = 0
    for record in window:
        ts = _ts(record)
        if ts < cursor.ts:
            continue
        if ts == cursor.ts:
            same_seen += 1
            if same_seen <= cursor.at_ts:
                continue
        new.append(record)
    covered = bool(window) and (_ts(window[0]) < cursor.ts or (_ts(window[0]) == cursor.ts and cursor.at_ts > 0))
    return Split(tuple(new), covered=covered or not window)
