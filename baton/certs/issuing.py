"""Leaf certificates for the adapters, issued by the circuit CA into ``.baton/tls/nodes/``.

A leaf is an ECDSA P-256 key and a certificate for its node's names (the node name, the caller's container
names, ``localhost``, ``127.0.0.1``, ``::1`` and any extra address), good for serverAuth and clientAuth (mTLS).
It never outlives the CA that signs it.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from baton.certs.authority import CertificateAuthority, backdate
from baton.certs.info import DEFAULT_CRITICAL_DAYS, DEFAULT_WARNING_DAYS, CertInfo, CertRole, describe, normal_name
from baton.certs.layout import TlsLayout
from baton.certs.pem import PrivateKey, cert_pem, key_pem
from baton.errors import CertificateError, UsageError

__all__ = ["DEFAULT_LEAF_LIFETIME", "LOOPBACK_NAMES", "IssuedCert", "leaf_names", "new_leaf", "issue_node",
           "remove_node"]

DEFAULT_LEAF_LIFETIME = timedelta(days=90)
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
_DNS_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")


@dataclass(frozen=True)
class IssuedCert:
    """What :func:`issue_node` wrote: where, for which names, signed by which CA (its SHA-256 fingerprint)."""

    node: str
    cert_path: Path
    key_path: Path
    names: tuple[str, ...]
    issuer_fingerprint: str
    info: CertInfo


def leaf_names(node: str, containers: Iterable[str] = (), extra: Iterable[str] = ()) -> tuple[str, ...]:
    """The subjectAltNames of ``node``'s certificate, in order and without repeats: the node name, its
    container names, the loopback names, then the extra DNS names or IP addresses."""
    return _checked_names((node, *containers, *LOOPBACK_NAMES, *extra))


def _checked_names(names: Iterable[str]) -> tuple[str, ...]:
    checked: list[str] = []
    for name in names:
        normal = _valid_name(name)
        if normal not in checked:
            checked.append(normal)
    if not checked:
        raise UsageError("expected at least one DNS name or IP address for a certificate, found none; pass the "
                         "node's names (leaf_names).")
    return tuple(checked)


def new_leaf(ca: CertificateAuthority, node: str, names: Iterable[str], *,
             lifetime: timedelta = DEFAULT_LEAF_LIFETIME, now: datetime | None = None
             ) -> tuple[x509.Certificate, PrivateKey]:
    """A leaf certificate and its key for ``node`` signed by ``ca`` (no file written)."""
    now = (now or datetime.now(UTC)).replace(microsecond=0)
    if lifetime <= timedelta(0):
        raise UsageError(f"expected a positive certificate lifetime, found {lifetime}; pass seconds or days above 0.")
    if ca.not_after <= now:
        raise CertificateError(f"the circuit CA ({ca.cert.subject.rfc4514_string()}) expired on "
                               f"{ca.not_after.isoformat()}, so it cannot issue certificates; rotate it first "
                               "(`baton certs rotate`).")
    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = []
    for name in names:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            sans.append(x509.DNSName(name))
    ca_ski = ca.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Baton"),
                                 x509.NameAttribute(NameOID.COMMON_NAME, node)]))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(max(now - backdate(lifetime), ca.cert.not_valid_before_utc))
        .not_valid_after(min(now + lifetime, ca.not_after))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=False, content_commitment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                     crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                       critical=False)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        .sign(ca.key, hashes.SHA256())
    )
    return cert, key


def issue_node(layout: TlsLayout, ca: CertificateAuthority, node: str, *, names: Iterable[str] | None = None,
               lifetime: timedelta = DEFAULT_LEAF_LIFETIME, now: datetime | None = None,
               warning_days: float = DEFAULT_WARNING_DAYS, critical_days: float = DEFAULT_CRITICAL_DAYS
               ) -> IssuedCert:
    """Issue ``node``'s certificate with ``ca`` for ``names`` (default: ``leaf_names(node)``; pass the same
    names the plan was made with, ``NodeRenewal.names``) and write ``nodes/<node>.key`` (0600) then
    ``nodes/<node>.pem``, each atomically, under the TLS lock; a new key every time."""
    names = leaf_names(node) if names is None else _checked_names(names)
    cert, key = new_leaf(ca, node, names, lifetime=lifetime, now=now)
    cert_path, key_path = layout.node_cert(node), layout.node_key(node)
    with layout.locked():
        layout.write_secret(key_path, key_pem(key))
        layout.write_public(cert_path, cert_pem(cert))
    info = describe(cert, role=CertRole.NODE, path=str(cert_path), node=node, now=now,
                    warning_days=warning_days, critical_days=critical_days)
    return IssuedCert(node, cert_path, key_path, names, ca.fingerprint, info)


def remove_node(layout: TlsLayout, node: str) -> None:
    """Delete ``node``'s certificate and key (a node removed from the circuit); nothing if they are gone."""
    with layout.locked():
        layout.node_cert(node).unlink(missing_ok=True)
        layout.node_key(node).unlink(missing_ok=True)


def _valid_name(name: str) -> str:
    normal = normal_name(str(name).strip())
    try:
        ipaddress.ip_address(normal)
        return normal
    except ValueError:
        pass
    labels = normal.split(".")
    if normal.startswith("*."):
        labels = labels[1:]
    if not normal or len(normal) > 253 or not all(_DNS_LABEL.match(label) for label in labels):
        raise UsageError(f"expected a DNS name or an IP address for a certificate, found {name!r}; use letters, "
                         "digits, '-' and '.' (e.g. api.internal) or an address such as 10.0.0.5.")
    return normal
