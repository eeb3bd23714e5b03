"""PEM files: reading certificates and private keys from bytes, and writing them back.

Every failure is a :class:`~baton.errors.CertificateError` whose one sentence names the file, says what was
expected and what was found (an empty file, binary data, a DER certificate, a private key where a certificate
belongs...), and what to do. Nothing else escapes, whatever the bytes: the loaders are fuzzed.
"""

from __future__ import annotations

import re
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa

from baton.errors import CertificateError

__all__ = ["MAX_PEM_BYTES", "PrivateKey", "read_pem", "load_certificates", "load_private_key", "cert_pem",
           "key_pem", "same_key"]

MAX_PEM_BYTES = 1 << 20  # a chain of a dozen certificates is ~20 KB; refuse to parse anything near a megabyte

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey \
    | dsa.DSAPrivateKey

# what cryptography raises for bytes it cannot make sense of (InvalidVersion: a version field other than v1/v3)
_PARSE_ERRORS = (ValueError, TypeError, UnsupportedAlgorithm, x509.InvalidVersion, x509.DuplicateExtension,
                 x509.UnsupportedGeneralNameType)
_BEGIN = re.compile(rb"-----BEGIN ([A-Z0-9 ]{1,64})-----")
_KEY_LABELS = {b"PRIVATE KEY", b"EC PRIVATE KEY", b"RSA PRIVATE KEY", b"DSA PRIVATE KEY"}


def read_pem(path: str | Path, what: str = "a PEM file",
             if_missing: str = "create it or correct the path in baton.yaml (security.tls)") -> bytes:
    """The bytes of ``path``, refusing a missing, unreadable or oversized file in one sentence (``if_missing``
    says what to do about a missing one)."""
    path = Path(path)
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_PEM_BYTES + 1)
    except FileNotFoundError:
        raise CertificateError(f"{path}: expected {what}, found no such file; {if_missing}.") from None
    except IsADirectoryError:
        raise CertificateError(f"{path}: expected {what}, found a directory; name the file itself.") from None
    except OSError as exc:
        raise CertificateError(f"{path}: expected {what}, but it cannot be read ({exc.strerror}); check its "
                               "permissions.") from None
    if len(data) > MAX_PEM_BYTES:
        raise CertificateError(f"{path}: expected {what}, found a file larger than {MAX_PEM_BYTES // 1024} KiB; "
                               "name the certificate or key file itself.")
    return data


def load_certificates(data: bytes, label: str | Path) -> list[x509.Certificate]:
    """Every certificate of a PEM file, in file order (leaf first for a chain); at least one."""
    blocks = _blocks(data)
    certs = []
    for index, (kind, block) in enumerate((k, b) for k, b in blocks if k == b"CERTIFICATE"):
        try:
            certs.append(_parsed(x509.load_pem_x509_certificate(block)))
        except _PARSE_ERRORS as exc:
            raise CertificateError(
                f"{label}: expected PEM certificates, found certificate {index + 1} damaged ({_first_line(exc)}); "
                "replace the file with an intact copy."
            ) from None
    if not certs:
        raise CertificateError(f"{label}: expected a PEM certificate (-----BEGIN CERTIFICATE-----), found "
                               f"{_found(data, blocks)}; {_advice(data, blocks, 'certificate')}.")
    return certs


def load_private_key(data: bytes, label: str | Path) -> PrivateKey:
    """The one private key of a PEM file (unencrypted: Baton serves it without asking for a passphrase)."""
    blocks = _blocks(data)
    if any(kind == b"ENCRYPTED PRIVATE KEY" for kind, _ in blocks) or re.search(rb"Proc-Type: 4,ENCRYPTED", data):
        raise CertificateError(f"{label}: expected an unencrypted PEM private key, found an encrypted one; decrypt "
                               f"it with `openssl pkey -in {label} -out {label}` (keep the result mode 0600).")
    keys = [block for kind, block in blocks if kind in _KEY_LABELS]
    if not keys:
        raise CertificateError(f"{label}: expected a PEM private key (-----BEGIN PRIVATE KEY-----), found "
                               f"{_found(data, blocks)}; {_advice(data, blocks, 'key')}.")
    if len(keys) > 1:
        raise CertificateError(f"{label}: expected one private key, found {len(keys)}; keep only the key of the "
                               "certificate in this file.")
    try:
        key = serialization.load_pem_private_key(keys[0], password=None)
    except _PARSE_ERRORS as exc:
        raise CertificateError(f"{label}: expected a PEM private key, found a damaged or unsupported one "
                               f"({_first_line(exc)}); replace it with an intact RSA or EC key.") from None
    if not isinstance(key, PrivateKey):
        raise CertificateError(f"{label}: expected an RSA, EC, Ed25519 or Ed448 private key, found a "
                               f"{type(key).__name__}; use a key of a type TLS serves.")
    return key


