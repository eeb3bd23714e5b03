"""Tasks that start, stop and steer adapters. Each sets a target state, so a retry is harmless."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

from baton.control import control_token, events_token
from baton.errors import BatonError
from baton.waiting import wait_for_async
from baton.state import CircuitState, now_iso
from baton.wiring import adapter_config, adapter_node
from providers import Provider
from tasks.context import open_circuit, retry_transient, step

__all__ = [
    "start_adapter_host",
    "host_nodes",
    "launch_host",
    "wait_adapters_ready",
    "stop_adapter_hosts",
    "set_backend",
    "switch_backend",
    "switch_routing",
    "restorable_routing",
    "set_routing",
    "set_locked",
    "drain_backend",
    "node_snapshot",
    "read_snapshot",
]


def _backend_of(state: CircuitState, provider: Provider, name: str) -> dict[str, Any] | None:
    """The backend a node should have after a (re)start: its live service, else its mock."""
    node_state = state.adapters.get(name)
    if node_state and not node_state.service.is_mock and node_state.service.port:
        slot = node_state.service
        if provider.service_alive(slot):
            return {"host": slot.host, "port": slot.port}
    return None


@step("start-adapter-host", retries=1, retry_delay_seconds=1, retry_condition_fn=retry_transient)
async def start_adapter_host(root: str, host_id: str, nodes: list[str]) -> dict[str, Any]:
    """Start one adapter process hosting ``nodes`` (no-op when it already runs)."""
    circuit = open_circuit(root)
    state = circuit.state()
    existing = state.hosts.get(host_id)
    if existing and circuit.provider(state).host_alive(existing) and sorted(existing.nodes) == sorted(nodes):
        return existing.model_dump()
    if existing:
        await asyncio.to_thread(circuit.provider(state).stop_host, existing)
    return await asyncio.to_thread(launch_host, root, host_id, nodes)


def host_nodes(root: str, host_id: str) -> list[str]:
    """The nodes an adapter host of the circuit serves (none when the circuit has no such host)."""
    host = open_circuit(root).state().hosts.get(host_id)
    return list(host.nodes) if host else []


def launch_host(root: str, host_id: str, nodes: list[str]) -> dict[str, Any]:
    """Write the adapter config for ``nodes`` and start its host; record it in state."""
    circuit = open_circuit(root)
    state = circuit.state()
    provider = circuit.provider(state)
    control_token(circuit.config, circuit.state_dir, create=True)  # a missing token_env variable fails here
    events_token(circuit.config, circuit.state_dir, create=True)  # .baton/events_token, for services started by hand
    refuse_taken_ports(circuit, nodes)
    backends = {n: _backend_of(state, provider, n) for n in nodes}  # one state read, one provider, per host
    tls = circuit_tls(circuit, provider, nodes)
    entries = [
        adapter_node(circuit.config, circuit.node(n), root=circuit.root, backend=backends[n],
                     routing=(state.adapters.get(n).routing if state.adapters.get(n) else None), tls=tls.get(n))
        for n in nodes
    ]
    host = provider.start_host(circuit.root, circuit.state_dir, host_id,
                               adapter_config(entries, events_file=circuit.state_dir / "events.jsonl"))
    state.hosts[host_id] = host
    state.provider = provider.name
    state.circuit_name = circuit.config.name
    state.started_at = state.started_at or now_iso()
    for name in nodes:
        node_state = state.node(name)
        node_state.host_id = host_id
        if backends[name] is None:
            node_state.service.is_mock = True
        node_state.updated_at = now_iso()
    circuit.store.save(state)
    return host.model_dump()


def circuit_tls(circuit: Any, provider: Any, nodes: list[str]) -> dict[str, dict[str, str]]:
    """When the circuit serves TLS: make sure the CA and every node's certificate exist and are usable (the
    user's pair checked, in mode full), and return the files each of ``nodes`` serves."""
    from baton.certs.circuit import circuit_names, ensure_circuit_tls, node_tls, tls_enabled

    config = circuit.config
    if not tls_enabled(config):
        return {}
    names = circuit_names(config, provider.tls_names(circuit.root, config))
    ensure_circuit_tls(circuit.state_dir, config, root=circuit.root, names=names)
    served = {}
    for name in nodes:
        files = node_tls(config, circuit.node(name), root=circuit.root, state_dir=circuit.state_dir)
        served[name] = {"cert_file": str(files.cert_file), "key_file": str(files.key_file)}
    return served


