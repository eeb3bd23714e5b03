"""TLS inside the circuit: a per-project CA, the adapters' leaf certificates, the user's own ingress
certificate, and the decisions of when to renew and rotate them (issue 14).

Files, under the project's state directory (``.baton/tls/``, see :class:`TlsLayout`)::

    ca.pem  ca.key              the circuit CA (ECDSA P-256, 10 years); keys are mode 0600, written atomically
    ca-next.pem  ca-next.key    the CA taking over, only while a rotation is in progress
    ca-bundle.pem               what services and adapters trust: the CA (+ the next, or the retiring one)
    nodes/<node>.pem  .key      each adapter's certificate (90 days by default) and key
    user-files.json             SHA-256 of the user's cert/key as last served (tls.mode full)
    .lock                       flock held while any of these change

Controller shape (observe -> decide -> apply, one step per tick)::

    layout = TlsLayout.of(project.state_dir)
    names = {node: leaf_names(node, containers_of(node)) for node in circuit_nodes}
    seen = observe(layout, nodes=names, user_files=[cert, key], now=now,
                   warning_days=tls.warning_days, critical_days=tls.critical_days)     # reads only
    plan = plan_renewals(seen, names=names, now=now, warning_days=tls.warning_days,
                         min_overlap=timedelta(seconds=tls.rotate_check_interval_s))  # pure
    apply_ca_step(layout, plan.ca.step, project_name)                                  # CA step first
    ca = load_next_ca(layout) if plan.issuer == "ca-next" else load_or_create_ca(layout, project_name)
    for renewal in plan.renew:
        issue_node(layout, ca, renewal.node, names=renewal.names, lifetime=...)      # then the leaves
    for node in plan.stale_nodes:
        remove_node(layout, node)
    # then have adapters reload: those renewed, those in plan.reload (serving another certificate than
    # their file: pass observe(served={node: fingerprint}) to know), all of them when the bundle changed
    # or plan.changed_files names the user's files; after those reload,
    # layout.record_user_files(validate_user_pair(cert, key).digests)

Public API (everything re-exported here):

- Layout and files: :class:`TlsLayout` (``.of(state_dir)``, paths, ``locked()``, ``record_user_files``,
  ``recorded_user_files``).
- The CA (:mod:`.authority`): :class:`CertificateAuthority`, :func:`new_ca`, :func:`load_or_create_ca`,
  :func:`load_ca`, :func:`load_next_ca`, :func:`read_bundle`, :func:`start_rotation`, :func:`publish_bundle`,
  :func:`promote_next`, :func:`retire_old`, :func:`apply_ca_step`.
- Leaves (:mod:`.issuing`): :func:`leaf_names`, :func:`new_leaf`, :func:`issue_node` -> :class:`IssuedCert`,
  :func:`remove_node`.
- Inspection (:mod:`.info`, :mod:`.inventory`): :class:`CertInfo`, :class:`CertRole`, :class:`CertState`,
  :func:`describe`, :func:`expiry_state`, :func:`fingerprint`, :func:`colon_fingerprint`,
  :func:`inspect_project` -> :class:`Inventory`, :func:`observe` -> :class:`TlsObservation`,
  :func:`file_digest`.
- Decisions, pure (:mod:`.renewal`, :mod:`.rotation`, :mod:`.plan`): :func:`renewal_time`, :func:`is_due`,
  :func:`leaf_reason` -> :class:`RenewReason`, :func:`changed_files`, :func:`decide_ca_step` ->
  :class:`CaDecision` (:class:`CaStep`), :func:`plan_renewals` -> :class:`RenewalPlan` (:class:`NodeRenewal`).
- The user's pair (:mod:`.ingress`): :func:`validate_user_pair` -> :class:`UserCertificate`.
- PEM (:mod:`.pem`): :func:`read_pem`, :func:`load_certificates`, :func:`load_private_key`, :func:`cert_pem`,
  :func:`key_pem`, :func:`same_key`.

Every failure the user can fix is a :class:`baton.errors.CertificateError` of one sentence naming the file.
"""

from baton.certs.authority import (
    DEFAULT_CA_LIFETIME,
    CertificateAuthority,
    apply_ca_step,
    load_ca,
    load_next_ca,
    load_or_create_ca,
    new_ca,
    promote_next,
    publish_bundle,
    read_bundle,
    retire_old,
    start_rotation,
)
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
from baton.certs.inventory import Inventory, file_digest, inspect_project, observe
from baton.certs.issuing import DEFAULT_LEAF_LIFETIME, LOOPBACK_NAMES, IssuedCert, issue_node, leaf_names, new_leaf, \
    remove_node
from baton.certs.layout import TlsLayout
from baton.certs.observation import SIGNED_BY_CA, SIGNED_BY_NEXT, LeafFacts, TlsObservation
from baton.certs.pem import MAX_PEM_BYTES, cert_pem, key_pem, load_certificates, load_private_key, read_pem, same_key
from baton.certs.plan import NodeRenewal, RenewalPlan, plan_renewals
from baton.certs.renewal import RenewReason, changed_files, content_digest, is_due, leaf_reason, renewal_time
from baton.certs.rotation import CaDecision, CaStep, allowed_issuers, decide_ca_step

__all__ = [
    "DEFAULT_CA_LIFETIME",
    "DEFAULT_CRITICAL_DAYS",
    "DEFAULT_LEAF_LIFETIME",
    "DEFAULT_WARNING_DAYS",
    "LOOPBACK_NAMES",
    "MAX_PEM_BYTES",
    "SIGNED_BY_CA",
    "SIGNED_BY_NEXT",
    "CaDecision",
    "CaStep",
    "CertInfo",
    "CertRole",
    "CertState",
    "CertificateAuthority",
    "Inventory",
    "IssuedCert",
    "LeafFacts",
    "NodeRenewal",
    "RenewReason",
    "RenewalPlan",
    "TlsLayout",
    "TlsObservation",
    "UserCertificate",
    "allowed_issuers",
    "apply_ca_step",
    "cert_pem",
    "changed_files",
    "colon_fingerprint",
    "content_digest",
    "decide_ca_step",
    "describe",
    "expiry_state",
    "file_digest",
    "fingerprint",
    "inspect_project",
    "is_due",
    "issue_node",
    "key_pem",
    "leaf_names",
    "leaf_reason",
    "load_ca",
    "load_certificates",
    "load_next_ca",
    "load_or_create_ca",
    "load_private_key",
    "new_ca",
    "new_leaf",
    "observe",
    "plan_renewals",
    "promote_next",
    "publish_bundle",
    "read_bundle",
    "read_pem",
    "remove_node",
    "renewal_time",
    "retire_old",
    "same_key",
    "start_rotation",
    "validate_user_pair",
]
