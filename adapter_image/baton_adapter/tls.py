"""TLS on a node's listeners: certificates checked before they are served, and rotated without a restart.

A certificate generation (``Certificate``) is checked material with its own ``ssl.SSLContext``. The node's
TLS listener (``baton_adapter.listener``) starts TLS on each accepted connection with the store's *current*
generation, the way Envoy's SDS swaps a listener's certificate. Committing a rotation replaces that one
reference, so

- every connection accepted after the commit shakes hands with the new certificate, and has its client
  certificate (when ``client_auth`` is set) checked against the new CA bundle;
- an established connection keeps the generation it shook hands with: nothing is closed or renegotiated,
  and keep-alive requests on it carry on.

Sessions resume within a generation only: each context has its own session cache and ticket keys, so a
session from before a commit is unknown to the new context and the client falls back to a full handshake
(where it sees the new certificate). Each generation counts its handshakes (ok, failed, last error), so a
control plane can watch for clients refusing a new certificate right after a commit.

Rotation has two phases so that the control plane can rotate several adapters atomically: ``stage`` checks
the new material and builds its context without serving it, ``commit`` makes it current, ``abort`` drops it.
The adapter never writes certificates to its config: the control plane rewrites the config file itself.

Checks, each failing with one sentence that names where the material came from (a config file, or a field of
``PUT /tls/staged``): a PEM certificate chain (leaf first), a PEM private key that is not encrypted and
matches the leaf, a leaf valid now (``not_before <= now <= not_after``; an issuer should backdate
``not_before`` by a few minutes for clock skew), a PEM CA bundle, and OpenSSL accepting them all (key size,
signature algorithm).

TLS 1.2 or 1.3 (``min_version``), renegotiation off, ALPN as the node's protocol handler declares it
(``http/1.1`` for HTTP nodes, ``h2`` for gRPC; none for raw TCP).
"""

from __future__ import annotations

import datetime
import os
import ssl
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization

from .config import TlsConfig
from .errors import TlsError, TlsStateError

__all__ = ["Certificate", "CertificateInfo", "CertificateStore", "HandshakeStats", "Sources", "TlsSettings",
           "load_certificate", "store_from_config"]

_VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}
_VERIFY = {"none": ssl.CERT_NONE, "optional": ssl.CERT_OPTIONAL, "required": ssl.CERT_REQUIRED}
_PEM = serialization.Encoding.PEM


@dataclass(frozen=True, slots=True)
class TlsSettings:
    """How a listener talks TLS; fixed for the listener's life (a rotation changes certificates only)."""

    min_version: str = "1.2"
    client_auth: str = "none"
    alpn: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"min_version": self.min_version, "client_auth": self.client_auth, "alpn": list(self.alpn)}


@dataclass(frozen=True, slots=True)
class Sources:
    """Where the certificate, key and CA bundle came from, for error messages (``prefix`` starts a sentence)."""

    cert: str = "cert_pem"
    key: str = "key_pem"
    ca: str = "ca_pem"
    prefix: str = ""

    @classmethod
    def of_config(cls, config: TlsConfig, where: str) -> Sources:
        return cls(cert=f"cert_file ({config.cert_file})", key=f"key_file ({config.key_file})",
                   ca=f"ca_file ({config.ca_file})", prefix=f"{where}.")


@dataclass(frozen=True, slots=True)
class CertificateInfo:
    """What the control plane needs to know about a served certificate (its leaf)."""

    fingerprint_sha256: str  # lower-case hex of the DER's SHA-256, no colons
    serial: str  # lower-case hex
    subject: str  # RFC 4514
    issuer: str
    not_before: str  # ISO 8601, UTC, "Z"
    not_after: str
    dns_names: tuple[str, ...]
    ip_addresses: tuple[str, ...]

    @classmethod
    def of(cls, cert: x509.Certificate) -> CertificateInfo:
        try:
            san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            dns = tuple(san.get_values_for_type(x509.DNSName))
            ips = tuple(str(ip) for ip in san.get_values_for_type(x509.IPAddress))
        except x509.ExtensionNotFound:
            dns, ips = (), ()
        return cls(
            fingerprint_sha256=cert.fingerprint(hashes.SHA256()).hex(),
            serial=format(cert.serial_number, "x"),
            subject=cert.subject.rfc4514_string(),
            issuer=cert.issuer.rfc4514_string(),
            not_before=_iso(cert.not_valid_before_utc),
            not_after=_iso(cert.not_valid_after_utc),
            dns_names=dns,
            ip_addresses=ips,
        )

    def to_json(self) -> dict[str, Any]:
        return {"fingerprint_sha256": self.fingerprint_sha256, "serial": self.serial, "subject": self.subject,
                "issuer": self.issuer, "not_before": self.not_before, "not_after": self.not_after,
                "dns_names": list(self.dns_names), "ip_addresses": list(self.ip_addresses)}


