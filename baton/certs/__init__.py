"""TLS inside the circuit (issue 14): reading PEM files, what a certificate says about itself, and the check
of the user's own certificate and key (tls.mode full).

Public API (everything re-exported here):

- Inspection (:mod:`.info`): :class:`CertInfo`, :class:`CertRole`, :class:`CertState`, :func:`describe`,
  :func:`expiry_state`, :func:`fingerprint`, :func:`colon_fingerprint`.
- The user's pair (:mod:`.ingress`): :func:`validate_user_pair` -> :class:`UserCertificate`.
- PEM (:mod:`.pem`): :func:`read_pem`, :func:`load_certificates`, :func:`load_private_key`, :func:`cert_pem`,
  :func:`key_pem`, :func:`same_key`.

Every failure the user can fix is a :class:`baton.errors.CertificateError` of one sentence naming the file.
"""

from baton.certs.info import (
    DEFAULT_CRITICAL_DAYS,
    DEFAULT_WARNING_DAYS,
    CertInfo,
    CertRole,
    CertState,
    colon_fingerprint,
    describe,
    expiry_state,
    fingerprint,
)
from baton.certs.ingress import UserCertificate, validate_user_pair
from baton.certs.pem import MAX_PEM_BYTES, cert_pem, key_pem, load_certificates, load_private_key, read_pem, same_key

__all__ = [
    "DEFAULT_CRITICAL_DAYS",
    "DEFAULT_WARNING_DAYS",
    "MAX_PEM_BYTES",
    "CertInfo",
    "CertRole",
    "CertState",
    "UserCertificate",
    "cert_pem",
    "colon_fingerprint",
    "describe",
    "expiry_state",
    "fingerprint",
    "key_pem",
    "load_certificates",
    "load_private_key",
    "read_pem",
    "same_key",
    "validate_user_pair",
]
