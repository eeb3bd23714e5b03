"""The pure TLS decisions, table-tested at a fixed moment: certificate state, when a certificate is due, why a
node certificate is re-issued, which user files changed, which CA step is due, and the plan over them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from baton.certs import (
    SIGNED_BY_CA,
    SIGNED_BY_NEXT,
    CaStep,
    CertInfo,
    CertRole,
    CertState,
    LeafFacts,
    RenewReason,
    TlsObservation,
    allowed_issuers,
    changed_files,
    decide_ca_step,
    expiry_state,
    leaf_reason,
    plan_renewals,
    renewal_time,
)

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
NAMES = ("api", "localhost", "127.0.0.1", "::1")
DAY = timedelta(days=1)


def info(start: timedelta, end: timedelta, *, fingerprint: str = "aa", role: CertRole = CertRole.NODE,
         sans: tuple[str, ...] = NAMES) -> CertInfo:
    """A certificate valid from NOW+start to NOW+end (only the fields the decisions read matter)."""
    return CertInfo(role=role, path="", subject="CN=x", issuer="CN=ca", sans=sans, serial="01",
                    fingerprint=fingerprint, not_before=(NOW + start).isoformat(), not_after=(NOW + end).isoformat(),
                    is_ca=role is not CertRole.NODE, days_left=end / DAY, state=CertState.OK,
                    checked_at=NOW.isoformat())


@pytest.mark.parametrize(("start", "end", "expected"), [
    (-DAY, 60 * DAY, CertState.OK),
    (-DAY, 30 * DAY + timedelta(seconds=1), CertState.OK),
    (-DAY, 30 * DAY, CertState.WARNING),  # boundaries are inclusive
    (-DAY, 8 * DAY, CertState.WARNING),
    (-DAY, 7 * DAY, CertState.CRITICAL),
    (-DAY, timedelta(seconds=1), CertState.CRITICAL),
    (-DAY, timedelta(0), CertState.EXPIRED),  # not_after is the first invalid moment
    (-2 * DAY, -DAY, CertState.EXPIRED),
    (timedelta(seconds=1), 90 * DAY, CertState.NOT_YET_VALID),
    (timedelta(0), 90 * DAY, CertState.OK),
])
def test_expiry_state(start: timedelta, end: timedelta, expected: CertState) -> None:
    assert expiry_state(info(start, end), now=NOW, warning_days=30, critical_days=7) is expected


def test_zero_thresholds_leave_only_ok_and_expired() -> None:
    assert expiry_state(info(-DAY, timedelta(seconds=5)), now=NOW, warning_days=0, critical_days=0) is CertState.OK


def test_info_at_another_moment_recomputes_days_and_state() -> None:
    later = info(-DAY, 40 * DAY).at(NOW + 35 * DAY, warning_days=30, critical_days=7)
    assert later.state is CertState.CRITICAL and later.days_left == pytest.approx(5)
    assert later.checked_at == (NOW + 35 * DAY).isoformat()


@pytest.mark.parametrize(("lifetime", "warning_days", "due_after"), [
    (90 * DAY, 30, 60 * DAY),  # 2/3 and the window agree
    (90 * DAY, 45, 45 * DAY),  # the window comes first
    (90 * DAY, 10, 60 * DAY),  # 2/3 comes first
    (90 * DAY, 0, 60 * DAY),
    (timedelta(seconds=9), 30, timedelta(seconds=6)),  # a window as long as the lifetime is ignored
    (30 * DAY, 30, 20 * DAY),
    (3650 * DAY, 30, 3650 * DAY * 2 / 3),
])
def test_renewal_time(lifetime: timedelta, warning_days: float, due_after: timedelta) -> None:
    assert renewal_time(info(timedelta(0), lifetime), warning_days=warning_days) == NOW + due_after


def leaf(start: timedelta = -DAY, end: timedelta = 89 * DAY, **facts: object) -> LeafFacts:
    sans = facts.pop("sans", NAMES)
    return LeafFacts("api", info=info(start, end, sans=sans), signed_by=facts.pop("signed_by", SIGNED_BY_CA),
                     **facts)


@pytest.mark.parametrize(("facts", "issuers", "force", "expected"), [
    (leaf(), {SIGNED_BY_CA}, False, None),
    (leaf(), {SIGNED_BY_CA}, True, RenewReason.FORCED),
    (LeafFacts("api"), {SIGNED_BY_CA}, False, RenewReason.MISSING),
    (LeafFacts("api", problem="api.pem: damaged"), {SIGNED_BY_CA}, False, RenewReason.UNREADABLE),
    (leaf(key_matches=False), {SIGNED_BY_CA}, False, RenewReason.UNREADABLE),
    (leaf(-90 * DAY, -DAY), {SIGNED_BY_CA}, False, RenewReason.EXPIRED),
    (leaf(DAY, 90 * DAY), {SIGNED_BY_CA}, False, RenewReason.NOT_YET_VALID),
    (leaf(signed_by=""), {SIGNED_BY_CA}, False, RenewReason.ISSUER),
    (leaf(signed_by=SIGNED_BY_CA), {SIGNED_BY_NEXT}, False, RenewReason.ISSUER),
    (leaf(signed_by=SIGNED_BY_NEXT), {SIGNED_BY_CA, SIGNED_BY_NEXT}, False, None),
    (leaf(sans=("api", "localhost")), {SIGNED_BY_CA}, False, RenewReason.NAMES),
    (leaf(sans=("API", "localhost", "0:0::1", "127.0.0.1")), {SIGNED_BY_CA}, False, None),  # same names
    (leaf(-61 * DAY, 29 * DAY), {SIGNED_BY_CA}, False, RenewReason.DUE),
    (leaf(-59 * DAY, 31 * DAY), {SIGNED_BY_CA}, False, None),
])
def test_leaf_reason(facts: LeafFacts, issuers: set[str], force: bool, expected: RenewReason | None) -> None:
    assert leaf_reason(facts, now=NOW, warning_days=30, names=NAMES, issuers=issuers, force=force) == expected


@pytest.mark.parametrize(("current", "recorded", "expected"), [
    ({"cert.pem": "a", "key.pem": "b"}, {"cert.pem": "a", "key.pem": "b"}, ()),
    ({"cert.pem": "a2", "key.pem": "b"}, {"cert.pem": "a", "key.pem": "b"}, ("cert.pem",)),
    ({"cert.pem": "a", "key.pem": "b"}, {}, ("cert.pem", "key.pem")),  # never served: both "changed"
    ({"cert.pem": None, "key.pem": "b"}, {"cert.pem": "a", "key.pem": "b"}, ("cert.pem",)),  # deleted
    ({"cert.pem": None}, {}, ()),  # missing and never recorded: nothing to reload
    ({"new.pem": "a"}, {"old.pem": "a"}, ("new.pem",)),  # the config names another file
])
def test_changed_files(current: dict[str, str | None], recorded: dict[str, str], expected: tuple[str, ...]) -> None:
    assert changed_files(current, recorded) == expected


CA = info(-DAY, 3649 * DAY, fingerprint="c1", role=CertRole.CA)
NEXT = info(-timedelta(hours=2), 3650 * DAY, fingerprint="c2", role=CertRole.NEXT_CA)
OVERLAP = timedelta(hours=1)


def seen(ca: CertInfo | None = CA, following: CertInfo | None = None, bundle: tuple[str, ...] = ("c1",),
         leaves: dict[str, LeafFacts] | None = None, published: timedelta = -2 * OVERLAP,
         next_key_present: bool = True) -> TlsObservation:
    return TlsObservation(ca=ca, next_ca=following, next_key_present=next_key_present, bundle=bundle,
                          bundle_written_at=NOW + published, leaves=leaves if leaves is not None else {})


def leaves(*signers: str, written: timedelta = -2 * OVERLAP, served: str = "") -> dict[str, LeafFacts]:
    return {f"n{i}": LeafFacts(f"n{i}", info=info(-DAY, 89 * DAY, fingerprint=f"l{i}"), signed_by=signer,
                               written_at=NOW + written, served=served) for i, signer in enumerate(signers)}


@pytest.mark.parametrize(("observation", "force", "expected"), [
    (seen(ca=None), False, CaStep.CREATE),
    (seen(ca=None, following=NEXT), False, CaStep.PROMOTE),  # ca.pem lost mid-way: the next one takes over
    (seen(leaves=leaves(SIGNED_BY_CA)), False, CaStep.NONE),
    (seen(leaves=leaves(SIGNED_BY_CA)), True, CaStep.START),
    (seen(ca=info(-3000 * DAY, 650 * DAY, fingerprint="c1", role=CertRole.CA)), False, CaStep.START),  # 2/3 gone
    (seen(ca=info(-3000 * DAY, -DAY, fingerprint="c1", role=CertRole.CA)), False, CaStep.START),  # expired
    (seen(bundle=()), False, CaStep.PUBLISH),
    (seen(following=NEXT, bundle=("c1",)), False, CaStep.PUBLISH),  # next created, bundle not yet written
    (seen(following=NEXT, bundle=("c1", "c2"), published=-OVERLAP / 2, leaves=leaves(SIGNED_BY_CA)), True,
     CaStep.WAIT),  # trust in the next CA is younger than the overlap; force does not skip it
    (seen(following=NEXT, bundle=("c1", "c2"), leaves=leaves(SIGNED_BY_CA, SIGNED_BY_NEXT)), False, CaStep.SWITCH),
    (seen(following=NEXT, bundle=("c1", "c2"), leaves=leaves(SIGNED_BY_NEXT, SIGNED_BY_NEXT)), False,
     CaStep.PROMOTE),
    (seen(following=NEXT, bundle=("c1", "c2")), False, CaStep.PROMOTE),  # no nodes: nothing to switch
    (seen(following=NEXT, bundle=("c1", "c2"), next_key_present=False), False, CaStep.PROMOTE),  # cut: finish it
    (seen(ca=NEXT, bundle=("c1", "c2"), leaves=leaves(SIGNED_BY_CA)), False, CaStep.RETIRE),
    (seen(ca=NEXT, bundle=("c1", "c2"), leaves=leaves(SIGNED_BY_CA, written=-OVERLAP / 2)), False, CaStep.WAIT),
    (seen(ca=NEXT, bundle=("c1", "c2"), leaves=leaves(SIGNED_BY_CA, served="l0")), False, CaStep.RETIRE),
    (seen(ca=NEXT, bundle=("c1", "c2"), leaves=leaves(SIGNED_BY_CA, served="old")), False, CaStep.WAIT),
    (seen(ca=NEXT, bundle=("c1", "c2"), leaves=leaves(SIGNED_BY_CA, "")), False, CaStep.WAIT),
    (seen(ca=NEXT, bundle=("c1", "c2")), False, CaStep.RETIRE),
])
def test_decide_ca_step(observation: TlsObservation, force: bool, expected: CaStep) -> None:
    decision = decide_ca_step(observation, now=NOW, warning_days=30, force=force, min_overlap=OVERLAP)
    assert decision.step is expected, decision.reason
    assert decision.reason and "\n" not in decision.reason
    if expected is CaStep.WAIT:
        assert decision.until is None or decision.until > NOW


def test_an_expired_ca_does_not_hold_the_switch_back() -> None:
    expired = info(-3000 * DAY, -DAY, fingerprint="c1", role=CertRole.CA)
    observation = seen(ca=expired, following=NEXT, bundle=("c1", "c2"), published=timedelta(0),
                       leaves=leaves(SIGNED_BY_CA))
    assert decide_ca_step(observation, now=NOW, warning_days=30, min_overlap=OVERLAP).step is CaStep.SWITCH


WANTED = {"api": NAMES, "web": ("web", "localhost", "127.0.0.1", "::1")}


def fresh(node: str, *, signed_by: str = SIGNED_BY_CA, start: timedelta = -DAY, end: timedelta = 89 * DAY
          ) -> LeafFacts:
    return LeafFacts(node, info=info(start, end, sans=WANTED[node]), signed_by=signed_by,
                     written_at=NOW + start)


def test_nothing_due() -> None:
    observation = seen(leaves={"api": fresh("api"), "web": fresh("web")})
    plan = plan_renewals(observation, names=WANTED, now=NOW, warning_days=30)
    assert plan.nothing_due and not plan.ca_step_due and plan.summary() == ["nothing due"]
    assert plan.next_due == NOW + 59 * DAY  # 2/3 of the leaves' 90 days


def test_a_plan_gathers_every_kind_of_work() -> None:
    observation = TlsObservation(
        ca=CA, bundle=("c1",), leaves={"api": fresh("api", start=-61 * DAY, end=29 * DAY), "old": fresh("api")},
        stale_nodes=("old",), user_files={"certs/server.pem": "new", "certs/server.key": "k"},
        recorded_files={"certs/server.pem": "old", "certs/server.key": "k"}, problems=("ca-bundle.pem: damaged",),
    )
    plan = plan_renewals(observation, names=WANTED, now=NOW, warning_days=30)
    assert [(r.node, r.reason) for r in plan.renew] == [("api", RenewReason.DUE), ("web", RenewReason.MISSING)]
    assert plan.issuer == SIGNED_BY_CA and plan.ca.step is CaStep.NONE
    assert plan.changed_files == ("certs/server.pem",) and plan.stale_nodes == ("old",)
    assert not plan.nothing_due
    assert plan.summary() == [
        "ca-bundle.pem: damaged",
        "api: due for renewal (29.0 days left of 90.0, renewed at 2/3 of its lifetime or 30 days before its end)",
        "web: no certificate yet: issue one",
        "certs/server.pem changed: reload it",
        "old: no longer in the circuit: remove its certificate",
    ]


def test_forcing_reissues_every_node_and_starts_a_rotation() -> None:
    observation = seen(leaves={"api": fresh("api"), "web": fresh("web")})
    plan = plan_renewals(observation, names=WANTED, now=NOW, warning_days=30, force_nodes=True, force_ca=True)
    assert plan.ca.step is CaStep.START and plan.issuer == SIGNED_BY_CA
    assert [(r.node, r.reason) for r in plan.renew] == [("api", RenewReason.FORCED), ("web", RenewReason.FORCED)]


def test_a_rotation_plan_names_the_issuer_and_which_leaves_switch() -> None:
    base = {"ca": CA, "next_ca": NEXT, "bundle": ("c1", "c2"), "bundle_written_at": NOW - 2 * OVERLAP}
    during = TlsObservation(**base, leaves={"api": fresh("api", signed_by=SIGNED_BY_NEXT), "web": fresh("web")})
    plan = plan_renewals(during, names=WANTED, now=NOW, warning_days=30, min_overlap=OVERLAP)
    assert plan.ca.step is CaStep.SWITCH and plan.issuer == SIGNED_BY_NEXT
    assert [(r.node, r.reason) for r in plan.renew] == [("web", RenewReason.ISSUER)]
    assert plan.renew[0].detail == "signed by the current CA, not the CA that signs now: re-issue it"

    early = TlsObservation(**{**base, "bundle_written_at": NOW}, leaves={"api": fresh("api"), "web": fresh("web")})
    plan = plan_renewals(early, names=WANTED, now=NOW, warning_days=30, min_overlap=OVERLAP)
    assert plan.ca.step is CaStep.WAIT and plan.nothing_due and plan.next_due == NOW + OVERLAP
    assert plan.ca.reason.endswith(f"node certificates switch to it from {(NOW + OVERLAP).isoformat()}")


def test_a_seconds_long_certificate_is_due_at_two_thirds_whatever_the_window() -> None:
    short = LeafFacts("api", info=info(timedelta(seconds=-7), timedelta(seconds=3)), signed_by=SIGNED_BY_CA)
    plan = plan_renewals(seen(leaves={"api": short}), names={"api": NAMES}, now=NOW, warning_days=30)
    assert [r.reason for r in plan.renew] == [RenewReason.DUE]
    calm = LeafFacts("api", info=info(timedelta(seconds=-5), timedelta(seconds=5)), signed_by=SIGNED_BY_CA)
    plan = plan_renewals(seen(leaves={"api": calm}), names={"api": NAMES}, now=NOW, warning_days=30)
    assert plan.nothing_due and plan.next_due == NOW - timedelta(seconds=5) + timedelta(seconds=10) * 2 / 3


@pytest.mark.parametrize(("step", "rotating", "expected"), [
    (CaStep.NONE, False, {SIGNED_BY_CA}),
    (CaStep.START, False, {SIGNED_BY_CA}),  # the next CA does not exist yet
    (CaStep.WAIT, True, {SIGNED_BY_CA, SIGNED_BY_NEXT}),
    (CaStep.PUBLISH, True, {SIGNED_BY_CA, SIGNED_BY_NEXT}),
    (CaStep.SWITCH, True, {SIGNED_BY_NEXT}),
    (CaStep.PROMOTE, True, {SIGNED_BY_NEXT}),  # the observed next CA is the CA once promoted
    (CaStep.RETIRE, False, {SIGNED_BY_CA}),
])
def test_allowed_issuers(step: CaStep, rotating: bool, expected: set[str]) -> None:
    observation = seen(following=NEXT if rotating else None)
    assert allowed_issuers(step, observation) == expected


def test_a_promotion_reissues_nothing() -> None:
    on_next = {node: fresh(node, signed_by=SIGNED_BY_NEXT) for node in WANTED}
    observation = seen(following=NEXT, bundle=("c1", "c2"), leaves=on_next)
    plan = plan_renewals(observation, names=WANTED, now=NOW, warning_days=30, min_overlap=OVERLAP)
    assert plan.ca.step is CaStep.PROMOTE and plan.renew == () and plan.issuer == SIGNED_BY_CA


def test_an_adapter_serving_another_certificate_than_its_file_is_reloaded() -> None:
    current = fresh("api")
    behind = LeafFacts("api", info=current.info, signed_by=SIGNED_BY_CA, served="an-older-one")
    plan = plan_renewals(seen(leaves={"api": behind}), names={"api": NAMES}, now=NOW, warning_days=30)
    assert plan.reload == ("api",) and not plan.renew and not plan.nothing_due
    assert plan.summary() == ["api: its adapter serves another certificate than its file: reload it"]
    up_to_date = LeafFacts("api", info=current.info, signed_by=SIGNED_BY_CA, served=current.info.fingerprint)
    assert plan_renewals(seen(leaves={"api": up_to_date}), names={"api": NAMES}, now=NOW, warning_days=30).nothing_due
