"""What the custodian hears: observations, timers, commands from the CLI, and results of its repairs."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Event", "ProbeResult", "ProbeRound", "ComponentProbe", "RoutingSeen", "Tick", "Command", "RepairFinished", "COMMANDS",
           "PREFECT", "adapter_component"]


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


PREFECT = "prefect"  # the Prefect API the conductor runs flows against


def adapter_component(host_id: str) -> str:
    return f"adapter:{host_id}"


@dataclass(frozen=True)
class ComponentProbe:
    """One look at a part of Baton itself: an adapter host (``adapter:<host>``) or the Prefect API
    (``prefect``). ``exited``: its process is gone (restart at once); otherwise it did not answer."""

    component: str
    ok: bool
    detail: str = ""
    exited: bool = False


@dataclass(frozen=True)
class RoutingSeen:
    """One look at a node's live routing, compared with what Baton recorded: ``drift`` says how it differs
    (a change made outside Baton), empty when it does not."""

    node: str
    drift: str = ""


@dataclass(frozen=True)
class ProbeRound:
    """A round of probes ended: ``watched`` were slotted and probed; any other node is no longer slotted
    (unslotted, or the circuit is down when not ``running``) and leaves custody, unless it was escalated
    (mocked or faulted: it stays so while the circuit runs) or a repair of it is in flight."""

    watched: tuple[str, ...]
    running: bool = True
    components: tuple[str, ...] | None = None  # the components looked at (None: keep the known ones)


@dataclass(frozen=True)
class Tick:
    """The timer: backoffs expire, breakers half-open, long-healthy nodes get their backoff reset."""


COMMANDS = ("pause", "resume", "cancel", "shutdown")


@dataclass(frozen=True)
class Command:
    """From the CLI: pause or resume healing of a node, cancel its repair in flight (and pause), or shut the core
    down."""

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
    cancelled: bool = False  # stopped by `baton heal cancel`: not a failed repair


Event = ProbeResult | ProbeRound | ComponentProbe | RoutingSeen | Tick | Command | RepairFinished