def _parsed(cert: x509.Certificate) -> x509.Certificate:
    """``cert`` once every field Baton reads has parsed: cryptography parses names, extensions and the key
    lazily, so a damaged field would otherwise raise far from the file it came from."""
    cert.subject.rfc4514_string()
    cert.issuer.rfc4514_string()
    for extension in cert.extensions:
        _ = extension.value
    _ = cert.serial_number, cert.not_valid_before_utc, cert.not_valid_after_utc
    cert.public_key()
    return cert


def cert_pem(*certs: x509.Certificate) -> str:
    """Certificates as PEM text, in the order given."""
    return "".join(c.public_bytes(serialization.Encoding.PEM).decode("ascii") for c in certs)


def key_pem(key: PrivateKey) -> str:
    """A private key as unencrypted PKCS#8 PEM text."""
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode("ascii")


def same_key(cert: x509.Certificate, key: PrivateKey) -> bool:
    """Whether ``key`` is the private half of ``cert``'s public key."""
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    try:
        return cert.public_key().public_bytes(*spki) == key.public_key().public_bytes(*spki)
    except _PARSE_ERRORS:
        return False


def _blocks(data: bytes) -> list[tuple[bytes, bytes]]:
    """``(label, block)`` for each BEGIN/END pair, in file order (text between blocks is ignored)."""
    blocks: list[tuple[bytes, bytes]] = []
    unclosed: set[bytes] = set()  # labels with no END further on: never search for them again (linear time)
    pos = 0
    while (begin := _BEGIN.search(data, pos)) is not None:
        label = begin.group(1)
        end_marker = b"-----END " + label + b"-----"
        end = -1 if label in unclosed else data.find(end_marker, begin.end())
        if end < 0:
            unclosed.add(label)
            pos = begin.end()
            continue
        blocks.append((label, data[begin.start():end + len(end_marker)] + b"\n"))
        pos = end + len(end_marker)
    return blocks


def _found(data: bytes, blocks: list[tuple[bytes, bytes]]) -> str:
    """What a file holds, as a user would say it."""
    if not data.strip():
        return "an empty file"
    if blocks:
        kinds = sorted({kind.decode("ascii") for kind, _ in blocks})
        return "only " + ", ".join(f"a {kind} block" for kind in kinds)
    if b"-----BEGIN" in data:
        return "a PEM block with a broken BEGIN/END frame"
    if _is_der_certificate(data):
        return "a DER (binary) certificate"
    if _looks_binary(data):
        return "binary data"
    return "text without any PEM block"


def _advice(data: bytes, blocks: list[tuple[bytes, bytes]], wanted: str) -> str:
    kinds = {kind for kind, _ in blocks}
    if wanted == "certificate" and kinds & (_KEY_LABELS | {b"ENCRYPTED PRIVATE KEY"}):
        return "this looks like the key file: check that cert and key are not swapped in baton.yaml"
    if wanted == "key" and b"CERTIFICATE" in kinds:
        return "this looks like the certificate file: check that cert and key are not swapped in baton.yaml"
    if wanted == "certificate" and _is_der_certificate(data):
        return "convert it with `openssl x509 -inform der -in FILE -out FILE.pem`"
    return f"name a PEM {wanted} file"


def _is_der_certificate(data: bytes) -> bool:
    if not data.startswith(b"\x30"):
        return False
    try:
        x509.load_der_x509_certificate(data)
    except _PARSE_ERRORS:
        return False
    return True


def _looks_binary(data: bytes) -> bool:
    sample = data[:1024]
    return b"\0" in sample or sum(b < 9 or 13 < b < 32 or b > 126 for b in sample) > len(sample) // 10


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:120].rstrip(".")
