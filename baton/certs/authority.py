"""The circuit CA: one per project, under ``.baton/tls/``, and the file effects of rotating it.

A CA is an ECDSA P-256 key and a self-signed certificate (``CA:TRUE, pathlen:0``, keyCertSign). Rotation
overlaps two CAs so that nothing ever trusts too little (the decisions are in :mod:`baton.certs.rotation`):

1. :func:`start_rotation` creates ``ca-next.pem``/``.key`` and publishes ``ca-bundle.pem`` = current + next;
2. leaf certificates are re-issued by the next CA (:func:`baton.certs.issuing.issue_node`);
3. :func:`promote_next` makes the next CA the current one (``ca-next.*`` renamed over ``ca.*``);
4. :func:`retire_old` rewrites the bundle with the current CA alone.

Every effect holds the TLS lock, writes atomically, and can be re-run after a crash at any point: a promotion
cut between its two renames is finished by the next CA operation.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from baton.certs.info import fingerprint, issued_by
from baton.certs.layout import TlsLayout
from baton.certs.pem import PrivateKey, cert_pem, key_pem, load_certificates, load_private_key, read_pem, same_key
from baton.certs.rotation import CaStep
from baton.errors import CertificateError

__all__ = ["DEFAULT_CA_LIFETIME", "CertificateAuthority", "new_ca", "load_ca", "load_next_ca", "load_or_create_ca",
           "read_bundle", "start_rotation", "publish_bundle", "promote_next", "retire_old", "apply_ca_step"]

DEFAULT_CA_LIFETIME = timedelta(days=3650)
_RESTORE = ("restore it from a backup, or move the tls directory aside to start a new CA (every node certificate is "
            "then re-issued)")


@dataclass(frozen=True)
class CertificateAuthority:
    """A CA certificate and its private key."""

    cert: x509.Certificate
    key: PrivateKey

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.cert)

    @property
    def not_after(self) -> datetime:
        return self.cert.not_valid_after_utc

    def signed(self, cert: x509.Certificate) -> bool:
        """Whether this CA issued ``cert`` (issuer name and signature checked)."""
        return issued_by(cert, self.cert)


def new_ca(project: str, *, lifetime: timedelta = DEFAULT_CA_LIFETIME, now: datetime | None = None
           ) -> CertificateAuthority:
    """A fresh CA for ``project`` (no file written). Its name carries the date and a random tag, so the current
    and the next CA never share a subject in one bundle."""
    now = (now or datetime.now(UTC)).replace(microsecond=0)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Baton"),
        x509.NameAttribute(NameOID.COMMON_NAME,
                           f"Baton circuit CA {project or 'project'} {now:%Y-%m-%d} {secrets.token_hex(3)}"[:64]),
    ])
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - backdate(lifetime)).not_valid_after(now + lifetime)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    return CertificateAuthority(cert, key)


def load_ca(layout: TlsLayout) -> CertificateAuthority | None:
    """The current CA (None before one is created); its certificate and key must match."""
    with layout.locked():
        _finish_promotion(layout)
        return _load_pair(layout.ca_cert, layout.ca_key)


def load_next_ca(layout: TlsLayout) -> CertificateAuthority | None:
    """The CA a rotation in progress is moving to (None when no rotation is in progress)."""
    with layout.locked():
        _finish_promotion(layout)
        if not layout.next_cert.exists():
            return None
        return _load_pair(layout.next_cert, layout.next_key)


def load_or_create_ca(layout: TlsLayout, project: str, *, lifetime: timedelta = DEFAULT_CA_LIFETIME,
                      now: datetime | None = None) -> CertificateAuthority:
    """The project's CA, created with its bundle on first use. Two processes racing here get the same CA:
    creation holds the TLS lock, and the key is written before the certificate that announces it."""
    with layout.locked():
        _finish_promotion(layout)
        ca = _load_pair(layout.ca_cert, layout.ca_key)
        if ca is None:
            ca = new_ca(project, lifetime=lifetime, now=now)
            layout.write_secret(layout.ca_key, key_pem(ca.key))
            layout.write_public(layout.ca_cert, cert_pem(ca.cert))
        if not layout.bundle.exists():
            layout.write_public(layout.bundle, cert_pem(ca.cert))
        return ca


def read_bundle(layout: TlsLayout) -> list[x509.Certificate]:
    """The certificates of ``ca-bundle.pem`` (empty when it does not exist yet)."""
    if not layout.bundle.exists():
        return []
    return load_certificates(read_pem(layout.bundle, "the circuit's CA bundle"), layout.bundle)


def start_rotation(layout: TlsLayout, project: str, *, lifetime: timedelta = DEFAULT_CA_LIFETIME,
                   now: datetime | None = None) -> CertificateAuthority:
    """Step 1: create the next CA (unless one exists) and trust it beside the current one."""
    with layout.locked():
        _finish_promotion(layout)
        current = _require(_load_pair(layout.ca_cert, layout.ca_key), layout.ca_cert)
        following = _load_pair(layout.next_cert, layout.next_key) if layout.next_cert.exists() else None
        if following is None:
            following = new_ca(project, lifetime=lifetime, now=now)
            layout.write_secret(layout.next_key, key_pem(following.key))
            layout.write_public(layout.next_cert, cert_pem(following.cert))
        layout.write_public(layout.bundle, cert_pem(current.cert, following.cert))
        return following


def publish_bundle(layout: TlsLayout) -> None:
    """Write the bundle the files call for: the current CA, and the next one during a rotation."""
    with layout.locked():
        _finish_promotion(layout)
        current = _require(_load_pair(layout.ca_cert, layout.ca_key), layout.ca_cert)
        certs = [current.cert]
        if layout.next_cert.exists():
            certs.append(_require(_load_pair(layout.next_cert, layout.next_key), layout.next_cert).cert)
        layout.write_public(layout.bundle, cert_pem(*certs))


def promote_next(layout: TlsLayout) -> CertificateAuthority:
    """Step 3: the next CA becomes the current one; the bundle still trusts the old one until
    :func:`retire_old`. Renames the key first, then the certificate (see :func:`_finish_promotion`)."""
    with layout.locked():
        _finish_promotion(layout)
        if not layout.next_cert.exists():
            return _require(_load_pair(layout.ca_cert, layout.ca_key), layout.ca_cert)
        following = _require(_load_pair(layout.next_cert, layout.next_key), layout.next_cert)
        current = _load_pair(layout.ca_cert, layout.ca_key)
        trusted = {fingerprint(c) for c in read_bundle(layout)}
        if current is not None and not {current.fingerprint, following.fingerprint} <= trusted:
            layout.write_public(layout.bundle, cert_pem(current.cert, following.cert))  # both stay trusted
        os.replace(layout.next_key, layout.ca_key)
        os.replace(layout.next_cert, layout.ca_cert)
        return following


def retire_old(layout: TlsLayout) -> None:
    """Step 4: the bundle trusts the current CA alone (the next one too, should a new rotation have begun)."""
    publish_bundle(layout)


def apply_ca_step(layout: TlsLayout, step: CaStep, project: str, *, lifetime: timedelta = DEFAULT_CA_LIFETIME,
                  now: datetime | None = None) -> None:
    """Carry out ``step`` as :func:`baton.certs.rotation.decide_ca_step` decided it (NONE, WAIT and SWITCH
    change no CA file: SWITCH is the re-issuing of the leaves, which the plan lists)."""
    effects: dict[CaStep, Callable[[], object]] = {
        CaStep.CREATE: lambda: load_or_create_ca(layout, project, lifetime=lifetime, now=now),
        CaStep.PUBLISH: lambda: publish_bundle(layout),
        CaStep.START: lambda: start_rotation(layout, project, lifetime=lifetime, now=now),
        CaStep.PROMOTE: lambda: promote_next(layout),
        CaStep.RETIRE: lambda: retire_old(layout),
    }
    effect = effects.get(step)
    if effect is not None:
        effect()


def _finish_promotion(layout: TlsLayout) -> None:
    """Complete a promotion cut between its renames: ``ca.key`` is already the next key, ``ca-next.pem`` is still
    there, ``ca-next.key`` is gone. Called under the lock."""
    if layout.next_cert.exists() and not layout.next_key.exists() and layout.ca_key.exists():
        with contextlib.suppress(CertificateError):
            following = load_certificates(read_pem(layout.next_cert), layout.next_cert)[0]
            if same_key(following, load_private_key(read_pem(layout.ca_key), layout.ca_key)):
                os.replace(layout.next_cert, layout.ca_cert)


def _load_pair(cert_path: Path, key_path: Path) -> CertificateAuthority | None:
    if not cert_path.exists():
        return None
    cert = load_certificates(read_pem(cert_path, "a CA certificate", _RESTORE), cert_path)[0]
    key = load_private_key(read_pem(key_path, "the CA's private key", _RESTORE), key_path)
    if not same_key(cert, key):
        raise CertificateError(f"{key_path}: expected the private key of {cert_path.name}, found a different key; "
                               f"{_RESTORE}.")
    return CertificateAuthority(cert, key)


def _require(ca: CertificateAuthority | None, path: Path) -> CertificateAuthority:
    if ca is None:
        raise CertificateError(f"{path}: expected the circuit CA, found no such file; create it first (`baton certs "
                               "rotate` or `baton up` with security.tls.mode circuit).")
    return ca


def backdate(lifetime: timedelta) -> timedelta:
    """How far before its issue a certificate starts to be valid: a minute for lifetimes of an hour or more
    (clocks of containers and hosts disagree a little), nothing for the seconds-long ones of tests."""
    return timedelta(minutes=1) if lifetime >= timedelta(hours=1) else timedelta(0)