async def _listening(session: aiohttp.ClientSession, url: str, pid: int | None) -> bool:
    """The node's adapter answers and listens, and it is ours: an adapter of another process (an orphan of a
    deleted project, another circuit) answering on the same port is refused at once, naming it."""
    try:
        async with session.get(url) as resp:
            code = resp.status
            status = await resp.json(content_type=None) if code in (200, 401, 503) else {}
    except (aiohttp.ClientError, TimeoutError, ValueError):
        return False
    port = int(url.rsplit(":", 1)[1].split("/", 1)[0])
    if code in (401, 503):  # it answers but refuses the token: it will never be ready, so say why at once
        from baton.ports import describe_holder, port_holder

        holder = port_holder(port) if pid is not None else None
        if holder is not None and holder.pid is not None and holder.pid != pid:
            raise BatonError(f"another adapter answers on port {port}, not the one just started: "
                             f"{describe_holder(holder)}; stop it and run `baton up` again.")
        detail = status.get("error", f"HTTP {code}") if isinstance(status, dict) else f"HTTP {code}"
        raise BatonError(f"the adapter at {url.rsplit('/', 1)[0]} refuses Baton's management token ({detail}); an "
                         "adapter started with another token (or none) must be restarted: `baton down`, then "
                         "`baton up`.")
    answered_by = status.get("pid")
    if pid is not None and isinstance(answered_by, int) and answered_by != pid:
        from baton.ports import describe_holder, port_holder

        holder = port_holder(port)
        raise BatonError(f"another adapter (pid {answered_by}) answers on port {port}, not the one just started: "
                         f"{describe_holder(holder) if holder else 'it is gone now'}; stop it and run `baton up` "
                         "again.")
    return bool(status.get("listening", False))


def refuse_taken_ports(circuit: Any, nodes: list[str]) -> None:
    """Fail before starting adapters whose ports another process holds, naming it (pid, command, its project)."""
    from baton.ports import describe_holder, port_holder

    for name in nodes:
        node = circuit.node(name)
        for port in (node.port, node.management_port):
            holder = port_holder(port)
            if holder is not None:
                raise BatonError(f"node {name} cannot listen: {describe_holder(holder)}; stop it (`baton -C "
                                 f"{holder.project} down --all` for a Baton circuit) or give {name} another port in "
                                 "baton.yaml." if holder.project else
                                 f"node {name} cannot listen: {describe_holder(holder)}; stop it or give {name} "
                                 "another port in baton.yaml.")


@step("wait-adapters-ready")
async def wait_adapters_ready(root: str, nodes: list[str], timeout_s: float = 30.0) -> list[str]:
    """Wait until every node's adapter answers its management API; fail fast when a host died."""
    circuit = open_circuit(root)
    pending = {n: f"{circuit.client(n).base_url}/status" for n in nodes}
    state = circuit.state()
    pid_of = {n: h.process.pid for h in state.hosts.values() if h.process is not None for n in h.nodes}
    token = circuit.client(nodes[0]).token if nodes else None
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    timeout = aiohttp.ClientTimeout(total=2, connect=1)
    async with aiohttp.ClientSession(timeout=timeout, headers=headers,
                                     connector=aiohttp.TCPConnector(limit=64)) as session:

        async def all_listening() -> bool:
            names = list(pending)
            results = await asyncio.gather(*(_listening(session, pending[n], pid_of.get(n)) for n in names))
            for name, ok in zip(names, results, strict=True):
                if ok:
                    del pending[name]
            return not pending

        def host_exited() -> None:
            state = circuit.state()
            provider = circuit.provider(state)
            for host in state.hosts.values():
                if set(host.nodes) & set(pending) and not provider.host_alive(host):
                    raise BatonError(
                        f"the adapter host {host.host_id} exited while starting ({provider.host_log_tail(host)}); "
                        "fix the cause and run `baton up` again."
                    )

        await wait_for_async(all_listening, timeout_s=timeout_s, abort=host_exited, timeout_error=lambda: BatonError(
            f"adapters of {', '.join(sorted(pending))} did not answer within {timeout_s:.0f} s; see "
            ".baton/adapters/*.log."))
    return nodes


@step("stop-adapter-hosts")
async def stop_adapter_hosts(root: str) -> list[str]:
    """Stop every adapter host of the circuit; state forgets them."""
    return await asyncio.to_thread(_stop_adapter_hosts, root)


def _stop_adapter_hosts(root: str) -> list[str]:
    circuit = open_circuit(root)
    state = circuit.state()
    provider = circuit.provider(state)
    stopped = []
    for host_id, host in list(state.hosts.items()):
        provider.stop_host(host)
        stopped.append(host_id)
        del state.hosts[host_id]
    circuit.store.save(state)
    return stopped


