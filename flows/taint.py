"""Taint flows. ``taint-seed`` (``baton taint seed``) plans canaries for the chosen nodes, kinds and tiers, records
them in the registry and loads them into every running adapter (an adapter that is down gets them from the
conductor once it is back). ``taint-clear`` (``baton taint clear``) stops scanning everywhere and empties the
registry, and with ``violations`` the violations too. Violations are collected by the conductor while taint is
enabled and the circuit runs (``baton taint violations``)."""

from __future__ import annotations

from typing import Any

from prefect import flow

from tasks.taint import clear_canaries, push_canaries, seed_canaries

__all__ = ["taint_seed", "taint_clear"]


@flow(name="taint-seed", flow_run_name="taint-seed-{circuit}")
async def taint_seed(root: str, circuit: str = "", nodes: list[str] | None = None, kinds: list[str] | None = None,
                     tiers: list[str] | None = None, per_kind: int = 1) -> dict[str, Any]:
    """Seed canaries at ``nodes`` (every node when empty) of ``kinds`` (taint.categories when empty) whose tier
    is in ``tiers`` (any when empty), ``per_kind`` of each, and load them into the running adapters."""
    seeded = await seed_canaries(root, nodes=nodes, kinds=kinds, tiers=tiers, per_kind=per_kind)
    pushed = await push_canaries(root)
    return {"seeded": seeded, **pushed}


@flow(name="taint-clear", flow_run_name="taint-clear-{circuit}")
async def taint_clear(root: str, circuit: str = "", violations: bool = False) -> dict[str, Any]:
    """Stop scanning on every running adapter and forget the canaries (and, with ``violations``, the
    violations recorded so far)."""
    return await clear_canaries(root, violations=violations)
