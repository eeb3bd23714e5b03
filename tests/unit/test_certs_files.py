"""The circuit CA and node certificates on disk, checked with the real openssl CLI: what Baton writes is what a
TLS client sees, keys are private, and two processes creating the CA at once end with one CA."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pki import openssl

from baton.certs import (
    CertRole,
    CertState,
    TlsLayout,
    colon_fingerprint,
    describe,
    fingerprint,
    inspect_project,
    issue_node,
    leaf_names,
    load_ca,
    load_or_create_ca,
    new_ca,
    read_bundle,
)
from baton.errors import CertificateError, LockTimeout, UsageError

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def layout(tmp_path: Path) -> TlsLayout:
    return TlsLayout.of(tmp_path / ".baton")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_ca_is_created_once_with_private_key_and_bundle(layout: TlsLayout) -> None:
    ca = load_or_create_ca(layout, "shop")
    assert layout.root == layout.root.parent / "tls" and layout.root.parent.name == ".baton"
    assert mode(layout.ca_key) == 0o600 and mode(layout.ca_cert) == 0o644 and mode(layout.root) == 0o700
    assert [p.name for p in layout.root.iterdir() if p.name.endswith(".tmp")] == []
    assert load_or_create_ca(layout, "shop").fingerprint == ca.fingerprint == load_ca(layout).fingerprint
    assert [fingerprint(c) for c in read_bundle(layout)] == [ca.fingerprint]
    text = openssl("x509", "-in", layout.ca_cert, "-noout", "-text")
    assert "CA:TRUE, pathlen:0" in text and "Certificate Sign" in text and "prime256v1" in text
    assert "shop" in text
    openssl("verify", "-CAfile", layout.ca_cert, layout.ca_cert)  # self-signed and well-formed
    assert openssl("pkey", "-in", layout.ca_key, "-pubout") == openssl("x509", "-in", layout.ca_cert, "-noout",
                                                                       "-pubkey")


def test_a_key_written_before_with_a_loose_mode_is_rewritten_private(layout: TlsLayout) -> None:
    ca = load_or_create_ca(layout, "shop")
    issue_node(layout, ca, "api")
    os.chmod(layout.node_key("api"), 0o644)
    issue_node(layout, ca, "api")
    assert mode(layout.node_key("api")) == 0o600


def test_a_ca_whose_key_does_not_match_is_refused_not_replaced(layout: TlsLayout) -> None:
    load_or_create_ca(layout, "shop")
    other = new_ca("other")
    from baton.certs import key_pem

    layout.ca_key.write_text(key_pem(other.key))
    before = layout.ca_cert.read_bytes()
    with pytest.raises(CertificateError, match=r"ca\.key: expected the private key of ca\.pem, found a different key"):
        load_or_create_ca(layout, "shop")
    assert layout.ca_cert.read_bytes() == before


def test_a_missing_ca_key_is_one_sentence(layout: TlsLayout) -> None:
    load_or_create_ca(layout, "shop")
    layout.ca_key.unlink()
    with pytest.raises(CertificateError) as caught:
        load_ca(layout)
    assert str(caught.value).startswith(f"{layout.ca_key}: expected the CA's private key, found no such file; ")
    assert "\n" not in str(caught.value)


_RACER = """
import os, sys, time
from pathlib import Path
from baton.certs import TlsLayout, load_or_create_ca
go = Path(sys.argv[2])
(go.parent / f"ready-{os.getpid()}").touch()
while not go.exists():
    time.sleep(0.001)
