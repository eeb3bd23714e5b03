"""The adapter's error tree: one root, a few leaves; every message is one sentence (expected, found, what to do)."""

from __future__ import annotations

__all__ = ["AdapterError", "ConfigError"]


class AdapterError(Exception):
    """Root of every error the adapter raises on purpose."""


class ConfigError(AdapterError, ValueError):
    """The adapter configuration (or a routing/backend change) is invalid."""
