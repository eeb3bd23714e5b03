"""The custodian's core: one bounded inbox, handlers that only update state, then dispatch, then persist.

    while not shutting_down:
        event = await inbox.get()
        handle(event)        # updates state only
        dispatch_ready()     # starts whatever became ready
        persist()            # save if dirty

The core decides *when* to repair, never *how*: ``launch`` (registered by the conductor) starts a repair
flow and later posts its :class:`RepairFinished`. Retries, backoff, the provider's concurrency limit, rate
limit and circuit breaker all live here, in plain state. The clock is injected, so tests drive it.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from baton.custodian.events import (
    PREFECT,
    Command,
    ComponentProbe,
    Event,
    ProbeResult,
    ProbeRound,
    RepairFinished,
    RoutingSeen,
    Tick,
)
from baton.custodian.machine import ESCALATED, CustodyPolicy, NodeCustody, Status

__all__ = ["CustodianCore", "RepairOrder", "ProviderGate", "COMPONENT_REPAIRS"]

# Baton's own parts are restarted, never mocked: after this many failed looks (or at once when the process exited)
COMPONENT_RESTART_AFTER = 2
DRIFT_CONFIRMATIONS = 2  # looks in a row that must see the same change made outside Baton before it is reported
COMPONENT_REPAIRS = {"adapter": "restart-adapter", PREFECT: "restart-prefect"}
SERVING = (Status.HEALTHY, Status.WATCHING)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RepairOrder:
    node: str
    kind: str  # restart | mock
    repair_id: str
    reason: str
    command: str = ""


@dataclass
class ProviderGate:
    """Dispatch limits of one provider: concurrent repairs, repairs per window, and a circuit breaker that stops
    dispatch while the provider keeps failing and lets one probe repair through after a cool-down."""

    concurrency: int = 2
    rate: int = 10  # repairs per window
    window_s: float = 60.0
    breaker_after: int = 3  # consecutive provider failures
    breaker_cooldown_s: float = 60.0
    in_flight: int = 0
    started: deque[float] = field(default_factory=deque)
    failures: int = 0
    open_until: float = 0.0

    def admits(self, now: float) -> str:
        """'' when a repair may start now, else why not."""
        while self.started and now - self.started[0] >= self.window_s:
            self.started.popleft()
        if self.failures >= self.breaker_after and now < self.open_until:
            return f"the provider's breaker is open after {self.failures} failed repairs"
        if self.in_flight >= self.concurrency:
            return f"{self.concurrency} repairs already running"
        if len(self.started) >= self.rate:
            return f"rate limit of {self.rate} repairs per {self.window_s:g} s reached"
        return ""

    def opened(self, now: float) -> None:
        self.in_flight += 1
        self.started.append(now)

    def closed(self, ok: bool, blame: str, now: float) -> None:
        self.in_flight = max(0, self.in_flight - 1)
        if blame == "provider" and not ok:
            self.failures += 1
            if self.failures >= self.breaker_after:
                self.open_until = now + self.breaker_cooldown_s
        elif ok:
            self.failures = 0

    def to_json(self, now: float) -> dict[str, Any]:
        return {"in_flight": self.in_flight, "recent": len(self.started), "failures": self.failures,
                "breaker": "open" if self.failures >= self.breaker_after and now < self.open_until else
                "half-open" if self.failures >= self.breaker_after else "closed"}


class CustodianCore:
    """Per-node custody of a circuit's slotted services."""

    def __init__(self, dependencies: Mapping[str, Sequence[str]], *, policy: CustodyPolicy | None = None,
                 clock: Callable[[], float], launch: Callable[[RepairOrder], None] | None = None,
                 abort: Callable[[str], None] | None = None,
                 save: Callable[[dict[str, Any]], None] | None = None, gate: ProviderGate | None = None,
                 inbox_size: int = 1000, decisions_kept: int = 500) -> None:
        self.policy = policy or CustodyPolicy()
        self.clock = clock
        self.launch = launch or (lambda order: None)
        self.abort = abort or (lambda repair_id: None)
        self.save = save
        self.gate = gate or ProviderGate()
        self.dependencies = {n: list(d) for n, d in dependencies.items()}
        self.nodes: dict[str, NodeCustody] = {}
        self.components: dict[str, NodeCustody] = {}  # Baton's own parts: adapter hosts, the Prefect API
        self.host_of: dict[str, str] = {}  # node -> the component of the adapter host serving it
        self.inbox: asyncio.Queue[Event] = asyncio.Queue(maxsize=inbox_size)
        self.decisions: deque[dict[str, Any]] = deque(maxlen=decisions_kept)
        self.listeners: list[Callable[[dict[str, Any]], None]] = []
        self.drift: dict[str, str] = {}  # node -> how its live routing differs from the recorded one (reported)
        self.drift_seen: dict[str, tuple[str, int]] = {}  # node -> the last difference seen, how many looks in a row
        self.dropped = 0
        self.dirty = False
        self.shutting_down = False

    # -- the loop ---------------------------------------------------------------------------------

    def post(self, event: Event) -> bool:
        """Offer an event without waiting (observations and timers): when the inbox is full it is dropped and
        counted; the next probe or tick says the same again."""
        try:
            self.inbox.put_nowait(event)
            return True
        except asyncio.QueueFull:
            self.dropped += 1
            return False

    async def send(self, event: Event) -> None:
        """Deliver an event that must not be lost (commands, repair results): waits for room."""
        await self.inbox.put(event)

    async def run(self) -> None:
        while not self.shutting_down:
            event = await self.inbox.get()
            self.step(event)

    def step(self, event: Event) -> None:
        """One turn of the loop; a handler's exception is logged and never stops the loop."""
        try:
            self.handle(event)
        except Exception:  # noqa: BLE001
            log.exception("custodian: handling %r failed", event)
        try:
            self.dispatch_ready()
        except Exception:  # noqa: BLE001
            log.exception("custodian: dispatch failed")
        self.persist()

    def persist(self) -> None:
        if self.dirty and self.save is not None:
            try:
                self.save(self.snapshot())
                self.dirty = False
            except Exception:  # noqa: BLE001 - try again after the next event
                log.exception("custodian: saving state failed")

    # -- state ------------------------------------------------------------------------------------

    def node(self, name: str) -> NodeCustody:
        return self._record(self.nodes, name)

    def component(self, name: str) -> NodeCustody:
        return self._record(self.components, name)

    def _record(self, kept: dict[str, NodeCustody], name: str) -> NodeCustody:
        if name not in kept:
            custody = NodeCustody(node=name)
            custody.history = deque(maxlen=self.policy.history)
            kept[name] = custody
        return kept[name]

    def snapshot(self) -> dict[str, Any]:
        now = self.clock()
        return {"nodes": {n: c.to_json() for n, c in sorted(self.nodes.items())}, "saved_at": now,
                "components": {n: c.to_json() for n, c in sorted(self.components.items())},
                "gate": self.gate.to_json(now), "dropped_events": self.dropped, "drift": dict(sorted(self.drift.items())),
                "policy": {"probe_interval_s": self.policy.probe_interval_s,
                           "restart_after": self.policy.restart_after, "mock_after": self.policy.mock_after}}

    def restore(self, data: Mapping[str, Any]) -> None:
        """State saved by an earlier conductor. A repair it had in flight died with it: nothing is decided for
        that node until a fresh probe says how it is, and its backoff still holds (no duplicate repair)."""
        for key, kept in (("nodes", self.nodes), ("components", self.components)):
            for name, raw in (data.get(key) or {}).items():
                custody = NodeCustody.from_json(raw, history=self.policy.history)
                if custody.repair is not None:
                    custody.repair = None
                    custody.reobserve = True
                    custody.restart_failed(self.policy, self.clock())  # its outcome is unknown: count it, back off
                    custody.move(Status.FAILING, "a repair was cut short by a conductor restart: observing again",
                                 self.clock())
                kept[name] = custody
        self.dirty = True

    def _decide(self, custody: NodeCustody, status: Status, reason: str) -> None:
        now = self.clock()
        if custody.move(status, reason, now):
            self.dirty = True
            self._tell({"at": now, "node": custody.node, "status": status.value, "reason": reason})

    def _tell(self, decision: dict[str, Any]) -> None:
        """Keep a decision or a report and hand it to every listener (``baton watch``, events.jsonl)."""
        self.decisions.append(decision)
        for listener in list(self.listeners):
            try:
                listener(decision)
            except Exception:  # noqa: BLE001 - a broken watcher never stops the core
                log.exception("custodian: a listener failed")

    # -- handlers (state only) --------------------------------------------------------------------------

    def handle(self, event: Event) -> None:
        if isinstance(event, ProbeResult):
            self._on_probe(event)
        elif isinstance(event, RepairFinished):
            self._on_repair(event)
        elif isinstance(event, Command):
            self._on_command(event)
        elif isinstance(event, Tick):
            self._on_tick()
        elif isinstance(event, ProbeRound):
            self._on_round(event)
        elif isinstance(event, ComponentProbe):
            self._on_component(event)
        elif isinstance(event, RoutingSeen):
            self._on_routing(event)
        self._propagate()

    def _on_routing(self, seen: RoutingSeen) -> None:
        """Report a node changed outside Baton once two looks in a row agree on how (a command's own change
        is never seen: rounds are skipped while one runs), and report when it matches again. The custodian
        does not undo it: whoever changed it may mean it; `baton status` shows it until a command settles it."""
        if not seen.drift:
            self.drift_seen.pop(seen.node, None)
            if self.drift.pop(seen.node, None) is not None:
                self.dirty = True
                self._tell({"at": self.clock(), "node": seen.node, "status": "routing-restored",
                            "reason": "its routing matches what Baton recorded again"})
            return
        last, count = self.drift_seen.get(seen.node, ("", 0))
        count = count + 1 if last == seen.drift else 1
        self.drift_seen[seen.node] = (seen.drift, count)
        if count >= DRIFT_CONFIRMATIONS and self.drift.get(seen.node) != seen.drift:
            self.drift[seen.node] = seen.drift
            self.dirty = True
            self._tell({"at": self.clock(), "node": seen.node, "status": "drift", "reason": seen.drift})

    def _on_round(self, probed: ProbeRound) -> None:
        if not probed.running:
            self.drift.clear()
            self.drift_seen.clear()
        for name in [n for n in self.nodes if n not in probed.watched]:
            custody = self.nodes[name]
            if custody.repair is None and not (custody.status in ESCALATED and probed.running):
                del self.nodes[name]
                self.dirty = True
        if probed.components is not None:
            for name in [n for n in self.components if n not in probed.components]:
                if self.components[name].repair is None:  # that host is gone from the circuit: out of custody
                    del self.components[name]
                    self.dirty = True

    def _on_component(self, probe: ComponentProbe) -> None:
        custody = self.component(probe.component)
        custody.reobserve = False
        if custody.repair is not None:  # being restarted: what the old one says no longer matters
            return
        if probe.ok:
            if custody.status is not Status.HEALTHY:
                self._answered(custody, self.clock())
            return
        self._failed(custody, probe.exited, self.clock())
        self._decide(custody, Status.FAILING, f"{probe.detail or 'not answering'} ({custody.failures} in a row)")

    def _answered(self, custody: NodeCustody, now: float) -> None:
        """A look found it answering: failures are forgiven, and it is healthy (again)."""
        recovered = custody.failures > 0 or custody.status is Status.RESTARTED
        custody.failures, custody.failed_restarts, custody.exited = 0, 0, False
        custody.healthy_since = now
        self._decide(custody, Status.HEALTHY, "recovered" if recovered else "healthy")

    def _failed(self, custody: NodeCustody, exited: bool, now: float) -> None:
        """A look found it failing: one more in a row; a restart that was being confirmed counts as failed."""
        custody.failures += 1
        custody.exited = exited
        custody.healthy_since = None
        self.dirty = True
        if custody.status is Status.RESTARTED:
            custody.restart_failed(self.policy, now)

    def component_serving(self, name: str) -> bool:
        """Unknown or healthy: repairs that need it may go."""
        custody = self.components.get(name)
        return custody is None or custody.status in SERVING

    def _on_probe(self, probe: ProbeResult) -> None:
        custody = self.node(probe.node)
        now = self.clock()
        custody.reobserve = False
        if custody.repair is not None:  # the old instance's answers say nothing while it is being replaced
            return
        if probe.incarnation and probe.incarnation != custody.incarnation:
            if custody.status in ESCALATED and custody.incarnation:  # someone slotted a new instance: start over
                custody.failures, custody.failed_restarts, custody.backoff_s, custody.next_attempt_at = 0, 0, 0.0, 0.0
                self._decide(custody, Status.WATCHING, "a new instance was slotted")
            custody.incarnation, self.dirty = probe.incarnation, True
        if probe.command:
            custody.command = probe.command
        if probe.ok:
            if custody.status is not Status.HEALTHY and custody.status is not Status.DEGRADED:
                self._answered(custody, now)
            return
        self._failed(custody, probe.exited, now)
        if custody.status in (Status.MOCKED, Status.FAULTED, Status.MOCKING):
            return
        self._decide(custody, Status.FAILING, f"{probe.detail or 'probe failed'} ({custody.failures} in a row)")

    def _on_repair(self, done: RepairFinished) -> None:
        component = done.kind in COMPONENT_REPAIRS.values()
        custody = self.components.get(done.node) if component else self.node(done.node)
        now = self.clock()
        if custody is None or custody.repair is None or custody.repair.get("id") != done.repair_id:
            return  # a result from before a restart of the conductor: already accounted for
        custody.repair = None
        if done.kind != COMPONENT_REPAIRS[PREFECT]:  # the Prefect restart does not pass the provider's gate
            self.gate.closed(done.ok, done.blame if not done.cancelled else "service", now)
        self.dirty = True
        if component:
            if done.ok:
                self._decide(custody, Status.RESTARTED, f"restarted ({done.detail or 'answering'}); confirming")
            else:
                custody.restart_failed(self.policy, now)
                self._decide(custody, Status.FAILING, f"restart failed: {done.detail}; next attempt in "
                                                      f"{custody.backoff_s:g} s")
            return
        if done.cancelled:
            custody.from_mock = False
            self._decide(custody, Status.FAILING, f"the {done.kind} was cancelled by hand; healing paused")
            return
        if done.kind == "restart":
            from_mock, custody.from_mock = custody.from_mock, False
            if done.ok:
                self._decide(custody, Status.RESTARTED, f"restarted ({done.detail or 'service ready'}); confirming")
            elif from_mock:  # nothing to probe: it is still served from its mock
                custody.restart_failed(self.policy, now)
                self._decide(custody, Status.MOCKED, f"the restart asked for failed: {done.detail}; still served "
                                                     "from its mock")
            else:
                custody.restart_failed(self.policy, now)
                self._decide(custody, Status.FAILING, f"restart {custody.restarts} failed: {done.detail}; next attempt "
                                                      f"in {custody.backoff_s:g} s")
        elif done.kind == "mock":
            if done.ok:
                self._decide(custody, Status.MOCKED, f"served from its mock after {custody.failed_restarts} failed "
                                                     f"restarts; `baton heal resume {custody.node}` tries again")
            else:
                self._decide(custody, Status.FAULTED, f"escalated: could not serve it from its mock ({done.detail})")

    def _on_command(self, command: Command) -> None:
        if command.kind == "shutdown":
            self.shutting_down = True
            return
        custody = self.node(command.node)
        if command.kind == "pause":
            custody.paused, self.dirty = True, True
            self._decide(custody, custody.status, f"healing paused by hand ({custody.reason})")
        elif command.kind == "cancel":
            custody.paused, self.dirty = True, True
            if custody.repair is not None:
                custody.repair = {**custody.repair, "cancel": "requested"}
                self._decide(custody, custody.status, f"cancelling the {custody.repair['kind']} in flight")
            else:
                self._decide(custody, custody.status, f"nothing in flight to cancel; healing paused ({custody.reason})")
        elif command.kind == "resume":
            custody.paused, self.dirty = False, True
            if custody.status in ESCALATED:  # try again from the start
                custody.failed_restarts, custody.backoff_s, custody.next_attempt_at = 0, 0.0, 0.0
                custody.failures = self.policy.restart_after
                custody.from_mock, custody.incarnation = True, ""  # the mock serves now: no instance to check
                self._decide(custody, Status.FAILING, "healing resumed by hand: restarting")
            else:
                self._decide(custody, custody.status, f"healing resumed ({custody.reason})")

    def _on_tick(self) -> None:
        now = self.clock()
        for custody in self.nodes.values():
            if custody.status is Status.HEALTHY and custody.healthy_since is not None and custody.backoff_s > 0 \
                    and now - custody.healthy_since >= self.policy.backoff_reset_after_s:
                custody.backoff_s, custody.next_attempt_at, self.dirty = 0.0, 0.0, True

    def _unhealthy_dependency(self, name: str) -> str:
        for dependency in self.dependencies.get(name, []):
            other = self.nodes.get(dependency)
            if other is not None and other.status in (Status.FAILING, Status.WAITING, Status.RESTARTING,
                                                      Status.RESTARTED, Status.MOCKING):
                return dependency
        return ""

    def _propagate(self) -> None:
        """Failures explained by a dependency wait instead of restarting; dependents of a faulted node are
        degraded, not restarted."""
        for name, custody in self.nodes.items():
            if custody.status in (Status.FAILING, Status.WAITING):
                blamed = self._unhealthy_dependency(name)
                if blamed and custody.status is Status.FAILING:
                    custody.waiting_on = blamed
                    self._decide(custody, Status.WAITING, f"failing while its dependency {blamed} is "
                                                          f"{self.nodes[blamed].status.value}: not restarted")
                elif not blamed and custody.status is Status.WAITING:  # what failed so far was explained
                    custody.waiting_on, custody.failures = "", 0
                    self._decide(custody, Status.FAILING, "its dependencies are healthy again: counting afresh")
            faulted = [d for d in self.dependencies.get(name, [])
                       if d in self.nodes and self.nodes[d].status is Status.FAULTED]
            if custody.status is Status.HEALTHY and faulted:
                self._decide(custody, Status.DEGRADED, f"depends on faulted {', '.join(faulted)}")
            elif custody.status is Status.DEGRADED and not faulted:
                self._decide(custody, Status.HEALTHY, "its dependencies recovered")

    # -- dispatch ---------------------------------------------------------------------------------------

    def ready_repairs(self) -> list[RepairOrder]:
        """Repairs due now (pure selection; the gate is applied in :meth:`dispatch_ready`)."""
        now = self.clock()
        orders = []
        for name, custody in sorted(self.components.items(), key=lambda item: item[0] != PREFECT):
            if custody.repair is not None or custody.reobserve or custody.status is not Status.FAILING:
                continue
            if (custody.exited or custody.failures >= COMPONENT_RESTART_AFTER) and now >= custody.next_attempt_at:
                why = "its process exited" if custody.exited else f"{custody.failures} failed looks in a row"
                kind = COMPONENT_REPAIRS[PREFECT] if name == PREFECT else COMPONENT_REPAIRS["adapter"]
                orders.append(RepairOrder(name, kind, uuid.uuid4().hex[:12], why))
        for name, custody in sorted(self.nodes.items()):
            if custody.paused or custody.repair is not None or custody.reobserve or custody.status is not Status.FAILING:
                continue
            if custody.failures >= self.policy.mock_after and custody.failed_restarts >= 1:
                orders.append(RepairOrder(name, "mock", uuid.uuid4().hex[:12],
                                          f"{custody.failures} failed probes, {custody.failed_restarts} failed "
                                          "restarts", custody.command))
            elif (custody.failures >= self.policy.restart_after or custody.exited) and now >= custody.next_attempt_at:
                why = "the service exited" if custody.exited else f"{custody.failures} failed probes in a row"
                orders.append(RepairOrder(name, "restart", uuid.uuid4().hex[:12], why, custody.command))
        return orders

    def dispatch_ready(self) -> list[RepairOrder]:
        now = self.clock()
        for custody in self.nodes.values():  # cancellations asked for: the effect, once
            if custody.repair is not None and custody.repair.get("cancel") == "requested":
                custody.repair = {**custody.repair, "cancel": "sent"}
                self.dirty = True
                self.abort(custody.repair["id"])
        started = []
        for order in self.ready_repairs():
            component = order.kind in COMPONENT_REPAIRS.values()
            custody = self.components[order.node] if component else self.nodes[order.node]
            held = self._needs(order)
            if not held and order.kind != COMPONENT_REPAIRS[PREFECT]:
                held = self.gate.admits(now)
            if held:
                self._decide(custody, custody.status, f"{order.kind} due; held: {held}")
                continue
            if order.kind != COMPONENT_REPAIRS[PREFECT]:
                self.gate.opened(now)
            custody.repair = {"kind": order.kind, "id": order.repair_id, "started_at": now, "reason": order.reason}
            custody.exited = False
            if component:
                custody.restarts += 1
                self._decide(custody, Status.RESTARTING, f"restart {custody.restarts}: {order.reason}")
            elif order.kind == "restart":
                custody.restarts += 1
                self._decide(custody, Status.RESTARTING, f"restart {custody.restarts}: {order.reason}")
            else:
                self._decide(custody, Status.MOCKING, f"serving from its mock: {order.reason}")
            self.dirty = True
            self.launch(order)
            started.append(order)
        return started

    def _needs(self, order: RepairOrder) -> str:
        """'' when what the repair relies on serves, else why it waits: every repair but the Prefect restart is a
        flow (it needs the Prefect API), and a service's repair talks to its node's adapter."""
        if order.kind == COMPONENT_REPAIRS[PREFECT]:
            return ""
        if not self.component_serving(PREFECT):
            return "the Prefect API is down; it is restarted first"
        host = self.host_of.get(order.node)
        if host and not self.component_serving(host):
            return f"its adapter host ({host}) is down; it is restarted first"
        return ""