print(load_or_create_ca(TlsLayout.of(sys.argv[1]), "race").fingerprint)
"""


def test_processes_racing_to_create_the_ca_end_with_one(tmp_path: Path) -> None:
    state, go = tmp_path / ".baton", tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "adapter_image"),
                                                         os.environ.get("PYTHONPATH", "")])}
    racers = [subprocess.Popen([sys.executable, "-c", _RACER, str(state), str(go)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=env) for _ in range(4)]
    deadline = time.monotonic() + 60
    while len(list(tmp_path.glob("ready-*"))) < len(racers) and time.monotonic() < deadline:
        time.sleep(0.01)  # every racer imported Baton and now polls for the go file
    go.touch()
    outputs = [racer.communicate(timeout=60) for racer in racers]
    assert all(racer.returncode == 0 for racer in racers), [err for _, err in outputs]
    fingerprints = {out.strip() for out, _ in outputs}
    assert len(fingerprints) == 1
    layout = TlsLayout.of(state)
    assert load_ca(layout).fingerprint in fingerprints
    assert sorted(p.name for p in layout.root.iterdir()) == [".lock", "ca-bundle.pem", "ca.key", "ca.pem", "nodes"]


def test_the_lock_times_out_with_a_sentence(layout: TlsLayout) -> None:
    with layout.locked():
        with pytest.raises(LockTimeout, match=r"another baton process has held .*\.lock for 0 s"):
            with layout.locked(timeout=0.1):
                pass


def test_a_node_certificate_as_openssl_sees_it(layout: TlsLayout) -> None:
    ca = load_or_create_ca(layout, "shop")
    names = leaf_names("api", ["baton-shop-api"], ["10.0.0.5", "api.internal"])
    issued = issue_node(layout, ca, "api", names=names)
    assert (issued.cert_path, issued.key_path) == (layout.root / "nodes" / "api.pem", layout.root / "nodes" / "api.key")
    assert mode(issued.key_path) == 0o600 and mode(issued.cert_path) == 0o644
    assert issued.names == ("api", "baton-shop-api", "localhost", "127.0.0.1", "::1", "10.0.0.5", "api.internal")
    assert issued.issuer_fingerprint == ca.fingerprint

    assert openssl("verify", "-CAfile", layout.bundle, issued.cert_path).strip().endswith(": OK")
    openssl("verify", "-CAfile", layout.bundle, "-purpose", "sslserver", issued.cert_path)
    openssl("verify", "-CAfile", layout.bundle, "-purpose", "sslclient", issued.cert_path)
    text = openssl("x509", "-in", issued.cert_path, "-noout", "-text")
    sans = re.search(r"Subject Alternative Name:.*?\n\s*(.+)\n", text).group(1).strip()
    assert sans == ("DNS:api, DNS:baton-shop-api, DNS:localhost, IP Address:127.0.0.1, "
                    "IP Address:0:0:0:0:0:0:0:1, IP Address:10.0.0.5, DNS:api.internal")
    assert "TLS Web Server Authentication, TLS Web Client Authentication" in text and "CA:FALSE" in text

    info = issued.info
    printed = openssl("x509", "-in", issued.cert_path, "-noout", "-fingerprint", "-sha256").strip()
    assert printed.split("=", 1)[1] == colon_fingerprint(info.fingerprint) == info.colon_fingerprint
    assert re.fullmatch(r"[0-9a-f]{64}", info.fingerprint)
    assert openssl("x509", "-in", issued.cert_path, "-noout", "-serial").strip() == f"serial={info.serial.upper()}"
    assert info.subject == "CN=api,O=Baton" and info.issuer == ca.cert.subject.rfc4514_string()
    assert info.sans == issued.names and info.role is CertRole.NODE and info.node == "api" and not info.is_ca
    assert info.state is CertState.OK and 89.9 < info.days_left <= 90
    dates = openssl("x509", "-in", issued.cert_path, "-noout", "-dates", "-dateopt", "iso_8601")
    assert info.not_after.replace("T", " ").replace("+00:00", "Z") in dates
    assert openssl("pkey", "-in", issued.key_path, "-pubout") == openssl("x509", "-in", issued.cert_path, "-noout",
                                                                         "-pubkey")


def test_a_leaf_can_live_a_few_seconds_and_never_outlives_its_ca(layout: TlsLayout) -> None:
    ca = load_or_create_ca(layout, "shop", lifetime=timedelta(days=10))
    short = issue_node(layout, ca, "api", lifetime=timedelta(seconds=3)).info
    assert short.lifetime == timedelta(seconds=3) and short.not_before_dt <= datetime.now(UTC)
    long = issue_node(layout, ca, "web", lifetime=timedelta(days=90)).info
    assert long.not_after_dt == ca.not_after


def test_an_expired_ca_issues_nothing(layout: TlsLayout) -> None:
    old = datetime.now(UTC) - timedelta(days=30)
    ca = load_or_create_ca(layout, "shop", lifetime=timedelta(days=1), now=old)
    with pytest.raises(CertificateError, match="expired on .* so it cannot issue certificates; rotate it first"):
        issue_node(layout, ca, "api")


@pytest.mark.parametrize("bad", ["", "a b", "-api", "api..internal", "x" * 64, "ünïcode"])
def test_bad_extra_names_are_refused(bad: str) -> None:
    with pytest.raises(UsageError, match="expected a DNS name or an IP address"):
        leaf_names("api", extra=[bad])


def test_names_are_deduplicated_and_canonical() -> None:
    assert leaf_names("api", ["API", "api"], ["0:0::1", "127.0.0.1", "*.api.internal"]) == \
        ("api", "localhost", "127.0.0.1", "::1", "*.api.internal")


def test_a_node_name_cannot_escape_the_nodes_directory(layout: TlsLayout) -> None:
    with pytest.raises(UsageError, match="expected a node name"):
        layout.node_cert("../ca")


def test_inspecting_a_project_lists_every_certificate(layout: TlsLayout, tmp_path: Path) -> None:
    from pki import make_cert, write_pem

    ca = load_or_create_ca(layout, "shop")
    issue_node(layout, ca, "api")
    issue_node(layout, ca, "gone")  # a node since removed from the circuit: still listed
    user = make_cert("shop.example", days=20)
    user_cert = write_pem(tmp_path / "certs" / "server.pem", user.cert_pem)
    now = datetime.now(UTC)
    inventory = inspect_project(layout, nodes=["web", "api"], user_cert=user_cert, now=now,
                                served_by={describe(user.cert, role=CertRole.USER).fingerprint: ["gateway"]})
    assert [(c.role, c.node) for c in inventory.certs] == [
        (CertRole.CA, ""), (CertRole.NODE, "api"), (CertRole.NODE, "gone"), (CertRole.USER, "")]
    assert inventory.certs[-1].state is CertState.WARNING and inventory.certs[-1].served_by == ("gateway",)
    assert inventory.certs[0].is_ca and inventory.certs[0].days_left > 3600
    assert len(inventory.problems) == 1 and "node web has no certificate yet" in inventory.problems[0]
    document = inventory.to_json()
    assert document["certificates"][0]["role"] == "ca" and document["certificates"][-1]["state"] == "warning"


def test_inspection_reports_damaged_files_and_carries_on(layout: TlsLayout) -> None:
    ca = load_or_create_ca(layout, "shop")
    issue_node(layout, ca, "api")
    layout.node_cert("api").write_text("not a certificate\n")
    inventory = inspect_project(layout, nodes=["api"], user_cert=layout.root / "missing.pem")
    assert [c.role for c in inventory.certs] == [CertRole.CA]
    assert len(inventory.problems) == 2
    assert all("\n" not in p for p in inventory.problems)
    assert "api.pem: expected a PEM certificate" in inventory.problems[0]
    assert "missing.pem: expected a PEM certificate, found no such file" in inventory.problems[1]
