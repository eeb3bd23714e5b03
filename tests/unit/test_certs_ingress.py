"""The user's own certificate and key (tls.mode full): every bad file gives one sentence naming it, saying what
was expected, what was found and what to do; checking writes nothing; no bytes crash the PEM loaders."""

from __future__ import annotations

import base64
import hashlib
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pki import Issued, make_cert, openssl, write_pem

from baton.certs import MAX_PEM_BYTES, CertRole, load_certificates, load_private_key, validate_user_pair
from baton.errors import BatonError, CertificateError

NOW = datetime.now(UTC)


@pytest.fixture(scope="module")
def chain() -> tuple[Issued, Issued, Issued]:
    """root -> intermediate -> leaf, valid now."""
    root = make_cert("Test Root", ca=True, days=365)
    intermediate = make_cert("Test Intermediate", ca=True, issuer=root, days=200)
    return root, intermediate, make_cert("shop.example", issuer=intermediate, days=90)


def sentence(tmp_path: Path, cert: bytes | None, key: bytes | None, *, cert_name: str = "server.pem") -> str:
    """The error for this pair of files (None: the file does not exist), checked for its shape."""
    cert_path, key_path = tmp_path / cert_name, tmp_path / "server.key"
    if cert is not None:
        write_pem(cert_path, cert)
    if key is not None:
        write_pem(key_path, key)
    with pytest.raises(CertificateError) as caught:
        validate_user_pair(cert_path, key_path)
    message = str(caught.value)
    assert isinstance(caught.value, BatonError)
    assert "\n" not in message and message.count("; ") >= 1 and "expected" in message and "found" in message
    assert message.startswith((str(cert_path) + ": ", str(key_path) + ": ", str(tmp_path / cert_name) + ": "))
    return message


def test_a_good_chain_and_key_pass_with_their_digests(tmp_path: Path, chain: tuple[Issued, ...]) -> None:
    root, intermediate, leaf = chain
    cert_path = write_pem(tmp_path / "server.pem", leaf.cert_pem, intermediate.cert_pem, root.cert_pem)
    key_path = write_pem(tmp_path / "server.key", leaf.key_pem)
    checked = validate_user_pair(cert_path, key_path)
    assert [c.subject for c in checked.chain] == ["CN=shop.example", "CN=Test Intermediate", "CN=Test Root"]
    assert checked.leaf.role is CertRole.USER and checked.leaf.sans == ("shop.example",)
    assert checked.digests == {str(cert_path): hashlib.sha256(cert_path.read_bytes()).hexdigest(),
                               str(key_path): hashlib.sha256(key_path.read_bytes()).hexdigest()}


def test_a_pair_made_by_openssl_passes(tmp_path: Path) -> None:
    cert_path, key_path = tmp_path / "server.pem", tmp_path / "server.key"
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key_path, "-out", cert_path, "-days", "2",
            "-subj", "/CN=shop.example", "-addext", "subjectAltName=DNS:shop.example")
    checked = validate_user_pair(cert_path, key_path)
    assert checked.leaf.sans == ("shop.example",) and checked.leaf.state == "critical"  # 2 days < critical_days


def test_missing_files(tmp_path: Path, chain: tuple[Issued, ...]) -> None:
    leaf = chain[2]
    message = sentence(tmp_path, None, leaf.key_pem)
    assert message == (f"{tmp_path}/server.pem: expected a PEM certificate (security.tls.cert), found no such "
                       "file; create it or correct the path in baton.yaml (security.tls).")
    message = sentence(tmp_path / "b", leaf.cert_pem, None)
    assert message.startswith(f"{tmp_path}/b/server.key: expected a PEM private key (security.tls.key), found no such")


def test_a_directory_instead_of_a_file(tmp_path: Path) -> None:
    (tmp_path / "server.pem").mkdir()
    assert "found a directory; name the file itself" in sentence(tmp_path, None, None)


def test_an_empty_file(tmp_path: Path, chain: tuple[Issued, ...]) -> None:
    assert sentence(tmp_path, b"", chain[2].key_pem) == (
        f"{tmp_path}/server.pem: expected a PEM certificate (-----BEGIN CERTIFICATE-----), found an empty file; "
        "name a PEM certificate file.")


def test_text_that_is_not_pem(tmp_path: Path, chain: tuple[Issued, ...]) -> None:
    message = sentence(tmp_path, b"hello, I am a certificate\n", chain[2].key_pem)
    assert "found text without any PEM block; name a PEM certificate file." in message


def test_binary_garbage(tmp_path: Path, chain: tuple[Issued, ...]) -> None:
    assert "found binary data;" in sentence(tmp_path, os.urandom(512) + b"\0", chain[2].key_pem)


