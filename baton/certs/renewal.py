"""When a certificate is due for renewal and when a user's file has changed: pure rules.

A certificate is due at 2/3 of its lifetime or once inside ``warning_days`` of its end, whichever comes
first; a window as long as the whole lifetime is ignored (cert-manager's rule: a 90-day certificate with a
30-day window renews at day 60; a 10-second one renews at second 6.7 whatever the window). A user's file has
changed when the SHA-256 of its content differs from the one recorded when it was last served (never mtime:
a copy or ``touch`` changes nothing, an edit within the same second still counts).
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Mapping
from datetime import datetime, timedelta
from enum import StrEnum

from baton.certs.info import CertInfo, normal_name
from baton.certs.observation import LeafFacts

__all__ = ["RenewReason", "renewal_time", "is_due", "leaf_reason", "content_digest", "changed_files"]


class RenewReason(StrEnum):
    MISSING = "missing"  # no certificate file yet
    UNREADABLE = "unreadable"  # damaged, or its key does not match
    EXPIRED = "expired"
    NOT_YET_VALID = "not-yet-valid"  # the clock went back, or a certificate from elsewhere
    ISSUER = "issuer"  # not signed by the CA that should sign it now (a CA rotation, or a foreign CA)
    NAMES = "names"  # its subjectAltNames differ from the node's names now
    DUE = "due"  # 2/3 of its lifetime passed, or inside warning_days
    FORCED = "forced"  # `baton certs rotate`


def renewal_time(info: CertInfo, *, warning_days: float) -> datetime:
    """The moment ``info``'s certificate is due for renewal."""
    start, end = info.not_before_dt, info.not_after_dt
    lifetime = end - start
    at_two_thirds = start + lifetime * 2 / 3
    window = timedelta(days=warning_days)
    if window <= timedelta(0) or window >= lifetime:
        return at_two_thirds
    return min(at_two_thirds, end - window)


def is_due(info: CertInfo, *, now: datetime, warning_days: float) -> bool:
    return now >= renewal_time(info, warning_days=warning_days)


def leaf_reason(leaf: LeafFacts, *, now: datetime, warning_days: float, names: Collection[str],
                issuers: Collection[str], force: bool = False) -> RenewReason | None:
    """Why ``leaf`` must be re-issued now (None: it need not). ``names`` are the SANs it should carry,
    ``issuers`` the CAs (``ca``, ``ca-next``) allowed to have signed it."""
    info = leaf.info
    if info is None:
        return RenewReason.UNREADABLE if leaf.problem else RenewReason.MISSING
    if not leaf.key_matches or leaf.problem:
        return RenewReason.UNREADABLE
    if now >= info.not_after_dt:
        return RenewReason.EXPIRED
    if now < info.not_before_dt:
        return RenewReason.NOT_YET_VALID
    if leaf.signed_by not in issuers:
        return RenewReason.ISSUER
    if {normal_name(n) for n in info.sans} != {normal_name(n) for n in names}:
        return RenewReason.NAMES
    if is_due(info, now=now, warning_days=warning_days):
        return RenewReason.DUE
    return RenewReason.FORCED if force else None


def content_digest(data: bytes) -> str:
    """SHA-256 of a file's content, lowercase hex."""
    return hashlib.sha256(data).hexdigest()


def changed_files(current: Mapping[str, str | None], recorded: Mapping[str, str]) -> tuple[str, ...]:
    """The files of ``current`` whose digest differs from the recorded one (never recorded counts as changed; a
    missing file, None, as changed once it had been recorded)."""
    return tuple(path for path, digest in current.items()
                 if digest != recorded.get(path) and (digest is not None or path in recorded))
