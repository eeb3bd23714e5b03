"""Throwaway certificates for the TLS tests (not a test module): a CA and leaves it issues, as PEM."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Coroutine

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

LOOPS = ["uvloop", "asyncio"]
_PEM = serialization.Encoding.PEM


def run_on(loop: str, coro: Coroutine[Any, Any, Any]) -> Any:
    """Run ``coro`` on the named event loop (both must serve TLS the same)."""
    if loop == "uvloop":
        import uvloop

        return uvloop.run(coro)
    return asyncio.run(coro)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def key_pem(key: Any, password: bytes | None = None) -> bytes:
    encryption = (serialization.NoEncryption() if password is None
                  else serialization.BestAvailableEncryption(password))
    return key.private_bytes(_PEM, serialization.PrivateFormat.PKCS8, encryption)


@dataclass(frozen=True)
class Leaf:
    """An issued certificate with its key."""

    cert: x509.Certificate
    key: Any

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(_PEM)

    @property
    def key_pem(self) -> bytes:
        return key_pem(self.key)

    @property
    def fingerprint(self) -> str:
        return self.cert.fingerprint(hashes.SHA256()).hex()

    def write(self, directory: Path, name: str) -> tuple[Path, Path]:
        cert, key = directory / f"{name}.pem", directory / f"{name}.key"
        cert.write_bytes(self.cert_pem)
        key.write_bytes(self.key_pem)
        key.chmod(0o600)
        return cert, key


class TestCA:
    """A self-signed CA issuing server and client certificates for 127.0.0.1 and the given DNS names."""

    __test__ = False  # not a test class

    def __init__(self, name: str = "Baton test CA") -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        now = _now()
        self.cert = (
            x509.CertificateBuilder().subject_name(_name(name)).issuer_name(_name(name))
            .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(_PEM)

    def write(self, directory: Path, name: str = "ca") -> Path:
        path = directory / f"{name}.pem"
        path.write_bytes(self.pem)
        return path

    def issue(self, cn: str = "api", *, dns: tuple[str, ...] = ("localhost", "api.test"), usage: str = "server",
              starts: datetime.timedelta = datetime.timedelta(minutes=-5),
              lasts: datetime.timedelta = datetime.timedelta(days=1), rsa_bits: int = 0) -> Leaf:
        """A leaf whose extended key usage is ``server``, ``client`` or ``both`` authentication."""
        key = rsa.generate_private_key(65537, rsa_bits) if rsa_bits else ec.generate_private_key(ec.SECP256R1())
        begin = _now() + starts
        usages = {"server": [ExtendedKeyUsageOID.SERVER_AUTH], "client": [ExtendedKeyUsageOID.CLIENT_AUTH],
                  "both": [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]}[usage]
        cert = (
            x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(self.cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(begin).not_valid_after(begin + lasts)
            .add_extension(x509.SubjectAlternativeName(
                [x509.DNSName(d) for d in dns] + [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        return Leaf(cert, key)

    def client_context(self, alpn: list[str] | None = None, client: Leaf | None = None,
                       tmp: Path | None = None) -> ssl.SSLContext:
        """A client context trusting this CA (hostname checked), optionally presenting ``client``."""
        context = ssl.create_default_context(cadata=self.pem.decode())
        if alpn:
            context.set_alpn_protocols(alpn)
        if client is not None:
            assert tmp is not None
            cert, key = client.write(tmp, f"client-{client.fingerprint[:8]}")
            context.load_cert_chain(cert, key)
        return context


def peer_fingerprint(writer: asyncio.StreamWriter) -> str:
    """SHA-256 of the certificate the server presented on this connection."""
    der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    return x509.load_der_x509_certificate(der).fingerprint(hashes.SHA256()).hex()
