"""Steps of the certificate flows: decide and issue what is due, load certificates into every running adapter
as one transaction (stage on all, then commit on all; any refusal aborts every stage), and prove by a TLS
handshake that each adapter now serves what it should."""

from __future__ import annotations

import asyncio
import hashlib
import ssl
from pathlib import Path
from typing import Any

from baton.certs import fingerprint, load_certificates, read_pem
from baton.certs.circuit import (
    carry_out,
    circuit_names,
    inventory,
    node_tls,
    plan_circuit,
    remember_warnings,
    tls_enabled,
    unreported_warnings,
)
from baton.certs.layout import TlsLayout
from baton.control import ControlError, served_fingerprints
from baton.errors import BatonError, UsageError
from baton.eventlog import append_event
from tasks.context import open_circuit, retry_transient, step

__all__ = ["renew_certs", "load_certs", "verify_certs", "running_tls_nodes",
           "record_cert_warnings", "file_fingerprint"]

HANDSHAKE_TIMEOUT_S = 5.0


def _require_tls(circuit: Any) -> None:
    if not tls_enabled(circuit.config):
        raise UsageError("security.tls.mode is off in baton.yaml, so no adapter serves TLS; set it to circuit (Baton's "
                         "own CA) or full (your ingress certificate) and run `baton up`.")


def file_fingerprint(path: Path) -> str:
    """SHA-256 of the first certificate in a PEM file (lower-case hex)."""
    return fingerprint(load_certificates(read_pem(path), path)[0])


def running_tls_nodes(circuit: Any) -> list[str]:
    """Nodes whose adapter host runs now (their data port serves TLS when the circuit's mode says so)."""
    state = circuit.state()
    if not state.running:
        return []
    provider = circuit.provider(state)
    alive = {h.host_id for h in state.hosts.values() if provider.host_alive(h)}
    names = {n.name for n in circuit.config.nodes}
    return sorted(n for n, s in state.adapters.items() if n in names and s.host_id in alive)


def _snapshot(paths: list[Path]) -> dict[str, str | None]:
    return {str(p): (p.read_text(encoding="utf-8") if p.exists() else None) for p in paths}


@step("renew-certs")
async def renew_certs(root: str, renew: list[str] | None = None, force_ca: bool = False,
                      auto_rotate: bool = True) -> dict[str, Any]:
    """Decide what is due (``renew``: nodes to re-issue whatever their state, ``["*"]`` every one; ``force_ca``:
    start a CA rotation) and issue it. Returns the plan's sentences and the nodes whose adapter must load a
    certificate; the files replaced are kept in the transaction, so a failed load puts them back."""
    circuit = open_circuit(root)
    _require_tls(circuit)
    config = circuit.config
    running = running_tls_nodes(circuit)
    served = await served_fingerprints(config, circuit.state_dir, running)
    names = circuit_names(config)
    wanted = list(names) if renew == ["*"] else [n for n in (renew or []) if n in names]
    for node in renew or []:
        if node != "*" and node not in {n.name for n in config.nodes}:
            raise UsageError(f"no node {node!r} in baton.yaml; name one of: {', '.join(n.name for n in config.nodes)}.")
    seen, plan = await asyncio.to_thread(plan_circuit, circuit.state_dir, config, root=circuit.root, names=names,
                                         served=served, renew=wanted, force_ca=force_ca)
    layout = TlsLayout.of(circuit.state_dir)
    if not auto_rotate:  # the check only reports what is due and reloads the user's changed files
        from dataclasses import replace

        plan = replace(plan, renew=(), stale_nodes=())
    before = _snapshot([p for r in plan.renew for p in (layout.node_cert(r.node), layout.node_key(r.node))])
    ca_step = plan.ca.step.value if auto_rotate else "none"
    issued = []
    if plan.renew or (auto_rotate and plan.ca_step_due) or plan.stale_nodes:
        issued = await asyncio.to_thread(carry_out, circuit.state_dir, config, plan,
                                         ca_steps=None if auto_rotate else ())
    from prefect.transactions import get_transaction

    transaction = get_transaction()
    if transaction is not None:
        transaction.set("replaced", before)
    user_nodes = [n.name for n in config.nodes if node_tls(config, n, root=circuit.root,
                                                            state_dir=circuit.state_dir).source == "user"]
    reload = {i.node for i in issued} | set(plan.reload)
    if plan.changed_files:
        reload |= set(user_nodes)
    for node, fp in served.items():  # an adapter serving another certificate than its file (a cut-short load)
        expected = node_tls(config, config.node(node), root=circuit.root, state_dir=circuit.state_dir)
        try:
            if fp != await asyncio.to_thread(file_fingerprint, expected.cert_file):
                reload.add(node)
        except BatonError:
            pass
    return {"summary": plan.summary() if auto_rotate else [s for s in plan.summary() if "changed" in s] or
            ["nothing due"], "ca_step": ca_step, "issued": sorted(i.node for i in issued),
            "load": sorted(n for n in reload if n in running), "changed_files": list(plan.changed_files),
            "problems": list(plan.problems), "nothing_due": not (issued or reload or plan.changed_files)}


