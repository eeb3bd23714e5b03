"""The lease: a path whose existence keeps the adapter process alive.

Whoever starts an adapter (Baton's control plane) records it in a file and passes that path as the lease.
When the record is gone (the file deleted, or its whole project directory removed) nobody can stop the
process any more by its record, so it stops itself: gracefully, as on SIGTERM, exit 0.

The path is checked every ``BATON_LEASE_CHECK_S`` seconds (default 2) from the host's housekeeping tick. Only
"no such file or directory" (or a path component that is no longer a directory) counts as gone; any other
error (a permission glitch, a stale network mount) keeps the process running.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Mapping

from .errors import ConfigError

__all__ = ["CHECK_ENV", "DEFAULT_CHECK_S", "Lease", "check_interval"]

CHECK_ENV = "BATON_LEASE_CHECK_S"
DEFAULT_CHECK_S = 2.0
_GONE = frozenset({errno.ENOENT, errno.ENOTDIR})


def check_interval(environ: Mapping[str, str] = os.environ) -> float:
    """Seconds between lease checks, from ``BATON_LEASE_CHECK_S`` (default 2)."""
    raw = environ.get(CHECK_ENV, "")
    if not raw.strip():
        return DEFAULT_CHECK_S
    try:
        value = float(raw)
    except ValueError:
        value = 0.0
    if not 0 < value <= 3600:
        raise ConfigError(f"{CHECK_ENV} must be a number of seconds in (0, 3600], got {raw!r}.")
    return value


class Lease:
    """A lease path and when it is next due for a check (times are the caller's monotonic clock)."""

    __slots__ = ("path", "interval_s", "next_check")

    def __init__(self, path: str, interval_s: float, now: float) -> None:
        self.path = os.path.abspath(path)  # the process may outlive its working directory
        self.interval_s = interval_s
        self.next_check = now + interval_s

    def gone(self) -> bool:
        """Whether the lease path no longer exists."""
        try:
            os.stat(self.path)
        except OSError as exc:
            return exc.errno in _GONE
        return False

    def expired(self, now: float) -> bool:
        """Check the path when a check is due; True once it is gone."""
        if now < self.next_check:
            return False
        self.next_check = now + self.interval_s
        return self.gone()
