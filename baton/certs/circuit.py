"""A circuit's TLS as Baton runs it: which certificate each adapter serves, the trust file services read,
making sure every certificate exists before adapters start, and carrying out a renewal plan (the effects
behind ``up``, ``baton certs rotate`` and the scheduled ``cert-check``).

In ``tls.mode circuit`` every adapter serves a certificate of the project's own CA; in ``full`` the ingress
nodes serve the user's ``cert``/``key`` instead (re-read when their content changes) and every other node
the CA's. Services trust ``tls/trust.pem``: the system's roots followed by the circuit's CA bundle, so a
service's calls outside the circuit still verify.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from baton.certs.authority import apply_ca_step, load_next_ca, load_or_create_ca
from baton.certs.ingress import validate_user_pair
from baton.certs.inventory import observe
from baton.certs.issuing import IssuedCert, issue_node, leaf_names, remove_node
from baton.certs.layout import TlsLayout
from baton.certs.observation import SIGNED_BY_NEXT, TlsObservation
from baton.certs.plan import RenewalPlan, plan_renewals
from baton.certs.rotation import CaStep
from baton.config import CircuitConfig, NodeConfig, NodeRole, TLSMode

__all__ = ["NodeTls", "tls_enabled", "user_served", "node_tls", "circuit_names", "user_files", "lifetime",
           "plan_circuit", "carry_out", "ensure_circuit_tls", "write_trust", "system_roots", "inventory",
           "unreported_warnings", "remember_warnings", "check_due"]

_UP_STEPS = (CaStep.CREATE, CaStep.PUBLISH, CaStep.PROMOTE)  # what `up` may do to the CA (rotation is cert-check's)
_WILDCARD_HOSTS = ("0.0.0.0", "::", "127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class NodeTls:
    """The certificate one adapter serves: its files and where they come from (``circuit``: the project's CA;
    ``user``: the user's own pair, tls.mode full on an ingress node)."""

    node: str
    cert_file: Path
    key_file: Path
    source: str


def tls_enabled(config: CircuitConfig) -> bool:
    return config.security.tls.mode is not TLSMode.OFF


def user_served(config: CircuitConfig, node: NodeConfig) -> bool:
    """Whether ``node`` serves the user's own certificate (tls.mode full, an ingress node)."""
    return config.security.tls.mode is TLSMode.FULL and node.role is NodeRole.INGRESS


def _user_path(root: Path, name: str) -> Path:
    path = Path(name)
    return path if path.is_absolute() else root / path


def user_files(config: CircuitConfig, root: Path) -> list[Path]:
    """The user's cert and key files (tls.mode full), resolved against the project root; none otherwise."""
    tls = config.security.tls
    if tls.mode is not TLSMode.FULL:
        return []
    return [_user_path(root, tls.cert), _user_path(root, tls.key)]


def node_tls(config: CircuitConfig, node: NodeConfig, *, root: Path, state_dir: Path) -> NodeTls:
    if user_served(config, node):
        cert, key = user_files(config, root)
        return NodeTls(node.name, cert, key, "user")
    layout = TlsLayout.of(state_dir)
    return NodeTls(node.name, layout.node_cert(node.name), layout.node_key(node.name), "circuit")


def circuit_names(config: CircuitConfig, containers: Mapping[str, Iterable[str]] | None = None
                  ) -> dict[str, tuple[str, ...]]:
    """The subjectAltNames of each node the circuit CA certifies (every node not serving the user's pair): its
    name, its containers' names, the loopback names and the address it listens on when that is specific."""
    names = {}
    for node in config.nodes:
        if user_served(config, node):
            continue
        extra = () if node.host in _WILDCARD_HOSTS else (node.host,)
        names[node.name] = leaf_names(node.name, (containers or {}).get(node.name, ()), extra)
    return names


def lifetime(config: CircuitConfig) -> timedelta:
    return timedelta(days=config.security.tls.lifetime_days)


def plan_circuit(state_dir: Path, config: CircuitConfig, *, root: Path, names: Mapping[str, Iterable[str]],
                 served: Mapping[str, str] | None = None, renew: Iterable[str] = (), force_ca: bool = False,
                 now: datetime | None = None) -> tuple[TlsObservation, RenewalPlan]:
    """What the project's TLS files show and what is due (pure decision over one read). ``renew`` forces a new
    certificate for those nodes; ``force_ca`` starts a CA rotation."""
    tls = config.security.tls
    layout = TlsLayout.of(state_dir)
    thresholds = {"warning_days": tls.warning_days, "critical_days": tls.critical_days}
    seen = observe(layout, nodes=list(names), user_files=user_files(config, root), served=served, now=now,
                   **thresholds)
    forced = set(renew)
    plan = plan_renewals(seen, names={n: tuple(v) for n, v in names.items()}, now=_now(now),
                         warning_days=tls.warning_days, force_ca=force_ca,
                         min_overlap=timedelta(seconds=tls.rotate_check_interval_s * 0.9))
    if forced:
        extra = plan_renewals(seen, names={n: tuple(v) for n, v in names.items() if n in forced}, now=_now(now),
                              warning_days=tls.warning_days, force_nodes=True,
                              min_overlap=timedelta(seconds=tls.rotate_check_interval_s * 0.9))
        chosen = {r.node: r for r in plan.renew} | {r.node: r for r in extra.renew}
        plan = _with_renewals(plan, tuple(chosen[n] for n in sorted(chosen)))
    return seen, plan


def _with_renewals(plan: RenewalPlan, renew: tuple) -> RenewalPlan:
    return replace(plan, renew=renew)


def carry_out(state_dir: Path, config: CircuitConfig, plan: RenewalPlan, *, ca_steps: Iterable[CaStep] | None = None,
              now: datetime | None = None) -> list[IssuedCert]:
    """Apply ``plan``: the CA step first (only those in ``ca_steps`` when given), then the node certificates with
    the CA that signs now, then remove certificates of nodes gone from the circuit; rewrite the trust file."""
    tls = config.security.tls
    layout = TlsLayout.of(state_dir)
    if ca_steps is None or plan.ca.step in tuple(ca_steps):
        apply_ca_step(layout, plan.ca.step, config.name, now=now)
    ca = load_next_ca(layout) if plan.issuer == SIGNED_BY_NEXT else None
    ca = ca or load_or_create_ca(layout, config.name, now=now)
    issued = [issue_node(layout, ca, r.node, names=r.names, lifetime=lifetime(config), now=now,
                         warning_days=tls.warning_days, critical_days=tls.critical_days) for r in plan.renew]
    for node in plan.stale_nodes:
        remove_node(layout, node)
    write_trust(layout)
    return issued


def ensure_circuit_tls(state_dir: Path, config: CircuitConfig, *, root: Path,
                       names: Mapping[str, Iterable[str]], now: datetime | None = None) -> list[IssuedCert]:
    """Before adapters start: the user's pair is valid (mode full; a CertificateError names the file), the CA
    exists and every node has a usable certificate for its names. A CA rotation is left to ``cert-check``."""
    for_user = user_files(config, root)
    if for_user:
        tls = config.security.tls
        validate_user_pair(for_user[0], for_user[1], now=now, warning_days=tls.warning_days,
                           critical_days=tls.critical_days)
    _, plan = plan_circuit(state_dir, config, root=root, names=names, now=now)
    layout = TlsLayout.of(state_dir)
    if not plan.renew and plan.ca.step not in _UP_STEPS and layout.trust.exists():
        return []
    return carry_out(state_dir, config, plan, ca_steps=_UP_STEPS, now=now)


def system_roots() -> str:
    """The PEM text of the system's trusted roots (OpenSSL's default CA file, else certifi's); empty when
    neither is found."""
    paths = ssl.get_default_verify_paths()
    candidates = [paths.cafile, paths.openssl_cafile, "/etc/ssl/certs/ca-certificates.crt"]
    try:
        import certifi

        candidates.append(certifi.where())
    except ImportError:
        pass
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            try:
                return Path(candidate).read_text(encoding="utf-8", errors="replace")
            except OSError:
                continue
    return ""


def write_trust(layout: TlsLayout) -> Path:
    """``tls/trust.pem``: the system's roots and the circuit's CA bundle (what ``SSL_CERT_FILE`` names)."""
    roots = system_roots()
    bundle = layout.bundle.read_text(encoding="utf-8") if layout.bundle.exists() else ""
    text = (roots.rstrip("\n") + "\n" if roots else "") + "# Baton circuit CA bundle\n" + bundle
    layout.write_public(layout.trust, text)
    return layout.trust


def _now(now: datetime | None) -> datetime:
    return now or datetime.now(UTC)


def inventory(state_dir: Path, config: CircuitConfig, *, root: Path, served_by: Mapping[str, Iterable[str]] | None = None,
              now: datetime | None = None) -> Any:
    """Every certificate of the circuit as ``baton certs status`` shows it (``served_by``: fingerprint -> the
    adapters seen serving it)."""
    from baton.certs.inventory import inspect_project

    tls = config.security.tls
    users = user_files(config, root)
    return inspect_project(TlsLayout.of(state_dir), nodes=list(circuit_names(config)),
                           user_cert=users[0] if users else None, served_by=served_by, now=now,
                           warning_days=tls.warning_days, critical_days=tls.critical_days)


def _warned_file(state_dir: Path) -> Path:
    return TlsLayout.of(state_dir).root / "warned.json"


def unreported_warnings(state_dir: Path, certificates: Iterable[Any]) -> list[Any]:
    """Certificates not ``ok`` whose state was not reported yet (a certificate that stays critical is reported
    once, again when it expires)."""
    import json

    try:
        warned = json.loads(_warned_file(state_dir).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        warned = {}
    if not isinstance(warned, dict):
        warned = {}
    return [c for c in certificates if c.state.value != "ok" and warned.get(c.fingerprint) != c.state.value]


def remember_warnings(state_dir: Path, certificates: Iterable[Any]) -> None:
    import json

    TlsLayout.of(state_dir).write_public(_warned_file(state_dir), json.dumps(
        {c.fingerprint: c.state.value for c in certificates if c.state.value != "ok"}))


def check_due(state_dir: Path, config: CircuitConfig, *, root: Path, served: Mapping[str, str],
              now: datetime | None = None) -> str:
    """Why a ``cert-check`` run is due now (empty: nothing to do, so nothing runs): a certificate to renew (with
    ``auto_rotate``), a CA step, the user's files changed, an adapter serving another certificate than its
    file, or a certificate whose warning state was not reported yet."""
    if not tls_enabled(config):
        return ""
    names = circuit_names(config)
    _, plan = plan_circuit(state_dir, config, root=root, names=names, served=served, now=now)
    auto = config.security.tls.auto_rotate
    if plan.changed_files:
        return f"{plan.changed_files[0]} changed"
    if plan.reload:
        return f"{plan.reload[0]} serves another certificate than its file"
    if auto and (plan.renew or plan.ca_step_due):
        return plan.summary()[0]
    warnings = unreported_warnings(state_dir, inventory(state_dir, config, root=root, now=now).certs)
    if warnings:
        return f"{warnings[0].role} certificate {warnings[0].node or warnings[0].subject} is {warnings[0].state}"
    return ""
