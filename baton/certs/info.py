"""What a certificate says about itself (:class:`CertInfo`), and its state at a moment (pure)."""

from __future__ import annotations

import ipaddress
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes

__all__ = ["DEFAULT_WARNING_DAYS", "DEFAULT_CRITICAL_DAYS", "CertRole", "CertState", "CertInfo", "describe",
           "expiry_state", "fingerprint", "colon_fingerprint", "serial_hex", "alt_names", "normal_name", "issued_by"]

DEFAULT_WARNING_DAYS = 30.0  # the original's defaults (security.tls.warning_days / critical_days)
DEFAULT_CRITICAL_DAYS = 7.0
_DAY_S = 86400.0


class CertRole(StrEnum):
    """Which certificate of a project this is."""

    CA = "ca"  # tls/ca.pem: issues leaf certificates now
    NEXT_CA = "ca-next"  # tls/ca-next.pem: the CA taking over during a rotation
    RETIRING_CA = "ca-retiring"  # only in tls/ca-bundle.pem: the CA a rotation replaced, still trusted a while
    NODE = "node"  # tls/nodes/<node>.pem: an adapter's leaf certificate
    USER = "user"  # security.tls.cert: the user's own ingress certificate (tls.mode full)


class CertState(StrEnum):
    OK = "ok"
    WARNING = "warning"  # expires within warning_days
    CRITICAL = "critical"  # expires within critical_days
    EXPIRED = "expired"
    NOT_YET_VALID = "not-yet-valid"


@dataclass(frozen=True)
class CertInfo:
    """One certificate as ``baton certs status`` shows it; times are UTC ISO 8601 strings.

    ``days_left`` and ``state`` are as of ``checked_at`` (see :func:`expiry_state`). ``served_by`` is for the
    caller to fill (the adapters seen serving this certificate); Baton's files do not know it.
    """

    role: CertRole
    path: str
    subject: str
    issuer: str
    sans: tuple[str, ...]
    serial: str
    fingerprint: str
    not_before: str
    not_after: str
    is_ca: bool
    days_left: float
    state: CertState
    checked_at: str
    node: str = ""
    served_by: tuple[str, ...] = ()

    @property
    def not_before_dt(self) -> datetime:
        return datetime.fromisoformat(self.not_before)

    @property
    def not_after_dt(self) -> datetime:
        return datetime.fromisoformat(self.not_after)

    @property
    def lifetime(self) -> timedelta:
        return self.not_after_dt - self.not_before_dt

    @property
    def colon_fingerprint(self) -> str:
        return colon_fingerprint(self.fingerprint)

    def at(self, now: datetime, *, warning_days: float, critical_days: float) -> CertInfo:
        """This certificate's days left and state as of ``now`` under these thresholds."""
        return replace(self, days_left=_days_left(self.not_after_dt, now),
                       state=expiry_state(self, now=now, warning_days=warning_days, critical_days=critical_days),
                       checked_at=_iso(now))

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(role=str(self.role), state=str(self.state), sans=list(self.sans),
                    served_by=list(self.served_by), days_left=round(self.days_left, 3))
        return data


def describe(cert: x509.Certificate, *, role: CertRole, path: str = "", node: str = "",
             now: datetime | None = None, warning_days: float = DEFAULT_WARNING_DAYS,
             critical_days: float = DEFAULT_CRITICAL_DAYS) -> CertInfo:
    """The :class:`CertInfo` of ``cert`` as of ``now`` (default: the current time)."""
    now = _aware(now or datetime.now(UTC))
    try:
        basic = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        is_ca = basic.ca
    except (x509.ExtensionNotFound, ValueError):  # ValueError: a malformed or duplicated extension
        is_ca = False
    info = CertInfo(
        role=role, path=str(path), node=node,
        subject=cert.subject.rfc4514_string(), issuer=cert.issuer.rfc4514_string(), sans=alt_names(cert),
        serial=serial_hex(cert), fingerprint=fingerprint(cert),
        not_before=_iso(cert.not_valid_before_utc), not_after=_iso(cert.not_valid_after_utc), is_ca=is_ca,
        days_left=0.0, state=CertState.OK, checked_at="",
    )
    return info.at(now, warning_days=warning_days, critical_days=critical_days)


def expiry_state(info: CertInfo, *, now: datetime, warning_days: float, critical_days: float) -> CertState:
    """``not-yet-valid`` before not_before; ``expired`` from not_after on; else ``critical`` within
    ``critical_days`` of not_after, ``warning`` within ``warning_days``, ``ok`` before (boundaries inclusive)."""
    now = _aware(now)
    if now < info.not_before_dt:
        return CertState.NOT_YET_VALID
    if now >= info.not_after_dt:
        return CertState.EXPIRED
    days_left = _days_left(info.not_after_dt, now)
    if days_left <= critical_days:
        return CertState.CRITICAL
    if days_left <= warning_days:
        return CertState.WARNING
    return CertState.OK


def fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 of the DER certificate, lowercase hex without colons."""
    return cert.fingerprint(hashes.SHA256()).hex()


def colon_fingerprint(hex_digest: str) -> str:
    """``ab12...`` as ``AB:12:...``, the form ``openssl x509 -fingerprint`` prints."""
    upper = hex_digest.upper()
    return ":".join(upper[i:i + 2] for i in range(0, len(upper), 2))


def serial_hex(cert: x509.Certificate) -> str:
    """The serial number in lowercase hex, zero-padded to whole bytes (as ``openssl x509 -serial``, lowercased)."""
    digits = format(cert.serial_number, "x")
    return digits.zfill(len(digits) + len(digits) % 2)


def alt_names(cert: x509.Certificate) -> tuple[str, ...]:
    """The DNS names and IP addresses of the subjectAltName extension, in certificate order."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (x509.ExtensionNotFound, ValueError):
        return ()
    names: list[str] = []
    for entry in san:
        if isinstance(entry, x509.DNSName):
            names.append(entry.value)
        elif isinstance(entry, x509.IPAddress):
            names.append(str(entry.value))
    return tuple(names)


def issued_by(cert: x509.Certificate, issuer: x509.Certificate | None) -> bool:
    """Whether ``issuer`` signed ``cert`` (issuer name and signature checked)."""
    if issuer is None:
        return False
    try:
        cert.verify_directly_issued_by(issuer)
    except Exception:  # InvalidSignature, ValueError (names differ), TypeError (unsupported key): all mean "no"
        return False
    return True


def normal_name(name: str) -> str:
    """A SAN as compared: IP addresses in canonical form (``0:0::1`` is ``::1``), DNS names lowercased."""
    try:
        return str(ipaddress.ip_address(name))
    except ValueError:
        return name.lower().rstrip(".")


def _days_left(not_after: datetime, now: datetime) -> float:
    return (not_after - _aware(now)).total_seconds() / _DAY_S


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _iso(moment: datetime) -> str:
    return _aware(moment).astimezone(UTC).isoformat()