def test_a_der_certificate_gets_the_conversion_command(tmp_path: Path, chain: tuple[Issued, ...]) -> None:
    der = chain[2].cert.public_bytes(serialization.Encoding.DER)
    message = sentence(tmp_path, der, chain[2].key_pem)
    assert "found a DER (binary) certificate; convert it with `openssl x509 -inform der" in message


def test_swapped_cert_and_key(tmp_path: Path, chain: tuple[Issued, ...]) -> None:
    leaf = chain[2]
    message = sentence(tmp_path, leaf.key_pem, leaf.cert_pem)
    assert "found only a PRIVATE KEY block; this looks like the key file: check that cert and key are not " \
           "swapped in baton.yaml." in message
    message = sentence(tmp_path / "b", leaf.cert_pem, leaf.cert_pem)
    assert message.startswith(f"{tmp_path}/b/server.key: expected a PEM private key")
    assert "found only a CERTIFICATE block; this looks like the certificate file" in message


def test_an_encrypted_key(tmp_path: Path, chain: tuple[Issued, ...]) -> None:
    plain = write_pem(tmp_path / "plain.key", chain[2].key_pem)
    openssl("pkey", "-in", plain, "-aes256", "-passout", "pass:secret", "-out", tmp_path / "server.key")
    message = sentence(tmp_path, chain[2].cert_pem, None)
    assert message == (f"{tmp_path}/server.key: expected an unencrypted PEM private key, found an encrypted one; "
                       f"decrypt it with `openssl pkey -in {tmp_path}/server.key -out {tmp_path}/server.key` (keep "
                       "the result mode 0600).")


def test_two_keys_in_one_file(tmp_path: Path, chain: tuple[Issued, ...]) -> None:
    message = sentence(tmp_path, chain[2].cert_pem, chain[2].key_pem + chain[1].key_pem)
    assert "expected one private key, found 2; keep only the key of the certificate in this file." in message


def test_a_certificate_that_does_not_match_its_key(tmp_path: Path, chain: tuple[Issued, ...]) -> None:
    message = sentence(tmp_path, chain[2].cert_pem, chain[1].key_pem)
    assert message == (f"{tmp_path}/server.pem: expected the certificate of the private key in {tmp_path}/server.key, "
                       "found one for a different key (CN=shop.example); pass the key it was issued with, or the "
                       "certificate issued for this key.")


def test_a_chain_with_the_leaf_not_first(tmp_path: Path, chain: tuple[Issued, ...]) -> None:
    _, intermediate, leaf = chain
    message = sentence(tmp_path, intermediate.cert_pem + leaf.cert_pem, leaf.key_pem)
    assert "found it as certificate 2 of 2; put the server certificate first, then its intermediates." in message


def test_an_expired_certificate(tmp_path: Path) -> None:
    old = make_cert("shop.example", start=NOW - timedelta(days=100), days=90)
    message = sentence(tmp_path, old.cert_pem, old.key_pem)
    assert "expected the certificate to be valid now, found it expired on " in message
    assert "(10.0 days ago); renew it and replace the file." in message


def test_a_certificate_not_yet_valid(tmp_path: Path) -> None:
    future = make_cert("shop.example", start=NOW + timedelta(days=2), days=90)
    message = sentence(tmp_path, future.cert_pem, future.key_pem)
    assert "expected the certificate to be valid now, found it valid only from " in message
    assert message.endswith("; check this machine's clock, or wait until then.")


def test_an_expired_intermediate(tmp_path: Path, chain: tuple[Issued, ...]) -> None:
    root = chain[0]
    stale = make_cert("Old Intermediate", ca=True, issuer=root, start=NOW - timedelta(days=40), days=30)
    leaf = make_cert("shop.example", issuer=stale, start=NOW - timedelta(days=1), days=30)
    message = sentence(tmp_path, leaf.cert_pem + stale.cert_pem, leaf.key_pem)
    assert "expected certificate 2 (CN=Old Intermediate) to be valid now, found it expired on" in message


def test_a_chain_whose_links_do_not_sign_each_other(tmp_path: Path, chain: tuple[Issued, ...]) -> None:
    _, _, leaf = chain
    stranger = make_cert("Other Intermediate", ca=True, days=100)
    message = sentence(tmp_path, leaf.cert_pem + stranger.cert_pem, leaf.key_pem)
    assert message == (f"{tmp_path}/server.pem: expected each certificate to be signed by the next one in the file, "
                       "found certificate 1 (CN=shop.example, issued by CN=Test Intermediate) not signed by "
                       "certificate 2 (CN=Other Intermediate); keep the server certificate first and then its "
                       "intermediates in order, up to (not necessarily including) the root.")


