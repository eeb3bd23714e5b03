"""What the custodian hears: observations, timers, commands from the CLI, and results of its repairs."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Event", "ProbeResult", "Tick", "Command", "RepairFinished", "COMMANDS"]


@dataclass(frozen=True)
class ProbeResult:
    """One probe of a node's slotted service (observation). ``incarnation`` names the running instance
    (pid and start time, or container) so a result about an instance already replaced is ignored."""

    node: str
    ok: bool
    detail: str = ""
    incarnation: str = ""
    command: str = ""
    exited: bool = False  # the process or container is gone: it will not come back by itself


@dataclass(frozen=True)
class Tick:
    """The timer: backoffs expire, breakers half-open, long-healthy nodes get their backoff reset."""


COMMANDS = ("pause", "resume", "shutdown")


@dataclass(frozen=True)
class Command:
    """From the CLI: pause or resume healing of a node, or shut the core down."""

    kind: str
    node: str = ""


@dataclass(frozen=True)
class RepairFinished:
    """A repair flow the core launched has ended. ``blame`` says whose failure it was: ``service`` (the service
    would not come up) or ``provider`` (the machinery failed: the provider's breaker counts those)."""

    node: str
    kind: str  # restart | mock
    repair_id: str
    ok: bool
    detail: str = ""
    blame: str = "service"


Event = ProbeResult | Tick | Command | RepairFinished
