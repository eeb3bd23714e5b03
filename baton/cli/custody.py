"""The custodian inside the conductor: the effects around the pure core (``baton.custodian``).

Five event sources feed one inbox: probes of every slotted service (observations), a timer, commands
from the CLI (``baton heal pause|resume``), the results of the repair flows it launched, and the core's
own dispatch. Repairs run as flows (``heal-restart-<node>``, ``heal-mock-<node>``) one at a time with the
CLI's runs, so they land in ``baton history`` with their reason. Decisions go to ``.baton/events.jsonl``,
to the conductor's log and to every ``baton watch``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

from baton.custodian import Command, CustodianCore, CustodyPolicy, ProbeResult, RepairFinished, RepairOrder, Tick
from baton.custodian.core import COMPONENT_REPAIRS
from baton.custodian.events import PREFECT, ComponentProbe, ProbeRound, RoutingSeen, adapter_component
from baton.custodian.store import CustodyStore
from baton.errors import BatonError, UsageError
from baton.eventlog import append_event

__all__ = ["Custody", "policy_from_env"]

log = logging.getLogger(__name__)
RunRepair = Callable[[str, dict[str, Any]], Awaitable[Any]]
PrefectCheck = Callable[[], Awaitable[tuple[bool, str, bool]]]  # (answers, detail, its process exited)
PrefectRestart = Callable[[], Awaitable[str]]  # restarts it; returns what happened


def policy_from_env(environ: dict[str, str] | None = None) -> CustodyPolicy:
    environ = dict(os.environ) if environ is None else environ
    def seconds(name: str, default: str) -> float:
        raw = environ.get(name, default)
        try:
            value = float(raw)
        except ValueError:
            value = 0.0
        if value <= 0:
            raise BatonError(f"{name} expects a positive number of seconds, found {raw!r}.")
        return value

    return CustodyPolicy(probe_interval_s=seconds("BATON_PROBE_INTERVAL_S", "5"),
                         backoff_initial_s=seconds("BATON_BACKOFF_INITIAL_S", "1"))


class Custody:
    def __init__(self, project: Any, run_repair: RunRepair, policy: CustodyPolicy | None = None, *,
                 prefect_check: PrefectCheck | None = None, prefect_restart: PrefectRestart | None = None) -> None:
        self.project = project
        self.run_repair = run_repair
        self.prefect_check = prefect_check
        self.prefect_restart = prefect_restart
        self.store = CustodyStore(project.state_dir)
        self.core = CustodianCore(self._dependencies(), policy=policy or policy_from_env(), clock=time.time,
                                  launch=self._launch, abort=self._abort, save=self.store.save)
        self.core.restore(self.store.load())
        self.core.listeners.append(self._record)
        self.watchers: set[asyncio.Queue[dict[str, Any]]] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._repairs: dict[str, asyncio.Task[Any]] = {}
        self._providers: dict[str, Any] = {}
        self._graph_of: Any = None  # the config the dependencies were computed from

    # -- lifecycle --------------------------------------------------------------------------------

    def start(self) -> None:
        for coroutine in (self.core.run(), self._probe_loop(), self._timer_loop()):
            self._spawn(coroutine)

    async def stop(self) -> None:
        self.core.shutting_down = True
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.core.persist()

    def _spawn(self, coroutine: Any) -> asyncio.Task[Any]:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- sources ----------------------------------------------------------------------------------

    def _dependencies(self, config: Any = None) -> dict[str, list[str]]:
        from baton.circuit import CircuitGraph

        config = config or self.project.load()
        graph = CircuitGraph.from_config(config)
        return {n.name: list(graph.dependencies(n.name)) for n in config.nodes}

    def _project_busy(self) -> bool:
        """A command holds the project (it is changing what runs): its changes are not failures."""
        from baton.errors import LockTimeout

        try:
            with self.project.lock(timeout=0):
                return False
        except LockTimeout:
            return True

    def _provider(self, name: str) -> Any:
        from providers import get_provider

        if name not in self._providers:
            self._providers[name] = get_provider(name)
        return self._providers[name]

    async def _probe_loop(self) -> None:
        from baton.state import StateStore
        from tasks.observe import probe_services, routing_drift

        store = StateStore(self.project.state_dir)
        while True:
            try:
                await self._probe_once(store, probe_services, routing_drift)
            except Exception:  # noqa: BLE001 - an observation source never dies of one bad round
                log.exception("custodian: probing failed")
            await asyncio.sleep(self.core.policy.probe_interval_s)

    async def _probe_once(self, store: Any, probe_services: Any, routing_drift: Any) -> None:
        if self.prefect_check is not None:  # Baton's own API first: every repair is a flow
            answers, detail, exited = await self.prefect_check()
            self.core.post(ComponentProbe(PREFECT, answers, detail, exited))
        if await asyncio.to_thread(self._project_busy):
            return
        before = store.path.stat().st_mtime_ns if store.path.exists() else 0
        state, config = store.load(), self.project.load()
        results = await probe_services(state, config, self._provider(state.provider)) if state.running else []
        after = store.path.stat().st_mtime_ns if store.path.exists() else 0
        if before != after:  # a command changed the circuit while we probed: judge the next round instead
            return
        if config is not self._graph_of:  # baton.yaml changed (the project caches its config while it does not)
            self.core.dependencies, self._graph_of = self._dependencies(config), config
        hosts = await asyncio.to_thread(self._probe_hosts, state) if state.running else []
        alive = {component for component, up in hosts if up}
        drifts = await routing_drift(self.project.state_dir, config, state,
                                     {h.host_id for h in state.hosts.values() if adapter_component(h.host_id) in alive}
                                     ) if state.running else {}
        if (store.path.stat().st_mtime_ns if store.path.exists() else 0) != before:
            return  # a command changed the circuit meanwhile
        for node, difference in drifts.items():
            self.core.post(RoutingSeen(node, difference))
        for r in results:
            self.core.post(ProbeResult(r["node"], r["ok"], r["detail"], r["incarnation"], r["command"],
                                       exited=r.get("exited", False)))
        for component, alive in hosts:
            self.core.post(ComponentProbe(component, alive, "" if alive else "the adapter host exited", not alive))
        self.core.host_of = {node: adapter_component(h.host_id) for h in state.hosts.values() for node in h.nodes}
        self.core.post(ProbeRound(tuple(r["node"] for r in results), running=state.running,
                                  components=(PREFECT, *(c for c, _ in hosts))))

    def _probe_hosts(self, state: Any) -> list[tuple[str, bool]]:
        """Whether each adapter host of the circuit still runs (its process, or its containers)."""
        provider = self._provider(state.provider)
        return [(adapter_component(h.host_id), provider.host_alive(h)) for h in state.hosts.values()]

    async def _timer_loop(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            self.core.post(Tick())

    # -- dispatch ---------------------------------------------------------------------------------

    def _launch(self, order: RepairOrder) -> None:
        task = self._spawn(self._repair(order))
        self._repairs[order.repair_id] = task
        task.add_done_callback(lambda _: self._repairs.pop(order.repair_id, None))

    def _abort(self, repair_id: str) -> None:
        task = self._repairs.get(repair_id)
        if task is not None:
            task.cancel()

    async def _repair(self, order: RepairOrder) -> None:
        if order.kind in COMPONENT_REPAIRS.values():
            await self._restart_component(order)
            return
        custody = self.core.nodes.get(order.node)
        expected = custody.incarnation if custody else ""
        action = "heal-restart" if order.kind == "restart" else "heal-mock"
        params: dict[str, Any] = {"node": order.node, "reason": order.reason, "expected": expected}
        if order.kind == "restart":
            params["command"] = order.command
        ok, detail, blame, cancelled = False, "", "service", False
        try:
            result = await self.run_repair(action, params)
            ok = not (result or {}).get("skipped")
            detail = (result or {}).get("skipped") or (f"ready after {result['ready_after_s']} s"
                                                       if result and "ready_after_s" in result else "")
        except UsageError as exc:
            detail = exc.message
        except BatonError as exc:
            detail = exc.message
            blame = "service" if type(exc).__name__ == "ServiceNotReady" else "provider"
        except asyncio.CancelledError:
            if self.core.shutting_down:
                raise
            detail, cancelled = "cancelled by hand", True
        except Exception as exc:  # noqa: BLE001 - the flow's own failure: the provider machinery
            detail, blame = f"{type(exc).__name__}: {exc}", "provider"
        await self.core.send(RepairFinished(order.node, order.kind, order.repair_id, ok, detail, blame, cancelled))

    async def _restart_component(self, order: RepairOrder) -> None:
        ok, detail, blame = False, "", "provider"
        try:
            if order.kind == COMPONENT_REPAIRS[PREFECT]:
                if self.prefect_restart is None:
                    raise BatonError("no way to restart the Prefect API here")
                detail = await self.prefect_restart()
            else:
                host_id = order.node.removeprefix("adapter:")
                result = await self.run_repair("heal-adapter", {"host_id": host_id, "reason": order.reason})
                detail = (result or {}).get("skipped") or f"{len((result or {}).get('nodes') or [])} nodes answering"
            ok = True
        except asyncio.CancelledError:
            if self.core.shutting_down:
                raise
            detail = "cancelled"
        except BatonError as exc:
            detail = exc.message
        except Exception as exc:  # noqa: BLE001 - the machinery's own failure
            detail = f"{type(exc).__name__}: {exc}"
        await self.core.send(RepairFinished(order.node, order.kind, order.repair_id, ok, detail, blame))

    # -- commands and watchers --------------------------------------------------------------------------

    async def command(self, kind: str, node: str) -> dict[str, Any]:
        if kind not in ("pause", "resume", "cancel"):
            raise UsageError(f"heal expects pause, resume or cancel, found {kind!r}.")
        known = [n.name for n in self.project.load().nodes]
        if node not in known:
            raise UsageError(f"no node named {node!r}; known nodes: {', '.join(known) or 'none'}.")
        await self.core.send(Command(kind, node))
        for _ in range(200):  # handled in order: wait until the core has taken it
            if self.core.inbox.empty():
                break
            await asyncio.sleep(0.005)
        await asyncio.sleep(0)
        return self.core.node(node).to_json()

    def repairing(self) -> bool:
        """A repair flow is in flight."""
        return bool(self._repairs)

    def subscribe(self) -> asyncio.Queue[dict[str, Any]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=1000)
        self.watchers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        self.watchers.discard(queue)

    def _record(self, decision: dict[str, Any]) -> None:
        log.info("custodian: %s %s: %s", decision["node"], decision["status"], decision["reason"])
        for queue in list(self.watchers):
            with contextlib.suppress(asyncio.QueueFull):  # a watcher that cannot keep up misses lines
                queue.put_nowait(decision)
        append_event(self.project.state_dir, "custodian", decision["node"], decision["status"], decision["reason"],
                     at=decision["at"])
