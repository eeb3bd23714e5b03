"""Which step of the circuit CA's life is due: pure, one step per call (apply it, observe again, decide again).

A rotation overlaps the old and the new CA so that every service trusts whatever it may be shown::

    step      files after it                                    the bundle trusts
    (stable)  ca = A                                            A
    START     ca = A, ca-next = B                               A, B
    SWITCH    every nodes/<node>.pem re-issued by B             A, B   (after min_overlap)
    PROMOTE   ca = B                                            A, B
    RETIRE    ca = B                                            B      (after min_overlap)

The gates: leaves switch only once the bundle holding the next CA has been published for ``min_overlap``
(the time every adapter and service needs to reload its trust); the old CA leaves the bundle only once every
leaf is signed by the new one, was written ``min_overlap`` ago, and no adapter is seen serving another
certificate. Each decision carries its reason as a sentence.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from baton.certs.observation import SIGNED_BY_CA, SIGNED_BY_NEXT, LeafFacts, TlsObservation
from baton.certs.renewal import renewal_time

__all__ = ["CaStep", "CaDecision", "decide_ca_step", "allowed_issuers"]


class CaStep(StrEnum):
    NONE = "none"  # nothing to do
    WAIT = "wait"  # a rotation is in progress but its next gate has not opened (``until`` says when)
    CREATE = "create"  # no CA yet: create it and its bundle (authority.load_or_create_ca)
    PUBLISH = "publish-bundle"  # the bundle does not trust what it must: rewrite it (authority.publish_bundle)
    START = "start"  # create the next CA and trust both (authority.start_rotation)
    SWITCH = "switch-leaves"  # re-issue every leaf with the next CA (issuing.issue_node; no CA file changes)
    PROMOTE = "promote"  # the next CA becomes the current one (authority.promote_next)
    RETIRE = "retire"  # drop the old CA from the bundle (authority.retire_old)


@dataclass(frozen=True)
class CaDecision:
    step: CaStep
    reason: str
    until: datetime | None = None  # when the next step falls due (WAIT: when its gate opens), if known


def allowed_issuers(step: CaStep, observation: TlsObservation) -> frozenset[str]:
    """The CAs, named as observed (before ``step``), that a leaf may be signed by once ``step`` is applied; a
    leaf signed by another is re-issued. After a promotion the observed ``ca-next`` is the CA."""
    if step in (CaStep.SWITCH, CaStep.PROMOTE):
        return frozenset({SIGNED_BY_NEXT})
    if observation.next_ca is not None:
        return frozenset({SIGNED_BY_CA, SIGNED_BY_NEXT})
    return frozenset({SIGNED_BY_CA})


def decide_ca_step(observation: TlsObservation, *, now: datetime, warning_days: float, force: bool = False,
                   min_overlap: timedelta = timedelta(0)) -> CaDecision:
    """The CA step due now. ``force`` starts a rotation whether or not the CA is due (``baton certs rotate``)."""
    ca, following = observation.ca, observation.next_ca
    if ca is None:
        if following is not None:
            return CaDecision(CaStep.PROMOTE, "tls/ca.pem is missing but tls/ca-next.pem is there: make it the CA")
        return CaDecision(CaStep.CREATE, "the circuit has no CA yet")
    trusted = set(observation.bundle)
    if following is None:
        if ca.fingerprint not in trusted:
            return CaDecision(CaStep.PUBLISH, "the trust bundle does not hold the current CA")
        if trusted - {ca.fingerprint}:
            return _retire_gate(observation.leaves, now=now, min_overlap=min_overlap)
        if force:
            return CaDecision(CaStep.START, "a CA rotation was requested")
        due = renewal_time(ca, warning_days=warning_days)
        if now >= due:
            return CaDecision(CaStep.START, f"the CA is due for rotation ({ca.days_left:.1f} days left)")
        return CaDecision(CaStep.NONE, f"the CA is valid until {ca.not_after}", until=due)
    if not observation.next_key_present:
        return CaDecision(CaStep.PROMOTE, "a promotion of the next CA was interrupted: finish it")
    if not {ca.fingerprint, following.fingerprint} <= trusted:
        return CaDecision(CaStep.PUBLISH, "the trust bundle must hold both the current and the next CA")
    on_next = [leaf for leaf in observation.leaves.values() if leaf.signed_by == SIGNED_BY_NEXT]
    if len(on_next) == len(observation.leaves):
        return CaDecision(CaStep.PROMOTE, "every node certificate is signed by the next CA")
    opens = (observation.bundle_written_at or now) + min_overlap
    if now < opens and now < ca.not_after_dt:
        return CaDecision(CaStep.WAIT, f"the next CA is trusted since {_iso(observation.bundle_written_at)}; node "
                                       f"certificates switch to it from {_iso(opens)}", until=opens)
    waiting = sorted(node for node, leaf in observation.leaves.items() if leaf.signed_by != SIGNED_BY_NEXT)
    return CaDecision(CaStep.SWITCH, f"every service trusts the next CA: re-issue {', '.join(waiting)} with it")


def _retire_gate(leaves: Mapping[str, LeafFacts], *, now: datetime, min_overlap: timedelta) -> CaDecision:
    behind = sorted(node for node, leaf in leaves.items() if leaf.signed_by != SIGNED_BY_CA or not leaf.serves_file)
    if behind:
        return CaDecision(CaStep.WAIT, f"the old CA stays trusted until {', '.join(behind)} serve certificates of "
                                       "the new one")
    written = [leaf.written_at for leaf in leaves.values() if leaf.written_at is not None]
    opens = max(written) + min_overlap if written else now
    if now < opens:
        return CaDecision(CaStep.WAIT, f"the old CA stays trusted until {_iso(opens)}, {min_overlap} after the last "
                                       "node certificate of the new one was written", until=opens)
    return CaDecision(CaStep.RETIRE, "every node serves a certificate of the new CA: stop trusting the old one")


def _iso(moment: datetime | None) -> str:
    return moment.isoformat(timespec="seconds") if moment else "now"
