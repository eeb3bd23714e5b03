"""The dashboard: one row per node (role, live or mocked, health, req/s, error rate, latency, routing, canary,
the custodian's verdict, TLS, taint violations) and the circuit's recent signals, decisions and runs; printed by
``baton dashboard`` and served live by the conductor (``baton dashboard --serve``).

:mod:`.model` aggregates (pure), :mod:`.layout` places the topology (pure), :mod:`.collector` reads the
adapters, ``.baton/`` and Prefect's history, :mod:`.web` is the token-guarded page and API, :mod:`.server` hosts
it in the conductor. Importing this package imports none of them (the CLI stays fast)."""

from __future__ import annotations

__all__: list[str] = []
