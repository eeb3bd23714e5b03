"""One node under custody: its status, counters and backoff, and the pure transitions between them.

    healthy -> failing -> restarting -> (healthy | failing ...) -> mocked -> faulted

Probe failures are counted from the last healthy probe and a restart does not reset them (the original
Baton reset its counter at each restart and so never reached its mock step); failed restarts are counted
apart and drive the backoff (1 s doubling, capped at 5 min, reset after 10 min healthy).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

__all__ = ["Status", "CustodyPolicy", "NodeCustody", "ESCALATED"]


class Status(StrEnum):
    WATCHING = "watching"  # slotted, no verdict yet
    HEALTHY = "healthy"
    FAILING = "failing"
    WAITING = "waiting"  # failing, but an unhealthy dependency explains it: not restarted
    RESTARTING = "restarting"
    RESTARTED = "restarted"  # the restart flow finished; the next probe confirms
    MOCKING = "mocking"
    MOCKED = "mocked"  # repeated restarts failed: served from its contract mock
    FAULTED = "faulted"  # escalated: not even the mock could be put in place
    DEGRADED = "degraded"  # healthy itself, but depends on a faulted node


ESCALATED = (Status.MOCKED, Status.FAULTED)
UNHEALTHY = (Status.FAILING, Status.WAITING, Status.RESTARTING, Status.RESTARTED, Status.MOCKING, Status.FAULTED)


@dataclass(frozen=True)
class CustodyPolicy:
    probe_interval_s: float = 5.0
    restart_after: int = 3  # consecutive failed probes
    mock_after: int = 6  # consecutive failed probes, once at least one restart failed
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 300.0
    backoff_reset_after_s: float = 600.0  # healthy this long: the backoff starts over
    history: int = 50  # decisions kept per node

    def __post_init__(self) -> None:
        if not 0 < self.restart_after <= self.mock_after:
            raise ValueError("restart_after must be positive and at most mock_after")
        if self.probe_interval_s <= 0 or self.backoff_initial_s <= 0 or self.backoff_max_s < self.backoff_initial_s:
            raise ValueError("probe interval and backoffs must be positive, the cap at least the initial backoff")


@dataclass
class NodeCustody:
    node: str
    status: Status = Status.WATCHING
    reason: str = "watching"
    paused: bool = False
    failures: int = 0  # consecutive failed probes since the last healthy one
    failed_restarts: int = 0
    restarts: int = 0
    backoff_s: float = 0.0  # the wait after the latest failed restart (0: none yet)
    next_attempt_at: float = 0.0
    healthy_since: float | None = None
    changed_at: float = 0.0
    incarnation: str = ""
    command: str = ""
    repair: dict[str, Any] | None = None  # the repair in flight: kind, id, started_at
    waiting_on: str = ""  # the dependency that explains its failures
    reobserve: bool = False  # state came from disk: decide nothing until a fresh probe
    exited: bool = False  # the latest failure was an exit: restart without waiting for more failures
    from_mock: bool = False  # a restart asked for by `heal resume` of a mocked node: it stays mocked if it fails
    history: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=50))

    def to_json(self) -> dict[str, Any]:
        return {"node": self.node, "status": self.status.value, "reason": self.reason, "paused": self.paused,
                "failures": self.failures, "failed_restarts": self.failed_restarts, "restarts": self.restarts,
                "backoff_s": self.backoff_s, "next_attempt_at": self.next_attempt_at,
                "healthy_since": self.healthy_since, "changed_at": self.changed_at, "incarnation": self.incarnation,
                "command": self.command, "repair": self.repair, "waiting_on": self.waiting_on,
                "from_mock": self.from_mock,
                "history": list(self.history)}

    @classmethod
    def from_json(cls, data: dict[str, Any], history: int = 50) -> NodeCustody:
        custody = cls(node=data["node"], status=Status(data.get("status", "watching")),
                      reason=data.get("reason", ""), paused=bool(data.get("paused")),
                      failures=int(data.get("failures", 0)), failed_restarts=int(data.get("failed_restarts", 0)),
                      restarts=int(data.get("restarts", 0)), backoff_s=float(data.get("backoff_s", 0.0)),
                      next_attempt_at=float(data.get("next_attempt_at", 0.0)),
                      healthy_since=data.get("healthy_since"), changed_at=float(data.get("changed_at", 0.0)),
                      incarnation=data.get("incarnation", ""), command=data.get("command", ""),
                      repair=data.get("repair"), waiting_on=data.get("waiting_on", ""),
                      from_mock=bool(data.get("from_mock")))
        custody.history = deque(data.get("history") or [], maxlen=history)
        return custody

    # -- transitions (the core calls these; each returns True when the node's status or reason changed) --

    def move(self, status: Status, reason: str, now: float) -> bool:
        if status == self.status and reason == self.reason:
            return False
        self.status, self.reason, self.changed_at = status, reason, now
        self.history.append({"at": now, "status": status.value, "reason": reason})
        return True

    def next_backoff(self, policy: CustodyPolicy) -> float:
        return policy.backoff_initial_s if self.backoff_s <= 0 else min(self.backoff_s * 2, policy.backoff_max_s)

    def restart_failed(self, policy: CustodyPolicy, now: float) -> None:
        self.failed_restarts += 1
        self.backoff_s = self.next_backoff(policy)
        self.next_attempt_at = now + self.backoff_s
