"""What the TLS files of a project showed at one moment: the input of the pure decisions in
:mod:`baton.certs.rotation` and :mod:`baton.certs.renewal` (read by :func:`baton.certs.inventory.observe`,
or built by hand in tests)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from baton.certs.info import CertInfo

__all__ = ["SIGNED_BY_CA", "SIGNED_BY_NEXT", "LeafFacts", "TlsObservation"]

SIGNED_BY_CA = "ca"  # tls/ca.pem signed it
SIGNED_BY_NEXT = "ca-next"  # tls/ca-next.pem signed it


@dataclass(frozen=True)
class LeafFacts:
    """One node's certificate files.

    ``info`` is None when the certificate is missing or unreadable (``problem`` says which). ``signed_by`` is
    ``ca``, ``ca-next`` or empty (neither: a retired or foreign CA). ``written_at`` is when the certificate file
    was last written. ``served`` is the fingerprint the node's adapter reports serving, when the caller knows it
    (empty: unknown, taken as up to date).
    """

    node: str
    info: CertInfo | None = None
    problem: str = ""
    signed_by: str = ""
    key_matches: bool = True
    written_at: datetime | None = None
    served: str = ""

    @property
    def missing(self) -> bool:
        return self.info is None and not self.problem

    @property
    def serves_file(self) -> bool:
        """The adapter serves what the file holds (or nobody told us otherwise)."""
        return not self.served or (self.info is not None and self.served == self.info.fingerprint)


@dataclass(frozen=True)
class TlsObservation:
    """The CA files, the trust bundle, each wanted node's leaf, and the user's own files.

    ``bundle`` lists the SHA-256 fingerprints in ``ca-bundle.pem``, ``bundle_written_at`` when it was last
    written (the start of the overlap). ``next_key_present`` is False when ``ca-next.pem`` exists without its key:
    a promotion cut between its two renames. ``user_files`` maps each user file to its SHA-256 now (None:
    missing), ``recorded_files`` to the one recorded when last served. ``problems`` are files that cannot be read,
    one sentence each.
    """

    ca: CertInfo | None = None
    next_ca: CertInfo | None = None
    next_key_present: bool = True
    bundle: tuple[str, ...] = ()
    bundle_written_at: datetime | None = None
    leaves: Mapping[str, LeafFacts] = field(default_factory=dict)
    stale_nodes: tuple[str, ...] = ()
    user_files: Mapping[str, str | None] = field(default_factory=dict)
    recorded_files: Mapping[str, str] = field(default_factory=dict)
    problems: tuple[str, ...] = ()
