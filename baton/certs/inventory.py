"""Reading a project's certificates: :func:`observe` for the decisions, :func:`inspect_project` for
``baton certs status``. Both only read (no lock taken, nothing written), so they never wait for a rotation
and a damaged file becomes a problem sentence, not an exception."""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography import x509

from baton.certs.info import (DEFAULT_CRITICAL_DAYS, DEFAULT_WARNING_DAYS, CertInfo, CertRole, describe,
                              fingerprint, issued_by)
from baton.certs.layout import TlsLayout
from baton.certs.observation import SIGNED_BY_CA, SIGNED_BY_NEXT, LeafFacts, TlsObservation
from baton.certs.pem import load_certificates, load_private_key, read_pem, same_key
from baton.errors import CertificateError

__all__ = ["Inventory", "observe", "inspect_project", "file_digest"]


@dataclass(frozen=True)
class Inventory:
    """Every certificate of a project (CAs, then nodes, then the user's), and the files that cannot be read."""

    certs: tuple[CertInfo, ...]
    problems: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"certificates": [c.to_json() for c in self.certs], "problems": list(self.problems)}


def file_digest(path: str | Path) -> str | None:
    """SHA-256 of a file's content, read in chunks (None when it does not exist); equals
    :func:`baton.certs.renewal.content_digest` of its bytes."""
    try:
        with Path(path).open("rb") as handle:
            return hashlib.file_digest(handle, "sha256").hexdigest()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None


def observe(layout: TlsLayout, *, nodes: Iterable[str], user_files: Iterable[str | Path] = (),
            served: Mapping[str, str] | None = None, now: datetime | None = None,
            warning_days: float = DEFAULT_WARNING_DAYS, critical_days: float = DEFAULT_CRITICAL_DAYS
            ) -> TlsObservation:
    """The TLS files of the project for the circuit's ``nodes``; ``served`` maps a node to the fingerprint its
    adapter reports serving, when known."""
    now = now or datetime.now(UTC)
    problems: list[str] = []
    thresholds = {"now": now, "warning_days": warning_days, "critical_days": critical_days}
    ca_cert = _read_cert(layout.ca_cert, problems)
    next_cert = _read_cert(layout.next_cert, problems)
    bundle = _read_bundle(layout, problems)
    wanted = list(dict.fromkeys(nodes))
    leaves = {node: _leaf(layout, node, ca_cert, next_cert, (served or {}).get(node, ""), thresholds)
              for node in wanted}
    user: dict[str, str | None] = {}
    for path in user_files:
        try:
            user[str(path)] = file_digest(path)
        except OSError as exc:
            user[str(path)] = None
            problems.append(f"{path}: expected a readable file, but it cannot be read ({exc.strerror}); check its "
                            "permissions.")
    return TlsObservation(
        ca=describe(ca_cert, role=CertRole.CA, path=str(layout.ca_cert), **thresholds) if ca_cert else None,
        next_ca=(describe(next_cert, role=CertRole.NEXT_CA, path=str(layout.next_cert), **thresholds)
                 if next_cert else None),
        next_key_present=layout.next_key.exists(),
        bundle=tuple(fingerprint(c) for c in bundle), bundle_written_at=_mtime(layout.bundle),
        leaves=leaves, stale_nodes=tuple(n for n in layout.node_names() if n not in wanted),
        user_files=user, recorded_files=layout.recorded_user_files(),
        problems=tuple(problems),  # a damaged node certificate is not one: the plan re-issues it
    )


def inspect_project(layout: TlsLayout, *, nodes: Iterable[str] = (), user_cert: str | Path | None = None,
                    served_by: Mapping[str, Collection[str]] | None = None, now: datetime | None = None,
                    warning_days: float = DEFAULT_WARNING_DAYS, critical_days: float = DEFAULT_CRITICAL_DAYS
                    ) -> Inventory:
    """Every certificate of the project: the CA, the next CA, a retiring CA still in the bundle, each node's
    certificate (``nodes`` and any other found in ``tls/nodes``), and the user's ``user_cert`` (tls.mode full).
    ``served_by`` maps a fingerprint to the adapters the caller saw serving it; it fills ``CertInfo.served_by``.
    """
    now = now or datetime.now(UTC)
    problems: list[str] = []
    thresholds = {"now": now, "warning_days": warning_days, "critical_days": critical_days}
    certs: list[CertInfo] = []
    for role, path in ((CertRole.CA, layout.ca_cert), (CertRole.NEXT_CA, layout.next_cert)):
        cert = _read_cert(path, problems)
        if cert is not None:
            certs.append(describe(cert, role=role, path=str(path), **thresholds))
    known = {c.fingerprint for c in certs}
    for cert in _read_bundle(layout, problems):
        if fingerprint(cert) not in known:
            certs.append(describe(cert, role=CertRole.RETIRING_CA, path=str(layout.bundle), **thresholds))
    wanted = list(dict.fromkeys(nodes))
    for node in sorted(set(wanted) | set(layout.node_names()), key=lambda n: (n not in wanted, n)):
        path = layout.node_cert(node)
        if not path.exists():
            problems.append(f"{path}: node {node} has no certificate yet; it is issued at the next `baton up` or "
                            "`baton certs rotate`.")
            continue
        cert = _read_cert(path, problems)
        if cert is not None:
            certs.append(describe(cert, role=CertRole.NODE, path=str(path), node=node, **thresholds))
    if user_cert:
        try:
            cert = load_certificates(read_pem(user_cert, "a PEM certificate"), user_cert)[0]
            certs.append(describe(cert, role=CertRole.USER, path=str(user_cert), **thresholds))
        except CertificateError as exc:
            problems.append(exc.message)
    seen = served_by or {}
    certs = [replace(c, served_by=tuple(sorted(seen.get(c.fingerprint, ())))) for c in certs]
    return Inventory(tuple(certs), tuple(problems))


def _leaf(layout: TlsLayout, node: str, ca: x509.Certificate | None, following: x509.Certificate | None,
          served: str, thresholds: dict[str, Any]) -> LeafFacts:
    path = layout.node_cert(node)
    if not path.exists():
        return LeafFacts(node, served=served)
    try:
        cert = load_certificates(read_pem(path, "a node certificate"), path)[0]
        info = describe(cert, role=CertRole.NODE, path=str(path), node=node, **thresholds)
    except CertificateError as exc:
        return LeafFacts(node, problem=exc.message, served=served)
    try:
        key_matches = same_key(cert, load_private_key(read_pem(layout.node_key(node), "a private key"),
                                                      layout.node_key(node)))
    except CertificateError:
        key_matches = False
    signed_by = SIGNED_BY_CA if issued_by(cert, ca) else SIGNED_BY_NEXT if issued_by(cert, following) else ""
    return LeafFacts(node, info=info, signed_by=signed_by, key_matches=key_matches, written_at=_mtime(path),
                     served=served)


def _read_cert(path: Path, problems: list[str]) -> x509.Certificate | None:
    if not path.exists():
        return None
    try:
        return load_certificates(read_pem(path, "a PEM certificate"), path)[0]
    except CertificateError as exc:
        problems.append(exc.message)
        return None


def _read_bundle(layout: TlsLayout, problems: list[str]) -> list[x509.Certificate]:
    if not layout.bundle.exists():
        return []
    try:
        return load_certificates(read_pem(layout.bundle, "the circuit's CA bundle"), layout.bundle)
    except CertificateError as exc:
        problems.append(exc.message)
        return []


def _mtime(path: Path) -> datetime | None:
    try:
        return datetime.fromtimestamp(path.stat().st_mtime, UTC)
    except OSError:
        return None
