"""Steps of the taint flows (``taint-seed``, ``taint-clear``, and the lead's ``taint-soak``). Each takes the project
root and plain values and returns JSON-able values, so runs record them and a retry rebuilds from disk.

- :func:`seed_canaries` plans new canaries (or takes a plan: node -> kinds) and appends them to the registry.
- :func:`push_canaries` loads the registry into every running adapter and checks the generation each reports.
- :func:`collect_violations` runs one collector pass and returns the new violations.
- :func:`clear_canaries` stops scanning on every running adapter and empties the registry, or drops only the
  given fingerprints (violations kept unless asked).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from baton.control import ControlError
from baton.errors import BatonError
from baton.taint import (
    append_canaries,
    clear_registry,
    clear_violations,
    load_canaries,
    plan_seed,
    save_canaries,
)
from baton.taint.collector import CursorStore, collect_once, collector_lock, push_to, running_nodes
from tasks.context import open_circuit, retry_transient, step

__all__ = ["seed_canaries", "push_canaries", "collect_violations", "clear_canaries"]


@step("seed-canaries")
async def seed_canaries(root: str, plan: dict[str, list[str]] | None = None, nodes: list[str] | None = None,
                        kinds: list[str] | None = None, tiers: list[str] | None = None,
                        per_kind: int = 1) -> list[dict[str, Any]]:
    """Plan canaries and append them to ``.baton/taint_canaries.jsonl``: with ``plan`` (node -> kinds) exactly
    those; else at ``nodes`` (default every node) one per kind of ``kinds`` (default taint.categories) whose tier
    is in ``tiers`` (default any), ``per_kind`` of each. Returns the new canaries (fingerprint, kind, value, tier,
    origin, scope, created_at). Refuses (UsageError) while taint is off in baton.yaml."""
    circuit = open_circuit(root)
    async with collector_lock(circuit.state_dir):  # no pass reads the registry half-written
        existing = load_canaries(circuit.state_dir).canaries
        planned = plan_seed(circuit.config, nodes=nodes, kinds=kinds, tiers=tiers, per_kind=per_kind,
                            kinds_by_node=plan, existing=existing, now=time.time())
        await asyncio.to_thread(append_canaries, circuit.state_dir, planned)
    return [c.model_dump() for c in planned]


@step("push-canaries", retries=2, retry_delay_seconds=0.5, retry_condition_fn=retry_transient)
async def push_canaries(root: str) -> dict[str, Any]:
    """Load the registry into every running adapter (``PUT /taint``) and check each reports its generation.
    Returns ``{"generation", "loaded": [nodes], "unreachable": {node: why}}``: an adapter that does not answer
    is left to the conductor, which loads it once it answers again; one that answers another generation
    fails the step."""
    circuit = open_circuit(root)
    registry = load_canaries(circuit.state_dir)
    wanted = registry.generation
    nodes = running_nodes(circuit.config, circuit.state_dir)

    async def one(node: str) -> tuple[str, str, str]:
        try:
            if not registry.canaries:
                await circuit.client(node).clear_taint()
                return node, "", ""
            return node, await push_to(circuit.config, circuit.state_dir, node, registry.canaries), ""
        except ControlError as exc:
            return node, "", exc.message

    answers = await asyncio.gather(*(one(n) for n in nodes))
    unreachable = {node: why for node, _, why in answers if why}
    wrong = [f"{node} reports {got or 'none'}" for node, got, why in answers if not why and got != wanted]
    if wrong:
        raise BatonError(f"after loading canaries generation {wanted or 'none'}, {'; '.join(wrong)}; run `baton "
                         "taint seed` again or see `baton taint status`.")
    return {"generation": wanted, "loaded": sorted(n for n, _, why in answers if not why),
            "unreachable": unreachable}


@step("collect-violations", retries=1, retry_delay_seconds=0.5)
async def collect_violations(root: str, nodes: list[str] | None = None) -> list[dict[str, Any]]:
    """One collector pass (every running adapter, or ``nodes``; and the service logs): the violations it
    recorded, oldest first. Safe beside the conductor's own passes (they share a lock and the cursors)."""
    circuit = open_circuit(root)
    found = await collect_once(circuit.config, circuit.state_dir, CursorStore(circuit.state_dir), nodes=nodes)
    return [v.model_dump() for v in found]


@step("clear-canaries", retries=1, retry_delay_seconds=0.5, retry_condition_fn=retry_transient)
async def clear_canaries(root: str, fingerprints: list[str] | None = None, violations: bool = False) -> dict[str, Any]:
    """Without ``fingerprints``: stop scanning on every running adapter (``DELETE /taint``) and empty the
    registry. With ``fingerprints``: drop only those canaries from the registry (the adapters keep scanning for
    the rest: run :func:`push_canaries` next, or let the conductor reload them). With ``violations``, forget the
    violations recorded too. Returns ``{"canaries": removed, "violations": removed, "cleared": [nodes],
    "unreachable": {node: why}}`` (an unreachable adapter comes back without canaries when it restarts)."""
    circuit = open_circuit(root)
    if fingerprints is not None:
        drop = set(fingerprints)
        async with collector_lock(circuit.state_dir):
            held = load_canaries(circuit.state_dir).canaries
            kept = [c for c in held if c.fingerprint not in drop]
            removed = len(held) - len(kept)
            await asyncio.to_thread(save_canaries, circuit.state_dir, kept)
            forgotten = await asyncio.to_thread(clear_violations, circuit.state_dir) if violations else 0
        return {"canaries": removed, "violations": forgotten, "cleared": [], "unreachable": {}}
    nodes = running_nodes(circuit.config, circuit.state_dir)

    async def one(node: str) -> tuple[str, str]:
        try:
            await circuit.client(node).clear_taint()
            return node, ""
        except ControlError as exc:
            return node, exc.message

    async with collector_lock(circuit.state_dir):
        removed = await asyncio.to_thread(clear_registry, circuit.state_dir)
        answers = await asyncio.gather(*(one(n) for n in nodes))
        forgotten = await asyncio.to_thread(clear_violations, circuit.state_dir) if violations else 0
    return {"canaries": removed, "violations": forgotten, "cleared": sorted(n for n, why in answers if not why),
            "unreachable": {n: why for n, why in answers if why}}
