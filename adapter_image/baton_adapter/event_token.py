"""The events-only token: what a slotted service presents to ``POST /events`` on its node's management API.

Services deliberately never get the management token. The events token is derived from it (HMAC-SHA256 under
the management token, of a fixed label), so an adapter knows it without being given another secret, the
control plane computes the same value for the services it starts (``BATON_EVENTS_TOKEN``), a new management
token makes a new events token, and the events token tells nothing of the management token. Standard library
only: the control plane imports this module too.
"""

from __future__ import annotations

import hashlib
import hmac
from functools import lru_cache

__all__ = ["EVENTS_TOKEN_ENV", "events_token"]

EVENTS_TOKEN_ENV = "BATON_EVENTS_TOKEN"  # the variable a service reads it from
_LABEL = b"baton events token v1"


@lru_cache(maxsize=8)
def events_token(management_token: str) -> str:
    """The events-only token that goes with ``management_token`` (64 hex digits)."""
    return hmac.new(management_token.encode(), _LABEL, hashlib.sha256).hexdigest()
