"""The user's own certificate and key (``security.tls.cert``/``key``, tls.mode full), checked before any
adapter serves them. Checking only reads: nothing is written, whatever the outcome.

The certificate file holds the server certificate first, then any intermediates; each must be signed by the
next one (the chain is checked internally: the root the clients trust is theirs to know). The key must be
the server certificate's, unencrypted; every certificate must be valid now.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509

from baton.certs.info import DEFAULT_CRITICAL_DAYS, DEFAULT_WARNING_DAYS, CertInfo, CertRole, describe, issued_by
from baton.certs.pem import PrivateKey, load_certificates, load_private_key, read_pem, same_key
from baton.certs.renewal import content_digest
from baton.errors import CertificateError

__all__ = ["UserCertificate", "validate_user_pair"]


@dataclass(frozen=True)
class UserCertificate:
    """A valid pair: the chain (server certificate first) and the SHA-256 of each file as checked."""

    cert_path: Path
    key_path: Path
    chain: tuple[CertInfo, ...]
    cert_digest: str
    key_digest: str

    @property
    def leaf(self) -> CertInfo:
        return self.chain[0]

    @property
    def digests(self) -> dict[str, str]:
        """``{path: sha256}``, as :meth:`baton.certs.layout.TlsLayout.record_user_files` records them."""
        return {str(self.cert_path): self.cert_digest, str(self.key_path): self.key_digest}


def validate_user_pair(cert_path: str | Path, key_path: str | Path, *, now: datetime | None = None,
                       warning_days: float = DEFAULT_WARNING_DAYS, critical_days: float = DEFAULT_CRITICAL_DAYS
                       ) -> UserCertificate:
    """The checked pair, or a :class:`~baton.errors.CertificateError` naming the file and what to do."""
    now = now or datetime.now(UTC)
    cert_path, key_path = Path(cert_path), Path(key_path)
    cert_data = read_pem(cert_path, "a PEM certificate (security.tls.cert)")
    certs = load_certificates(cert_data, cert_path)
    key_data = read_pem(key_path, "a PEM private key (security.tls.key)")
    key = load_private_key(key_data, key_path)
    _check_key(certs, key, cert_path, key_path)
    for index, cert in enumerate(certs):
        _check_validity(cert, index, cert_path, now)
    for index, (cert, issuer) in enumerate(zip(certs, certs[1:])):
        if not issued_by(cert, issuer):
            raise CertificateError(
                f"{cert_path}: expected each certificate to be signed by the next one in the file, found "
                f"certificate {index + 1} ({_name(cert)}, issued by {cert.issuer.rfc4514_string()}) not signed by "
                f"certificate {index + 2} ({_name(issuer)}); keep the server certificate first and then its "
                "intermediates in order, up to (not necessarily including) the root."
            )
    chain = tuple(describe(c, role=CertRole.USER, path=str(cert_path), now=now, warning_days=warning_days,
                           critical_days=critical_days) for c in certs)
    return UserCertificate(cert_path, key_path, chain, content_digest(cert_data), content_digest(key_data))


def _check_key(certs: list[x509.Certificate], key: PrivateKey, cert_path: Path, key_path: Path) -> None:
    if same_key(certs[0], key):
        return
    matching = [i for i, c in enumerate(certs) if same_key(c, key)]
    if matching:
        raise CertificateError(
            f"{cert_path}: expected the certificate of {key_path} first, found it as certificate {matching[0] + 1} "
            f"of {len(certs)}; put the server certificate first, then its intermediates."
        )
    raise CertificateError(
        f"{cert_path}: expected the certificate of the private key in {key_path}, found one for a different key "
        f"({_name(certs[0])}); pass the key it was issued with, or the certificate issued for this key."
    )


def _check_validity(cert: x509.Certificate, index: int, cert_path: Path, now: datetime) -> None:
    which = "the certificate" if index == 0 else f"certificate {index + 1} ({_name(cert)})"
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    if now >= end:
        days = (now - end).total_seconds() / 86400
        raise CertificateError(f"{cert_path}: expected {which} to be valid now, found it expired on "
                               f"{end.isoformat()} ({days:.1f} days ago); renew it and replace the file.")
    if now < start:
        raise CertificateError(f"{cert_path}: expected {which} to be valid now, found it valid only from "
                               f"{start.isoformat()}; check this machine's clock, or wait until then.")


def _name(cert: x509.Certificate) -> str:
    return cert.subject.rfc4514_string() or "no subject"
