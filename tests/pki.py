"""Certificates for tests (a helper, not a test module): chains with chosen validity, written as PEM files,
and the real ``openssl`` CLI to check what Baton writes."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

__all__ = ["Issued", "make_cert", "write_pem", "openssl"]


class Issued:
    """A certificate and its key."""

    def __init__(self, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> None:
        self.cert, self.key = cert, key

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        return self.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption())


def make_cert(name: str, *, issuer: Issued | None = None, ca: bool = False, start: datetime | None = None,
              days: float = 30, rsa_key: bool = False) -> Issued:
    """A certificate for ``name`` signed by ``issuer`` (self-signed without one), valid ``days`` from ``start``
    (default: an hour ago)."""
    start = start or datetime.now(UTC) - timedelta(hours=1)
    key = rsa.generate_private_key(65537, 2048) if rsa_key else ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    signer = issuer or Issued(None, key)  # type: ignore[arg-type]
    builder = (x509.CertificateBuilder()
               .subject_name(subject)
               .issuer_name(issuer.cert.subject if issuer else subject)
               .public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(start).not_valid_after(start + timedelta(days=days))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if not ca:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
    return Issued(builder.sign(signer.key, hashes.SHA256()), key)


def write_pem(path: Path, *parts: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(parts))
    return path


def openssl(*args: str | Path) -> str:
    """Run the real ``openssl`` CLI; its stdout (stderr appended), failing the test when it fails."""
    done = subprocess.run(["openssl", *map(str, args)], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, f"openssl {' '.join(map(str, args))} failed: {done.stderr}"
    return done.stdout + done.stderr