def test_a_damaged_certificate_block(tmp_path: Path, chain: tuple[Issued, ...]) -> None:
    body = base64.encodebytes(b"\x30\x82\x01\x00" + b"x" * 60)
    damaged = b"-----BEGIN CERTIFICATE-----\n" + body + b"-----END CERTIFICATE-----\n"
    message = sentence(tmp_path, chain[2].cert_pem + damaged, chain[2].key_pem)
    assert "expected PEM certificates, found certificate 2 damaged (" in message
    assert message.endswith("); replace the file with an intact copy.")


def test_an_oversized_file(tmp_path: Path, chain: tuple[Issued, ...]) -> None:
    message = sentence(tmp_path, chain[2].cert_pem * (MAX_PEM_BYTES // len(chain[2].cert_pem) + 1), chain[2].key_pem)
    assert "found a file larger than 1024 KiB; name the certificate or key file itself." in message


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_an_unreadable_file(tmp_path: Path, chain: tuple[Issued, ...]) -> None:
    path = write_pem(tmp_path / "server.key", chain[2].key_pem)
    path.chmod(0)
    assert "cannot be read (Permission denied); check its permissions." in sentence(tmp_path, chain[2].cert_pem, None)


def test_checking_writes_nothing(tmp_path: Path, chain: tuple[Issued, ...]) -> None:
    root, intermediate, leaf = chain
    pairs = {"good": (leaf.cert_pem + intermediate.cert_pem, leaf.key_pem),
             "mismatch": (leaf.cert_pem, root.key_pem), "garbage": (b"\0\1\2", b"nope")}
    for name, (cert, key) in pairs.items():
        write_pem(tmp_path / name / "server.pem", cert)
        write_pem(tmp_path / name / "server.key", key)

    def snapshot() -> dict[str, tuple[int, int, bytes]]:
        return {str(p): (p.stat().st_mtime_ns, p.stat().st_mode, p.read_bytes())
                for p in sorted(tmp_path.rglob("*")) if p.is_file()}

    before = snapshot()
    for name in pairs:
        try:
            validate_user_pair(tmp_path / name / "server.pem", tmp_path / name / "server.key")
        except CertificateError:
            pass
    assert snapshot() == before and sorted(p.name for p in tmp_path.iterdir()) == sorted(pairs)


_LABELS = st.sampled_from([b"CERTIFICATE", b"PRIVATE KEY", b"EC PRIVATE KEY", b"RSA PRIVATE KEY",
                           b"ENCRYPTED PRIVATE KEY", b"X509 CRL"])
_BODIES = st.one_of(st.binary(max_size=600), st.binary(max_size=600).map(base64.encodebytes))
_PEMISH = st.builds(lambda label, body, tail: b"-----BEGIN " + label + b"-----\n" + body
                    + (b"-----END " + label + b"-----\n" if tail else b""), _LABELS, _BODIES, st.booleans())


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(_PEMISH, st.binary(max_size=200)), max_size=4).map(b"".join))
def test_no_bytes_crash_the_pem_loaders(data: bytes) -> None:
    for load in (load_certificates, load_private_key):
        try:
            result = load(data, "fuzz.pem")
        except CertificateError as exc:
            assert str(exc).startswith("fuzz.pem: expected ") and "\n" not in str(exc)
        else:
            assert result is not None


@pytest.mark.filterwarnings("ignore::cryptography.utils.CryptographyDeprecationWarning")
def test_a_certificate_damaged_at_any_byte_gives_a_sentence_or_passes(tmp_path: Path) -> None:
    """cryptography parses names, extensions and keys lazily: every field must be parsed at load, so a damaged
    one is reported there, as a sentence, not later as a ValueError from somewhere else."""
    good = make_cert("shop.example")
    key_path = write_pem(tmp_path / "server.key", good.key_pem)
    der = good.cert.public_bytes(serialization.Encoding.DER)
    outcomes = set()
    for index in range(len(der)):
        for value in (0x00, der[index] ^ 0x01):
            damaged = der[:index] + bytes([value]) + der[index + 1:]
            path = write_pem(tmp_path / "server.pem", b"-----BEGIN CERTIFICATE-----\n", base64.encodebytes(damaged),
                             b"-----END CERTIFICATE-----\n")
            try:
                validate_user_pair(path, key_path)
                outcomes.add("valid")
            except CertificateError as exc:
                assert "\n" not in str(exc)
                outcomes.add("refused")
    assert outcomes == {"valid", "refused"}  # a flipped signature byte passes: a lone certificate is not verified
