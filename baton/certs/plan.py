"""One decision over a whole project's TLS (pure): the CA step due, the node certificates to re-issue and by
which CA, the user's files that changed, or nothing due.

Apply a plan in this order: the CA step first (:func:`baton.certs.authority` effects), then the renewals with
the CA ``plan.issuer`` names (``ca`` is ``tls/ca.pem`` as it is after the step, ``ca-next`` the next CA), then
reload the changed user files; then record their digests. Observe and plan again at the next tick: a rotation
advances one step per tick.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from baton.certs.observation import SIGNED_BY_CA, SIGNED_BY_NEXT, LeafFacts, TlsObservation
from baton.certs.renewal import RenewReason, changed_files, leaf_reason, renewal_time
from baton.certs.rotation import CaDecision, CaStep, allowed_issuers, decide_ca_step

__all__ = ["NodeRenewal", "RenewalPlan", "plan_renewals"]

_QUIET = (CaStep.NONE, CaStep.WAIT)


@dataclass(frozen=True)
class NodeRenewal:
    node: str
    reason: RenewReason
    detail: str  # one sentence for logs and `baton certs status`
    names: tuple[str, ...] = ()  # the SANs to issue it for (as the plan was given them)


@dataclass(frozen=True)
class RenewalPlan:
    ca: CaDecision
    issuer: str  # "ca" or "ca-next": the CA that signs ``renew``, once the CA step is applied
    renew: tuple[NodeRenewal, ...] = ()
    changed_files: tuple[str, ...] = ()
    stale_nodes: tuple[str, ...] = ()  # certificates of nodes no longer in the circuit
    reload: tuple[str, ...] = ()  # nodes whose adapter serves another certificate than its file (not renewed)
    problems: tuple[str, ...] = ()  # files that cannot be read, one sentence each
    next_due: datetime | None = None  # when, nothing else changing, the next action falls due

    @property
    def ca_step_due(self) -> bool:
        return self.ca.step not in _QUIET

    @property
    def nothing_due(self) -> bool:
        """No CA step, no renewal, no changed file, no stale certificate: this tick has nothing to do."""
        return not (self.ca_step_due or self.renew or self.changed_files or self.stale_nodes or self.reload)

    def summary(self) -> list[str]:
        """The plan as sentences, most important first."""
        lines = [*self.problems]
        if self.ca.step is not CaStep.NONE:
            lines.append(f"CA: {self.ca.step}: {self.ca.reason}")
        lines += [f"{r.node}: {r.detail}" for r in self.renew]
        lines += [f"{path} changed: reload it" for path in self.changed_files]
        lines += [f"{node}: no longer in the circuit: remove its certificate" for node in self.stale_nodes]
        lines += [f"{node}: its adapter serves another certificate than its file: reload it" for node in self.reload]
        return lines or ["nothing due"]


def plan_renewals(observation: TlsObservation, *, names: Mapping[str, Collection[str]], now: datetime,
                  warning_days: float, force_nodes: bool = False, force_ca: bool = False,
                  min_overlap: timedelta = timedelta(0)) -> RenewalPlan:
    """What is due now. ``names`` maps each node of the circuit to the SANs its certificate must carry
    (:func:`baton.certs.issuing.leaf_names`); ``force_nodes`` re-issues every node certificate, ``force_ca``
    starts a CA rotation; ``min_overlap`` is how long both CAs stay trusted before each switch."""
    leaves = {node: observation.leaves.get(node, LeafFacts(node)) for node in names}
    observation = replace(observation, leaves=leaves)  # a node never observed counts as missing
    decision = decide_ca_step(observation, now=now, warning_days=warning_days, force=force_ca,
                              min_overlap=min_overlap)
    issuers = allowed_issuers(decision.step, observation)
    ca_expired = observation.ca is not None and now >= observation.ca.not_after_dt
    issuer = SIGNED_BY_NEXT if decision.step is CaStep.SWITCH or (decision.step is CaStep.START and ca_expired) \
        else SIGNED_BY_CA
    renew: list[NodeRenewal] = []
    reload: list[str] = []
    upcoming = [decision.until] if decision.until else []
    for node in sorted(leaves):
        leaf = leaves[node]
        reason = leaf_reason(leaf, now=now, warning_days=warning_days, names=names[node], issuers=issuers,
                             force=force_nodes)
        if reason is not None:
            renew.append(NodeRenewal(node, reason, _detail(leaf, reason, warning_days), tuple(names[node])))
            continue
        if not leaf.serves_file:
            reload.append(node)
        if leaf.info is not None:
            upcoming.append(renewal_time(leaf.info, warning_days=warning_days))
    return RenewalPlan(
        ca=decision, issuer=issuer, renew=tuple(renew),
        changed_files=changed_files(observation.user_files, observation.recorded_files),
        stale_nodes=tuple(n for n in observation.stale_nodes if n not in names), reload=tuple(reload),
        problems=observation.problems, next_due=min(upcoming, default=None),
    )


def _detail(leaf: LeafFacts, reason: RenewReason, warning_days: float) -> str:
    info = leaf.info
    if reason is RenewReason.MISSING:
        return "no certificate yet: issue one"
    if reason is RenewReason.UNREADABLE:
        return (leaf.problem or "its key does not match its certificate") + ": issue a new one"
    assert info is not None
    if reason is RenewReason.EXPIRED:
        return f"expired on {info.not_after}: issue a new one"
    if reason is RenewReason.NOT_YET_VALID:
        return f"valid only from {info.not_before} (has the clock gone back?): issue a new one"
    if reason is RenewReason.ISSUER:
        signer = {SIGNED_BY_CA: "the current CA", SIGNED_BY_NEXT: "the next CA"}.get(leaf.signed_by, "another CA")
        return f"signed by {signer}, not the CA that signs now: re-issue it"
    if reason is RenewReason.NAMES:
        return f"its names ({', '.join(info.sans)}) are not the node's names now: re-issue it"
    if reason is RenewReason.DUE:
        return (f"due for renewal ({info.days_left:.1f} days left of {info.lifetime.total_seconds() / 86400:.1f}, "
                f"renewed at 2/3 of its lifetime or {warning_days:g} days before its end)")
    return "re-issue requested"
