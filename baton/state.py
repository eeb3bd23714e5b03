"""Runtime state of a circuit, persisted as one JSON document in ``.baton/state.json``.

Written atomically (temp file + rename) under the project lock, so two
commands at once cannot corrupt it. Shapes follow the original Baton
(``collapse_level``, ``live_nodes``, ``adapters``) with what a local provider
needs to find its processes again from another command.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from baton.config.document import atomic_write_text
from baton.errors import ProjectError

__all__ = [
    "CollapseLevel",
    "ProcessInfo",
    "ServiceSlot",
    "probe_address",
    "CanaryRecord",
    "NodeState",
    "AdapterHost",
    "CircuitState",
    "StateStore",
    "now_iso",
]


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class CollapseLevel(StrEnum):
    FULL_MOCK = "full_mock"
    PARTIAL = "partial"
    FULL_LIVE = "full_live"


class ProcessInfo(BaseModel):
    """A process the provider started (see :class:`baton.processes.ProcessRecord`)."""

    pid: int
    pgid: int
    start_ticks: int
    argv: list[str] = Field(default_factory=list)


class ServiceSlot(BaseModel):
    """What runs behind a node's adapter (or a routing target of it)."""

    command: str = Field(default="", description="The command as the user gave it (before $VAR expansion).")
    argv: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict, description="The BATON_* variables it was started with.")
    is_mock: bool = True
    host: str = Field(default="127.0.0.1", description="Where the adapter reaches the service.")
    port: int = 0
    probe_host: str = Field(default="", description="Where the control plane reaches it, when that differs.")
    probe_port: int = 0
    process: ProcessInfo | None = None
    container: str = ""
    started_at: str = ""
    lease: str = Field(default="", description="The lease file recording this process until it is stopped "
                                               "(local provider; see baton.leases).")

    def same_as(self, other: ServiceSlot) -> bool:
        """The same running instance: one container, or one process (pid and start time)."""
        if self.container or other.container:
            return self.container == other.container
        return (self.process is not None and other.process is not None
                and (self.process.pid, self.process.start_ticks) == (other.process.pid, other.process.start_ticks))


def probe_address(slot: ServiceSlot) -> tuple[str, int]:
    """Where the control plane can reach a service (its adapter-facing address unless told otherwise)."""
    return (slot.probe_host or slot.host, slot.probe_port or slot.port)


class CanaryRecord(BaseModel):
    """A canary under analysis, persisted so whichever process comes next (the foreground flow,
    the scheduled tick, a restarted conductor) can advance it by exactly one evaluation."""

    command: str
    policy: dict[str, Any] = Field(description="The CanaryPolicy fields (steps, thresholds, interval...).")
    gate_url: str | None = None
    keep_warm_s: float = Field(default=0.0, description="Keep the replaced version running this long after the end.")
    phase: str = "Progressing"
    weight: int = 0
    started_at: float = 0.0
    last_step_at: float = 0.0
    failed_checks: int = 0
    baseline: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="Cumulative per-target counters when the current window began.")
    decisions: list[dict[str, Any]] = Field(default_factory=list, description="The latest decisions, newest last.")
    concluded: bool = Field(default=False, description="Routing and services were put in their final shape.")
    actor: str = ""

    @property
    def in_flight(self) -> bool:
        return not self.concluded

    @property
    def last_reason(self) -> str:
        return self.decisions[-1]["reason"] if self.decisions else ""


class NodeState(BaseModel):
    node_name: str
    host_id: str = Field(default="", description="Which adapter host serves this node.")
    service: ServiceSlot = Field(default_factory=ServiceSlot)
    targets: dict[str, ServiceSlot] = Field(default_factory=dict, description="Extra versions for ab/canary.")
    routing: dict[str, Any] | None = None
    canary: CanaryRecord | None = None
    warm: ServiceSlot | None = Field(default=None, description="The replaced version, kept running for a revert.")
    warm_until: float = 0.0
    last_health_verdict: str = "unknown"
    updated_at: str = ""


class AdapterHost(BaseModel):
    """One adapter process (local) or container (docker) and the nodes it hosts."""

    host_id: str
    nodes: list[str]
    config_file: str = ""
    process: ProcessInfo | None = None
    containers: list[str] = Field(default_factory=list)
    network: str = ""
    started_at: str = ""
    lease: str = Field(default="", description="The lease file recording this process until it is stopped "
                                               "(local provider; see baton.leases).")


class CircuitState(BaseModel):
    circuit_name: str = "default"
    provider: str = "local"
    collapse_level: CollapseLevel = CollapseLevel.FULL_MOCK
    live_nodes: list[str] = Field(default_factory=list)
    hosts: dict[str, AdapterHost] = Field(default_factory=dict)
    adapters: dict[str, NodeState] = Field(default_factory=dict)
    pending: list[ServiceSlot] = Field(
        default_factory=list, description="Services started by a flow that has not yet recorded or stopped them."
    )
    started_at: str = ""
    updated_at: str = ""

    @property
    def running(self) -> bool:
        return bool(self.hosts)

    def settle(self, slot: ServiceSlot) -> None:
        """A pending service is now recorded or stopped."""
        self.pending = [p for p in self.pending if not p.same_as(slot)]

    def owned(self) -> list[ServiceSlot]:
        """Every service the circuit knows it started (including ones a crashed flow left pending)."""
        slots = [s.service for s in self.adapters.values() if not s.service.is_mock]
        slots += [t for s in self.adapters.values() for t in s.targets.values()]
        slots += [s.warm for s in self.adapters.values() if s.warm is not None]
        return slots + list(self.pending)

    def node(self, name: str) -> NodeState:
        return self.adapters.setdefault(name, NodeState(node_name=name))


class StateStore:
    """Read and write ``.baton/state.json``. Writers hold the project lock."""

    def __init__(self, state_dir: Path) -> None:
        self.path = Path(state_dir) / "state.json"

    def load(self) -> CircuitState:
        try:
            raw = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return CircuitState()
        try:
            return CircuitState.model_validate(json.loads(raw))
        except (ValueError, ValidationError) as exc:
            raise ProjectError(
                f"{self.path} is not a valid Baton state file ({type(exc).__name__}); "
                "run `baton down --force` to stop what it can find and start over."
            ) from None

    def save(self, state: CircuitState) -> None:
        state.updated_at = now_iso()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.path, state.model_dump_json(indent=2) + "\n")

    @contextlib.contextmanager
    def updating(self) -> Iterator[CircuitState]:
        """Load, let the caller change, save (the caller holds the project lock)."""
        state = self.load()
        yield state
        self.save(state)
