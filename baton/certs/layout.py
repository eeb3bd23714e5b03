"""Where a project's TLS files live under ``.baton/tls/``, the lock that serialises changes to them, and the
writes that put them there (atomic; keys of mode 0600)."""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from baton.config.document import atomic_write_text
from baton.errors import UsageError
from baton.locking import held

__all__ = ["TLS_DIRNAME", "LOCK_TIMEOUT_S", "TlsLayout"]

TLS_DIRNAME = "tls"
LOCK_TIMEOUT_S = 30.0
_NODE_NAME = re.compile(r"^[a-z][a-z0-9_-]*$")  # baton.config.topology.NODE_NAME_PATTERN: safe as a file name


@dataclass(frozen=True)
class TlsLayout:
    """The files of one project's circuit TLS, under ``<state_dir>/tls``::

        ca.pem, ca.key            the circuit CA that issues leaf certificates now
        ca-next.pem, ca-next.key  the CA taking over, while a rotation is in progress
        ca-bundle.pem             what services and adapters trust: the CA, plus the next or the retiring one
        trust.pem                 the system's roots and ca-bundle.pem: what services' TLS clients read
        nodes/<node>.pem, .key    each adapter's leaf certificate and key
        user-files.json           SHA-256 of the user's own cert/key files as last served (tls.mode full)
        .lock                     held (flock) while any of the above changes
    """

    root: Path

    @classmethod
    def of(cls, state_dir: str | Path) -> TlsLayout:
        """The layout of the project whose state directory (``.baton``) is ``state_dir``."""
        return cls(Path(state_dir) / TLS_DIRNAME)

    @property
    def ca_cert(self) -> Path:
        return self.root / "ca.pem"

    @property
    def ca_key(self) -> Path:
        return self.root / "ca.key"

    @property
    def next_cert(self) -> Path:
        return self.root / "ca-next.pem"

    @property
    def next_key(self) -> Path:
        return self.root / "ca-next.key"

    @property
    def bundle(self) -> Path:
        return self.root / "ca-bundle.pem"

    @property
    def trust(self) -> Path:
        """The system's roots and the bundle: what services get as ``SSL_CERT_FILE`` (see baton.certs.circuit)."""
        return self.root / "trust.pem"

    @property
    def nodes_dir(self) -> Path:
        return self.root / "nodes"

    @property
    def user_files(self) -> Path:
        return self.root / "user-files.json"

    @property
    def lock_file(self) -> Path:
        return self.root / ".lock"

    def node_cert(self, node: str) -> Path:
        return self.nodes_dir / f"{_checked(node)}.pem"

    def node_key(self, node: str) -> Path:
        return self.nodes_dir / f"{_checked(node)}.key"

    def node_names(self) -> list[str]:
        """Nodes that have a certificate file, sorted."""
        if not self.nodes_dir.is_dir():
            return []
        return sorted(p.stem for p in self.nodes_dir.glob("*.pem") if _NODE_NAME.match(p.stem))

    # -- effects -------------------------------------------------------------

    def ensure_dirs(self) -> None:
        """Create ``tls/`` and ``tls/nodes/`` (mode 0700: they hold private keys)."""
        for directory in (self.root, self.nodes_dir):
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)

    @contextlib.contextmanager
    def locked(self, timeout: float = LOCK_TIMEOUT_S) -> Iterator[None]:
        """Hold the TLS lock (an ``flock``, released by the kernel if this process dies) for a change."""
        self.ensure_dirs()
        with held(self.lock_file, timeout, "another baton process", mode=0o600):
            yield

    def write_secret(self, path: Path, text: str) -> None:
        """Write a private key atomically, mode 0600 from its first byte."""
        atomic_write_text(path, text, mode=0o600)

    def write_public(self, path: Path, text: str) -> None:
        """Write a certificate or bundle atomically, mode 0644 (readable by the services that trust it)."""
        atomic_write_text(path, text, mode=0o644)

    def recorded_user_files(self) -> dict[str, str]:
        """``{path: sha256}`` of the user's files as last recorded (empty when never recorded)."""
        try:
            data = json.loads(self.user_files.read_text(encoding="utf-8"))
        except (FileNotFoundError, ValueError):
            return {}
        files = data.get("files") if isinstance(data, dict) else None
        if not isinstance(files, dict):
            return {}
        return {str(k): str(v) for k, v in files.items() if isinstance(v, str)}

    def record_user_files(self, digests: Mapping[str, str | None]) -> None:
        """Record ``{path: sha256}`` of the user's files now served (a missing file, None, is not recorded)."""
        self.ensure_dirs()
        files = {path: digest for path, digest in sorted(digests.items()) if digest}
        atomic_write_text(self.user_files, json.dumps({"files": files}, indent=2) + "\n", mode=0o644)


def _checked(node: str) -> str:
    if not _NODE_NAME.match(node):
        raise UsageError(f"expected a node name matching {_NODE_NAME.pattern}, found {node!r}; use the node's name "
                         "from baton.yaml.")
    return node
