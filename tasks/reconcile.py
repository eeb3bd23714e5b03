"""Reconciliation: what runs (every lease of the project, every pending slot) against what ``state.json``
names (node services, routing targets, warm versions, adapter hosts), after a command was cut short.

A lease state names is left alone (whether its process still runs is the custodian's business). A process
state does not name is adopted when the node's adapter routes to it (the flow that started it was killed
between switching the adapter and recording the switch): it becomes the node's service (or the routing
target the adapter calls it), and what state named there before is retired. Any other such process is
stopped and its lease released; a lease whose process is gone is deleted. Pending slots (started or
retired by a flow that never recorded or stopped them) are settled the same way.

``reconcile`` is ``observe`` (leases, their processes, the adapters' routes) -> ``decide`` (pure) ->
``apply``. It is a plain function, without Prefect: the conductor calls it as it starts and the flow runner
before every flow, always under the project lock. The helpers below keep the ledger of who names what for
the tasks that record and retire services.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from baton import leases
from baton.leases import Lease
from baton.processes import ProcessRecord, stop_group
from baton.state import CircuitState, CollapseLevel, ProcessInfo, ServiceSlot, now_iso

__all__ = ["Route", "Adoption", "Reconciliation", "reconcile", "decide", "named_slots", "named_leases", "retire",
           "note_live_nodes"]

log = logging.getLogger(__name__)


# -- the ledger ------------------------------------------------------------------------------------------------


def named_slots(state: CircuitState) -> list[ServiceSlot]:
    """Every service state names as running: node services, routing targets, warm versions (not ``pending``)."""
    slots = [n.service for n in state.adapters.values() if not n.service.is_mock]
    slots += [t for n in state.adapters.values() for t in n.targets.values()]
    return slots + [n.warm for n in state.adapters.values() if n.warm is not None]


def named_leases(state: CircuitState) -> set[str]:
    """The ids of the leases state names (services and adapter hosts)."""
    paths = [s.lease for s in named_slots(state)] + [h.lease for h in state.hosts.values()]
    return {leases.lease_id(p) for p in paths if p}


def retire(state: CircuitState, slot: ServiceSlot | None) -> bool:
    """Keep a service that state stops naming recorded in ``pending`` until it is stopped (``settle``).
    Nothing to do for a mock, or for a process state still names elsewhere."""
    if slot is None or slot.is_mock:
        return False
    if any(slot.same_as(s) for s in named_slots(state)) or any(slot.same_as(p) for p in state.pending):
        return False
    state.pending.append(slot)
    return True


def note_live_nodes(state: CircuitState, config: Any) -> None:
    """Recompute ``live_nodes`` and ``collapse_level`` from the node services state names."""
    live = {n for n, s in state.adapters.items() if not s.service.is_mock}
    state.live_nodes = sorted(live)
    eligible = {n.name for n in config.nodes if n.role.value != "egress"}
    state.collapse_level = (CollapseLevel.FULL_MOCK if not live else
                            CollapseLevel.FULL_LIVE if eligible <= live else CollapseLevel.PARTIAL)


# -- deciding (pure) -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    """One backend a node's adapter sends traffic to; ``target`` is "" for a single backend (the node's
    service), else the routing target's name."""

    target: str
    host: str
    port: int


@dataclass(frozen=True)
class Adoption:
    node: str
    target: str
    slot: ServiceSlot
    lease: Lease


@dataclass
class Reconciliation:
    adopt: list[Adoption] = field(default_factory=list)
    stop: list[tuple[Lease, ProcessRecord]] = field(default_factory=list)
    stop_slots: list[ServiceSlot] = field(default_factory=list)
    forget: list[Lease] = field(default_factory=list)
    settle: list[ServiceSlot] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.adopt or self.stop or self.stop_slots or self.forget or self.settle)


def _slot_of(lease: Lease, process: ProcessRecord) -> ServiceSlot | None:
    """What state would have recorded for a leased service (None when it was never described)."""
    if not lease.details:
        return None
    try:
        slot = ServiceSlot.model_validate(dict(lease.details))
    except ValueError:
        return None
    info = ProcessInfo(pid=process.pid, pgid=process.pgid, start_ticks=process.start_ticks, argv=list(process.argv))
    return slot.model_copy(update={"process": info, "lease": str(lease.path), "is_mock": False})


PRIMARY_TARGETS = frozenset({"primary", "stable", "a"})  # how routing names the node's own service


def _routed_as(slot: ServiceSlot, routes: Iterable[Route] | None) -> str | None:
    """Where ``routes`` send traffic to ``slot``: "" as the node's service, a routing target's name, or None."""
    for route in routes or ():
        if (route.host, route.port) == (slot.host, slot.port):
            return "" if route.target in PRIMARY_TARGETS else route.target
    return None


def decide(state: CircuitState, found: Iterable[Lease], processes: Mapping[str, ProcessRecord | None],
           routes: Mapping[str, list[Route] | None]) -> Reconciliation:
    """What to adopt, stop, forget and settle. ``processes``: lease id -> its live process (None: gone);
    ``routes``: node -> what its adapter routes to (None: the adapter did not answer)."""
    plan = Reconciliation()
    named = named_leases(state)
    by_id = {lease.id: lease for lease in found}
    for lease in by_id.values():
        if lease.id in named:
            continue
        process = processes.get(lease.id)
        if process is None:
            plan.forget.append(lease)
            continue
        slot = _slot_of(lease, process) if lease.kind == leases.SERVICE else None
        target = _routed_as(slot, routes.get(lease.node)) if slot is not None else None
        if slot is not None and target is not None:
            plan.adopt.append(Adoption(lease.node, target, slot, lease))
        else:
            plan.stop.append((lease, process))
    for slot in state.pending:
        plan.settle.append(slot)
        if any(slot.same_as(s) for s in named_slots(state)):
            continue  # recorded after all
        if not (slot.lease and leases.lease_id(slot.lease) in by_id):
            plan.stop_slots.append(slot)  # no lease of its own (docker, an older Baton): stopped as before
    return plan


