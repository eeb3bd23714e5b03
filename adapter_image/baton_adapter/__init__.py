"""Baton's data plane: one adapter per circuit node (reverse proxy + management API)."""

__version__ = "0.1.0"