@step("set-backend", retries=2, retry_delay_seconds=0.2, retry_condition_fn=retry_transient)
async def set_backend(root: str, node: str, backend: dict[str, Any]) -> dict[str, Any]:
    """Point a node's adapter at ``backend`` (``{host, port}`` or ``{mock: true}``)."""
    return await open_circuit(root).client(node).set_backend(backend)


def _same_backend(reported: dict[str, Any] | None, wanted: dict[str, Any]) -> bool:
    reported = reported or {}
    if wanted.get("mock"):
        return bool(reported.get("mock"))
    return reported.get("host") == wanted.get("host") and reported.get("port") == wanted.get("port")


@step("switch-backend", retry_condition_fn=retry_transient)
async def switch_backend(root: str, node: str, backend: dict[str, Any], previous: dict[str, Any]) -> dict[str, Any]:
    """Point the adapter at ``backend`` and verify it; a partial switch is undone here, a later
    failure in the same transaction is undone by the rollback hook (back to ``previous``)."""
    from prefect.transactions import get_transaction

    transaction = get_transaction()
    if transaction is not None:
        transaction.set("rollback", {"root": root, "node": node, "previous": previous})
    client = open_circuit(root).client(node)
    try:
        await client.set_backend(backend)
        status = await client.status()
        if not _same_backend(status.get("backend"), backend):
            raise BatonError(f"the adapter of {node} reports backend {status.get('backend')} after the switch, "
                             f"not {backend}; the previous backend was restored.")
    except BaseException:
        await client.set_backend(previous)
        raise
    return status


@switch_backend.on_rollback
def _restore_backend(transaction: Any) -> None:
    saved = transaction.get("rollback")
    open_circuit(saved["root"]).client(saved["node"]).request_sync("POST", "/backend", saved["previous"])


@step("switch-routing", retry_condition_fn=retry_transient)
async def switch_routing(root: str, node: str, routing: dict[str, Any], previous: dict[str, Any]) -> dict[str, Any]:
    """Install ``routing``; undone (back to ``previous``) on failure here or later in the transaction."""
    from prefect.transactions import get_transaction

    transaction = get_transaction()
    if transaction is not None:
        transaction.set("rollback", {"root": root, "node": node, "previous": previous})
    client = open_circuit(root).client(node)
    try:
        return await client.set_routing(routing)
    except BaseException:
        await client.set_routing(previous)
        raise


@switch_routing.on_rollback
def _restore_routing(transaction: Any) -> None:
    saved = transaction.get("rollback")
    open_circuit(saved["root"]).client(saved["node"]).request_sync("POST", "/routing", saved["previous"])


def restorable_routing(snapshot: dict[str, Any]) -> dict[str, Any]:
    """A routing table from a node snapshot, in the shape POST /routing accepts."""
    routing = snapshot.get("routing") or {}
    out = {k: routing[k] for k in ("strategy", "targets", "rules", "default_target") if routing.get(k) not in (None, "")}
    out["targets"] = [{k: t[k] for k in ("name", "host", "port", "weight", "mock") if k in t}
                      for t in routing.get("targets") or []]
    return out


@step("set-routing", retries=2, retry_delay_seconds=0.2, retry_condition_fn=retry_transient)
async def set_routing(root: str, node: str, routing: dict[str, Any]) -> dict[str, Any]:
    """Replace a node's routing table."""
    return await open_circuit(root).client(node).set_routing(routing)


@step("set-locked", retries=2, retry_delay_seconds=0.2, retry_condition_fn=retry_transient)
async def set_locked(root: str, node: str, locked: bool) -> dict[str, Any]:
    return await open_circuit(root).client(node).set_locked(locked)


@step("drain-backend")
async def drain_backend(root: str, node: str, host: str, port: int, timeout_s: float = 30.0) -> dict[str, Any]:
    """Wait until no request is in flight to the old backend ``host:port``."""
    return await open_circuit(root).client(node).drain(host, port, timeout_s)


async def read_snapshot(root: str, node: str) -> dict[str, Any]:
    """The node's backend and routing as its adapter reports them (for the audit trail)."""
    client = open_circuit(root).client(node)
    status, routing = await asyncio.gather(client.status(), client.routing())
    return {"backend": status.get("backend"), "routing": {k: routing.get(k) for k in ("strategy", "targets", "rules",
                                                                                        "default_target", "locked")}}


@step("node-snapshot", retries=2, retry_delay_seconds=0.2, retry_condition_fn=retry_transient)
async def node_snapshot(root: str, node: str) -> dict[str, Any]:
    """The node's backend and routing before an action (for the audit trail)."""
    return await read_snapshot(root, node)