def candidate_nodes(state: CircuitState, found: Iterable[Lease],
                    processes: Mapping[str, ProcessRecord | None]) -> set[str]:
    """Nodes whose adapter must be asked where it routes: those of running, described, unnamed services."""
    named = named_leases(state)
    return {lease.node for lease in found if lease.kind == leases.SERVICE and lease.id not in named
            and lease.details and processes.get(lease.id) is not None}


# -- observing and applying ------------------------------------------------------------------------------------


def _routes(circuit: Any, node: str) -> list[Route] | None:
    """Where ``node``'s adapter sends traffic now (None when the node is unknown or its adapter is silent)."""
    from baton.control import ControlClient, ControlError

    if circuit.config.node(node) is None:
        return None
    client = ControlClient.for_node(circuit.config, node, timeout_s=2.0, connect_attempts=1,
                                    state_dir=circuit.state_dir)
    try:
        status = client.request_sync("GET", "/status")
    except (ControlError, ValueError):
        return None
    backend = (status or {}).get("backend") or {}
    if "targets" in backend:
        return [Route(str(t.get("name") or ""), t["host"], int(t["port"])) for t in backend["targets"]
                if not t.get("mock") and "port" in t]
    if backend.get("mock") or "port" not in backend:
        return []
    return [Route("", backend["host"], int(backend["port"]))]


def _adopt(state: CircuitState, adoption: Adoption) -> ServiceSlot | None:
    """Record an adopted service where the adapter uses it; returns what state named there before."""
    node_state = state.node(adoption.node)
    if adoption.target:
        previous = node_state.targets.get(adoption.target)
        node_state.targets[adoption.target] = adoption.slot
    else:
        previous = node_state.service
        node_state.service = adoption.slot
    node_state.updated_at = now_iso()
    state.settle(adoption.slot)
    if previous is not None and not previous.is_mock and not previous.same_as(adoption.slot):
        return previous
    return None


def _describe(lease: Lease, process: ProcessRecord | None = None) -> dict[str, Any]:
    return {"lease": lease.id, "kind": lease.kind, "node": lease.node or lease.host_id, "purpose": lease.purpose,
            "pid": process.pid if process else lease.pid, "flow_run_id": lease.flow_run_id}


def reconcile(root: str) -> dict[str, Any]:
    """Adopt or stop whatever runs without state naming it, delete leases of processes that are gone, and
    settle ``state.pending``. The caller holds the project lock. Returns what was adopted and stopped."""
    from tasks.context import open_circuit

    circuit = open_circuit(root)
    state = circuit.state()
    found = leases.all(circuit.state_dir)
    if not found and not state.pending:
        return {"adopted": [], "stopped": [], "forgotten": []}
    named = named_leases(state)
    unnamed = [lease for lease in found if lease.id not in named]
    processes = {lease.id: leases.process_of(lease, {}) for lease in unnamed}  # by the recorded pid
    if any(process is None for process in processes.values()):  # never attached, or its leader exited
        scan = leases.carriers(circuit.state_dir)
        processes = {lease.id: processes[lease.id] or leases.process_of(lease, scan) for lease in unnamed}
    routes = {node: _routes(circuit, node) for node in candidate_nodes(state, found, processes)}
    plan = decide(state, found, processes, routes)
    report: dict[str, Any] = {"adopted": [], "stopped": [], "forgotten": []}
    if plan.empty:
        return report

    retired: list[ServiceSlot] = []
    for adoption in plan.adopt:
        previous = _adopt(state, adoption)
        report["adopted"].append({**_describe(adoption.lease), "target": adoption.target or "service",
                                  "port": adoption.slot.port})
        if previous is not None:
            retire(state, previous)
            retired.append(previous)
    if plan.adopt:
        note_live_nodes(state, circuit.config)
    for slot in plan.settle:
        if not any(slot.same_as(s) for s in plan.stop_slots):  # those stay pending until stopped
            state.settle(slot)
    circuit.store.save(state)  # what is adopted is named before anything is stopped

    for lease, process in plan.stop:
        stop_group(process, timeout=10)
        leases.release(lease.path)
        report["stopped"].append(_describe(lease, process))
    for lease in plan.forget:
        leases.release(lease.path)
        report["forgotten"].append(lease.id)
    if plan.stop_slots or retired:
        provider = circuit.provider(state)
        for slot in [*plan.stop_slots, *retired]:
            provider.stop_service(slot)
            report["stopped"].append({"lease": leases.lease_id(slot.lease) if slot.lease else "",
                                      "kind": leases.SERVICE, "port": slot.port,
                                      "pid": slot.process.pid if slot.process else 0, "container": slot.container})
        state = circuit.state()
        for slot in [*plan.stop_slots, *retired]:
            state.settle(slot)
        circuit.store.save(state)
    if plan.adopt or plan.stop or plan.stop_slots:
        log.warning("reconciled %s: adopted %s; stopped %s", circuit.config.name,
                    [f"{a['node']}:{a['target']}" for a in report["adopted"]] or "nothing",
                    [s.get("node") or s.get("port") for s in report["stopped"]] or "nothing")
    return report
