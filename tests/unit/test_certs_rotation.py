"""A CA rotation on real files, driven the way the conductor's cert check will drive it (observe -> plan ->
apply, one step per tick): at every step each node certificate, old or new, verifies with openssl against the
trust bundle as it was and as it is, so a service reloading late never sees a certificate it does not trust."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pki import openssl

from baton.certs import (
    CaStep,
    RenewalPlan,
    RenewReason,
    TlsLayout,
    apply_ca_step,
    issue_node,
    leaf_names,
    load_next_ca,
    load_or_create_ca,
    observe,
    plan_renewals,
    remove_node,
)

NODES = ("api", "web")


def tick(layout: TlsLayout, names: dict[str, tuple[str, ...]], *, now: datetime | None = None,
         force_ca: bool = False, lifetime: timedelta = timedelta(days=90)) -> RenewalPlan:
    """One cert check: observe, plan, then apply in the documented order (CA step, leaves, stale nodes)."""
    now = now or datetime.now(UTC)
    plan = plan_renewals(observe(layout, nodes=names, now=now), names=names, now=now, warning_days=30,
                         force_ca=force_ca)
    apply_ca_step(layout, plan.ca.step, "shop")
    ca = load_next_ca(layout) if plan.issuer == "ca-next" else load_or_create_ca(layout, "shop")
    for renewal in plan.renew:
        issue_node(layout, ca, renewal.node, names=renewal.names, lifetime=lifetime, now=now)
    for node in plan.stale_nodes:
        remove_node(layout, node)
    return plan


def snapshot(layout: TlsLayout, into: Path) -> tuple[Path, list[Path]]:
    """Copies of the bundle and the node certificates as they are now."""
    into.mkdir(parents=True)
    bundle = into / "bundle.pem"
    bundle.write_bytes(layout.bundle.read_bytes())
    leaves = []
    for node in NODES:
        copy = into / f"{node}.pem"
        copy.write_bytes(layout.node_cert(node).read_bytes())
        leaves.append(copy)
    return bundle, leaves


def test_a_rotation_never_leaves_a_certificate_untrusted(tmp_path: Path) -> None:
    layout = TlsLayout.of(tmp_path / ".baton")
    names = {node: leaf_names(node) for node in NODES}
    assert tick(layout, names).ca.step is CaStep.CREATE  # first check: the CA, its bundle, both leaves
    assert tick(layout, names).nothing_due
    first_ca = layout.ca_cert.read_bytes()

    steps, renewed = [], []
    for index in range(8):
        before = snapshot(layout, tmp_path / f"before-{index}")
        plan = tick(layout, names, force_ca=not steps)
        steps.append(plan.ca.step)
        renewed.append([r.node for r in plan.renew])
        after = snapshot(layout, tmp_path / f"after-{index}")
        for bundle in (before[0], after[0]):
            for leaf in before[1] + after[1]:
                assert openssl("verify", "-CAfile", bundle, leaf).strip().endswith(": OK"), (plan.ca, leaf)
        if plan.nothing_due:
            break
    assert steps == [CaStep.START, CaStep.SWITCH, CaStep.PROMOTE, CaStep.RETIRE, CaStep.NONE]
    assert renewed == [[], ["api", "web"], [], [], []]  # each leaf re-issued once, by the new CA
    assert layout.ca_cert.read_bytes() != first_ca and not layout.next_cert.exists()
    assert layout.bundle.read_bytes() == layout.ca_cert.read_bytes()  # the old CA is no longer trusted
    assert oct(os.stat(layout.ca_key).st_mode & 0o777) == "0o600"


def test_a_promotion_cut_between_its_renames_is_finished(tmp_path: Path) -> None:
    layout = TlsLayout.of(tmp_path / ".baton")
    names = {"api": leaf_names("api")}
    tick(layout, names)
    tick(layout, names, force_ca=True)  # START
    assert tick(layout, names).ca.step is CaStep.SWITCH
    os.replace(layout.next_key, layout.ca_key)  # the process died after the first rename of a promotion
    plan = tick(layout, names)
    assert plan.ca.step is CaStep.PROMOTE and plan.ca.reason.startswith("a promotion of the next CA was interrupted")
    assert not layout.next_cert.exists()
    openssl("verify", "-CAfile", layout.ca_cert, layout.node_cert("api"))
    assert tick(layout, names).ca.step is CaStep.RETIRE


def test_seconds_long_certificates_are_renewed_when_due_and_not_before(tmp_path: Path) -> None:
    layout = TlsLayout.of(tmp_path / ".baton")
    names = {"api": leaf_names("api")}
    start = datetime.now(UTC).replace(microsecond=0)
    tick(layout, names, now=start, lifetime=timedelta(seconds=3))
    first = layout.node_cert("api").read_bytes()
    calm = plan_renewals(observe(layout, nodes=names, now=start), names=names, now=start, warning_days=30)
    assert calm.nothing_due and calm.next_due == start + timedelta(seconds=2)
    just_before = calm.next_due - timedelta(milliseconds=1)
    assert tick(layout, names, now=just_before, lifetime=timedelta(seconds=3)).nothing_due
    plan = tick(layout, names, now=calm.next_due, lifetime=timedelta(seconds=3))
    assert [(r.node, r.reason) for r in plan.renew] == [("api", RenewReason.DUE)]
    assert layout.node_cert("api").read_bytes() != first


def test_a_node_that_left_the_circuit_loses_its_certificate(tmp_path: Path) -> None:
    layout = TlsLayout.of(tmp_path / ".baton")
    tick(layout, {"api": leaf_names("api"), "web": leaf_names("web")})
    plan = tick(layout, {"api": leaf_names("api")})
    assert plan.stale_nodes == ("web",)
    assert not layout.node_cert("web").exists() and not layout.node_key("web").exists()


def test_new_names_for_a_node_reissue_its_certificate(tmp_path: Path) -> None:
    layout = TlsLayout.of(tmp_path / ".baton")
    tick(layout, {"api": leaf_names("api")})
    plan = tick(layout, {"api": leaf_names("api", ["baton-shop-api"])})
    assert [r.reason for r in plan.renew] == [RenewReason.NAMES]
    assert "DNS:baton-shop-api" in openssl("x509", "-in", layout.node_cert("api"), "-noout", "-ext",
                                           "subjectAltName")


def test_user_files_are_changed_by_content_not_by_mtime(tmp_path: Path) -> None:
    layout = TlsLayout.of(tmp_path / ".baton")
    cert = tmp_path / "server.pem"
    cert.write_text("one")

    def changed() -> tuple[str, ...]:
        return plan_renewals(observe(layout, nodes=(), user_files=[cert]), names={}, now=datetime.now(UTC),
                             warning_days=30).changed_files

    assert changed() == (str(cert),)  # never served yet
    digest = observe(layout, nodes=(), user_files=[cert]).user_files[str(cert)]
    assert digest == openssl("dgst", "-sha256", "-r", cert).split()[0]
    layout.record_user_files({str(cert): digest})
    assert changed() == ()
    os.utime(cert, (0, 0))  # touched: same content
    assert changed() == ()
    cert.write_text("two")
    assert changed() == (str(cert),)


@pytest.mark.parametrize("step", [CaStep.NONE, CaStep.WAIT, CaStep.SWITCH])
def test_steps_without_ca_effects_change_no_file(tmp_path: Path, step: CaStep) -> None:
    layout = TlsLayout.of(tmp_path / ".baton")
    load_or_create_ca(layout, "shop")
    before = {p.name: p.read_bytes() for p in layout.root.iterdir() if p.is_file()}
    apply_ca_step(layout, step, "shop")
    assert {p.name: p.read_bytes() for p in layout.root.iterdir() if p.is_file()} == before


def test_inspection_during_a_rotation_shows_the_retiring_ca(tmp_path: Path) -> None:
    from baton.certs import CertRole, inspect_project

    layout = TlsLayout.of(tmp_path / ".baton")
    names = {"api": leaf_names("api")}
    tick(layout, names)
    old = load_or_create_ca(layout, "shop").fingerprint
    tick(layout, names, force_ca=True)  # START
    assert [c.role for c in inspect_project(layout, nodes=names).certs] == [CertRole.CA, CertRole.NEXT_CA,
                                                                             CertRole.NODE]
    tick(layout, names)  # SWITCH
    tick(layout, names)  # PROMOTE
    certs = inspect_project(layout, nodes=names).certs
    assert [c.role for c in certs] == [CertRole.CA, CertRole.RETIRING_CA, CertRole.NODE]
    assert certs[1].fingerprint == old and certs[2].issuer == certs[0].subject