class HandshakeStats:
    """Handshakes of the connections one certificate generation was offered to (mutable counters)."""

    __slots__ = ("ok", "failed", "last_error")

    def __init__(self) -> None:
        self.ok = 0
        self.failed = 0
        self.last_error: str | None = None

    def succeeded(self) -> None:
        self.ok += 1

    def failure(self, exc: BaseException) -> None:
        self.failed += 1
        self.last_error = f"{type(exc).__name__}: {exc}"[:300]

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "failed": self.failed, "last_error": self.last_error}


@dataclass(frozen=True, slots=True)
class Certificate:
    """One certificate generation: checked material, the ``SSLContext`` that serves it, its handshakes."""

    info: CertificateInfo
    ca_pem: bytes | None
    ca_fingerprints: tuple[str, ...]
    context: ssl.SSLContext
    handshakes: HandshakeStats = field(default_factory=HandshakeStats, compare=False)

    def to_json(self) -> dict[str, Any]:
        return self.info.to_json() | {"ca_fingerprints_sha256": list(self.ca_fingerprints),
                                      "handshakes": self.handshakes.to_json()}


def load_certificate(
    cert_pem: bytes,
    key_pem: bytes,
    ca_pem: bytes | None,
    settings: TlsSettings,
    sources: Sources = Sources(),
    now: datetime.datetime | None = None,
) -> Certificate:
    """Check the material and build its server context; raise ``TlsError`` (one sentence) when unusable."""
    p = sources.prefix
    chain = _certificates(cert_pem, p + sources.cert)
    leaf = chain[0]
    key = _private_key(key_pem, p + sources.key)
    subject = leaf.subject.rfc4514_string() or "(empty subject)"
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    if leaf.public_key().public_bytes(serialization.Encoding.DER, spki) != key.public_key().public_bytes(
            serialization.Encoding.DER, spki):
        raise TlsError(f"{p}{sources.key} holds a private key that does not match the certificate in "
                       f"{sources.cert} (subject {subject}); pass the key that certificate was issued for.")
    now = now or datetime.datetime.now(datetime.timezone.utc)
    if now > leaf.not_valid_after_utc:
        raise TlsError(f"{p}{sources.cert} holds a certificate (subject {subject}) that expired at "
                       f"{_iso(leaf.not_valid_after_utc)}; issue a new one.")
    if now < leaf.not_valid_before_utc:
        raise TlsError(f"{p}{sources.cert} holds a certificate (subject {subject}) that is not valid before "
                       f"{_iso(leaf.not_valid_before_utc)}; issue one valid now (backdate not_before for clock skew).")
    if settings.client_auth != "none" and ca_pem is None:
        raise TlsError(f"{p}client_auth {settings.client_auth!r} needs a CA bundle ({sources.ca}) to check client "
                       "certificates against.")
    cas = _certificates(ca_pem, p + sources.ca) if ca_pem is not None else []
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = _VERSIONS[settings.min_version]
    context.options |= ssl.OP_NO_RENEGOTIATION
    chain_pem = b"".join(c.public_bytes(_PEM) for c in chain)  # exactly what was checked, other blocks dropped
    key_out = key.private_bytes(_PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    try:
        _load_chain(context, chain_pem + key_out)
    except ssl.SSLError as exc:
        raise TlsError(f"{p}{sources.cert} holds a certificate that OpenSSL refuses with its key "
                       f"({_reason(exc)}); issue one with a stronger key or signature.") from exc
    if cas:
        try:
            context.load_verify_locations(cadata=b"".join(c.public_bytes(_PEM) for c in cas).decode("ascii"))
        except ssl.SSLError as exc:
            raise TlsError(f"{p}{sources.ca} holds a CA bundle that OpenSSL refuses ({_reason(exc)}); "
                           "pass PEM CA certificates with strong signatures.") from exc
    context.verify_mode = _VERIFY[settings.client_auth]
    if settings.alpn:
        context.set_alpn_protocols(list(settings.alpn))
    return Certificate(CertificateInfo.of(leaf), ca_pem, tuple(c.fingerprint(hashes.SHA256()).hex() for c in cas),
                       context)


class CertificateStore:
    """The certificate one TLS listener serves, rotated in two phases without touching live connections."""

    def __init__(self, settings: TlsSettings, certificate: Certificate) -> None:
        self.settings = settings
        self.current = certificate
        self.staged: Certificate | None = None
        self.commits = 0

    def stage(self, cert_pem: bytes, key_pem: bytes, ca_pem: bytes | None = None) -> Certificate:
        """Check and stage new material (replacing any staged); the CA bundle defaults to the current one."""
        staged = load_certificate(cert_pem, key_pem, self.current.ca_pem if ca_pem is None else ca_pem,
                                  self.settings)
        self.staged = staged
        return staged

    def commit(self, fingerprint: str | None = None) -> bool:
        """Serve the staged certificate to every new handshake; return whether the current one changed.

        With ``fingerprint`` the commit is idempotent: when nothing is staged and the current certificate
        already has that fingerprint (a retried commit), nothing changes and no error is raised.
        """
        staged = self.staged
        if staged is None:
            if fingerprint is not None and fingerprint == self.current.info.fingerprint_sha256:
                return False
            raise TlsStateError("no certificate is staged; PUT /tls/staged first.")
        if fingerprint is not None and fingerprint != staged.info.fingerprint_sha256:
            raise TlsStateError(f"the staged certificate has fingerprint {staged.info.fingerprint_sha256}, not "
                                f"{fingerprint}; stage the intended certificate again or commit without one.")
        self.current, self.staged = staged, None
        self.commits += 1
        return True

    def abort(self) -> bool:
        """Drop the staged certificate; return whether there was one."""
        had, self.staged = self.staged is not None, None
        return had

    def to_json(self) -> dict[str, Any]:
        return {"enabled": True, **self.settings.to_json(), "current": self.current.to_json(),
                "staged": None if self.staged is None else self.staged.to_json(), "commits": self.commits}


def store_from_config(config: TlsConfig, alpn: tuple[str, ...], where: str) -> CertificateStore:
    """Read and check a listener's files (``ConfigError``/``TlsError`` naming the file) and build its store."""
    sources = Sources.of_config(config, where)
    settings = TlsSettings(config.min_version, config.client_auth, alpn)
    cert_pem = _read(config.cert_file, f"{where}.cert_file")
    key_pem = _read(config.key_file, f"{where}.key_file")
    ca_pem = None if config.ca_file is None else _read(config.ca_file, f"{where}.ca_file")
    return CertificateStore(settings, load_certificate(cert_pem, key_pem, ca_pem, settings, sources))


def _read(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise TlsError(f"{what} {path} does not exist; write the PEM file there or fix the path.") from None
    except OSError as exc:
        raise TlsError(f"{what} {path} cannot be read: {exc.strerror or exc}.") from None


def _certificates(data: bytes, source: str) -> list[x509.Certificate]:
    if b"-----BEGIN CERTIFICATE-----" not in data:
        raise TlsError(f"{source} holds no PEM certificate; expected a '-----BEGIN CERTIFICATE-----' block.")
    try:
        return x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise TlsError(f"{source} holds a PEM certificate that cannot be parsed ({exc}); re-export it.") from None


def _private_key(data: bytes, source: str) -> Any:
    if b"-----BEGIN" not in data or b"PRIVATE KEY-----" not in data:
        raise TlsError(f"{source} holds no PEM private key; expected a '-----BEGIN PRIVATE KEY-----' block.")
    try:
        return serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise TlsError(f"{source} holds an encrypted private key; give the adapter an unencrypted one "
                       "(readable by the adapter only).") from None
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise TlsError(f"{source} holds a PEM private key that cannot be parsed ({exc}); re-export it.") from None


def _load_chain(context: ssl.SSLContext, pem: bytes) -> None:
    """``load_cert_chain`` reads files only: hand it an anonymous in-memory file (Linux), else a private temp file."""
    memfd = getattr(os, "memfd_create", None)
    if memfd is not None and os.path.isdir("/proc/self/fd"):
        fd = memfd("baton-tls", os.MFD_CLOEXEC)
        try:
            _write_all(fd, pem)
            context.load_cert_chain(f"/proc/self/fd/{fd}")
        finally:
            os.close(fd)
        return
    with tempfile.TemporaryDirectory(prefix="baton-tls-") as tmp:  # mode 0700
        path = os.path.join(tmp, "chain.pem")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            _write_all(fd, pem)
        finally:
            os.close(fd)
        context.load_cert_chain(path)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _reason(exc: ssl.SSLError) -> str:
    return (exc.reason or str(exc)).lower().replace("_", " ")


def _iso(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")