@renew_certs.on_rollback
def _restore_files(transaction: Any) -> None:
    """A load that failed: the replaced certificate files come back, so files and adapters agree again."""
    from baton.config.document import atomic_write_text

    for path, text in (transaction.get("replaced") or {}).items():
        if text is not None:
            atomic_write_text(Path(path), text, mode=0o600 if path.endswith(".key") else 0o644)


@step("load-certs", retries=1, retry_delay_seconds=0.5, retry_condition_fn=retry_transient)
async def load_certs(root: str, nodes: list[str]) -> dict[str, str]:
    """Stage each node's certificate on its adapter, then, when every one accepted, commit them all: new
    connections get the new certificate, established ones carry on. One refusal aborts every stage (all keep
    what they serve) and fails with its reason. Returns each node's fingerprint now served."""
    circuit = open_circuit(root)
    config = circuit.config
    pairs = {}
    for node in nodes:
        files = node_tls(config, config.node(node), root=circuit.root, state_dir=circuit.state_dir)
        cert = await asyncio.to_thread(files.cert_file.read_text, encoding="utf-8")
        key = await asyncio.to_thread(files.key_file.read_text, encoding="utf-8")
        pairs[node] = (cert, key, await asyncio.to_thread(file_fingerprint, files.cert_file))
    staged: list[str] = []
    try:
        for node, (cert, key, _) in pairs.items():
            await circuit.client(node).stage_tls(cert, key)
            staged.append(node)
    except ControlError as exc:
        await asyncio.gather(*(circuit.client(n).abort_tls() for n in staged), return_exceptions=True)
        raise BatonError(f"the adapter of {nodes[len(staged)]} refused its new certificate, so no adapter changed "
                         f"what it serves: {exc.message}") from exc
    committed = {}
    for node, (_, _, fp) in pairs.items():
        await circuit.client(node).commit_tls(fp)
        committed[node] = fp
    return committed


@step("verify-certs", retries=2, retry_delay_seconds=0.5)
async def verify_certs(root: str, expected: dict[str, str]) -> dict[str, str]:
    """Open a new TLS connection to each node's data port and check the certificate it presents."""
    circuit = open_circuit(root)
    mismatched = []
    for node, fp in expected.items():
        spec = circuit.node(node)
        host = "127.0.0.1" if spec.host in ("0.0.0.0", "::") else spec.host
        presented = await asyncio.to_thread(presented_fingerprint, host, spec.port)
        if presented != fp:
            mismatched.append(f"{node} presents {presented[:16] or 'nothing'}..., expected {fp[:16]}...")
    if mismatched:
        raise BatonError(f"after loading, {'; '.join(mismatched)}; run `baton certs rotate` again or see "
                         "`baton certs status`.")
    return expected


def presented_fingerprint(host: str, port: int) -> str:
    """SHA-256 of the certificate a fresh TLS handshake with ``host:port`` presents (no session reused, nothing
    verified: this only asks what is served)."""
    import socket

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection((host, port), timeout=HANDSHAKE_TIMEOUT_S) as raw, \
                context.wrap_socket(raw, server_hostname=None) as tls:
            der = tls.getpeercert(binary_form=True)
    except (OSError, ssl.SSLError):
        return ""
    return hashlib.sha256(der).hexdigest() if der else ""


@step("record-cert-warnings")
async def record_cert_warnings(root: str) -> list[dict[str, Any]]:
    """Every certificate that reached warning, critical, expiry (or is not yet valid) as an event in
    events.jsonl, once per certificate and state."""
    circuit = open_circuit(root)
    found = await asyncio.to_thread(inventory, circuit.state_dir, circuit.config, root=circuit.root)
    reported = []
    for cert in unreported_warnings(circuit.state_dir, found.certs):
        reason = (f"{cert.role} certificate {cert.subject} ({cert.path}): {cert.state}, {cert.days_left:.1f} days "
                  f"left (until {cert.not_after})")
        append_event(circuit.state_dir, "certs", cert.node or str(cert.role), str(cert.state), reason)
        reported.append({"node": cert.node, "state": str(cert.state), "reason": reason})
    await asyncio.to_thread(remember_warnings, circuit.state_dir, found.certs)
    return reported
