"""``baton taint seed|status|violations|clear``: seeded canary PII, and where it leaked.

``seed`` and ``clear`` run the ``taint-seed`` and ``taint-clear`` flows; ``status`` and ``violations`` only read
``.baton/`` (and ask the running adapters which canaries they hold)."""

from __future__ import annotations

import time
from typing import Any

import click

from baton.cli.output import emit, json_option, table

__all__ = ["taint", "taint_summary"]

NO_SIGHTINGS = 10**15  # a GET /taint cursor past any sighting: only the adapter's state comes back


def _words(raw: str) -> list[str]:
    return [w.strip() for w in raw.split(",") if w.strip()]


def _when(at: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at)) if at else "-"


def taint_summary(project: Any, config: Any) -> dict[str, Any]:
    """For ``baton status``: whether taint is on, the active canaries, the violations and the newest one (files
    only, fast)."""
    from baton.taint import load_canaries, violation_summary

    registry = load_canaries(project.state_dir)
    violations = violation_summary(project.state_dir)
    return {"enabled": config.taint.enabled, "canaries": len(registry.canaries), "generation": registry.generation,
            "violations": violations["count"], "last_violation": violations["last"]}


@click.group()
def taint() -> None:
    """Seeded canary PII: seed it, see where it went, clear it (taint in baton.yaml)."""


@taint.command("seed")
@click.option("--node", "nodes", multiple=True, help="Seed at this node (repeatable; default: every node).")
@click.option("--kinds", default="", help="Comma-separated kinds: email, name, ssn, card, phone (default: "
                                          "taint.categories).")
@click.option("--tiers", default="", help="Comma-separated tiers: only kinds of these (PII, FINANCIAL).")
@click.option("--per-kind", type=click.IntRange(1, 1000), default=1, show_default=True,
              help="Canaries of each kind per node.")
@json_option
@click.pass_obj
def taint_seed(obj: Any, nodes: tuple[str, ...], kinds: str, tiers: str, per_kind: int, as_json: bool) -> None:
    """Seed canaries at nodes (their mocks put them in responses) and load them into every running adapter."""
    from baton.cli.runtime_cmd import run_flow_command
    from baton.taint import load_canaries, plan_seed

    project = obj.project()
    params = {"nodes": list(nodes) or None, "kinds": _words(kinds) or None, "tiers": _words(tiers) or None,
              "per_kind": per_kind}
    # refuse bad input here, in one sentence and before any flow starts (the flow checks again)
    plan_seed(project.load(), existing=load_canaries(project.state_dir).canaries, **params)  # type: ignore[arg-type]
    _, result = run_flow_command(obj, "taint-seed", params, as_json)

    def human(c: Any) -> None:
        c.print(table(f"Seeded {len(result['seeded'])} canaries", ("origin", "kind", "tier", "value", "scope"),
                      [(s["origin"], s["kind"], s["tier"], s["value"], ", ".join(s["scope"]))
                       for s in result["seeded"]]))
        loaded = result["loaded"]
        c.print(f"Generation {result['generation']} loaded into {len(loaded)} adapter{'s' if len(loaded) != 1 else ''}"
                f"{': ' + ', '.join(loaded) if loaded else ' (none runs: they get it once the circuit is up)'}.")
        for node, why in result["unreachable"].items():
            c.print(f"[yellow]{node}[/]: not loaded yet ({why}); the conductor loads it once it answers.")

    emit(as_json, result, human)


def _adapters(project: Any, config: Any, generation: str) -> dict[str, dict[str, Any]]:
    """What each running adapter holds (``GET /taint``), and whether it is the registry's generation."""
    import asyncio

    from baton.control import ControlClient, ControlError
    from baton.taint.collector import running_nodes

    async def one(node: str) -> tuple[str, dict[str, Any]]:
        try:
            client = ControlClient.for_node(config, node, timeout_s=3.0, connect_attempts=1,
                                            state_dir=project.state_dir)
            answer = await client.taint(NO_SIGHTINGS)
        except ControlError as exc:
            return node, {"answered": False, "error": exc.message, "current": False}
        held = {k: answer.get(k) for k in ("enabled", "generation", "canaries", "seeded", "dropped", "scanned")}
        return node, {"answered": True, **held, "current": answer.get("generation") == generation}

    async def every() -> list[tuple[str, dict[str, Any]]]:
        return await asyncio.gather(*(one(n) for n in running_nodes(config, project.state_dir)))

    return dict(asyncio.run(every()))


@taint.command("status")
@json_option
@click.pass_obj
def taint_status(obj: Any, as_json: bool) -> None:
    """Active canaries by node and kind (with their values), violations, and whether each running adapter holds
    the current canaries."""
    from baton.taint import load_canaries

    project = obj.project()
    config = project.load()
    registry = load_canaries(project.state_dir)
    summary = taint_summary(project, config)
    by_node: dict[str, dict[str, int]] = {}
    for canary in registry.canaries:
        kinds = by_node.setdefault(canary.origin, {})
        kinds[canary.kind] = kinds.get(canary.kind, 0) + 1
    report = {**summary, "corrupt_lines": registry.corrupt, "by_node": by_node,
              "canaries": [c.model_dump() for c in registry.canaries], "active": len(registry.canaries),
              "adapters": _adapters(project, config, registry.generation) if registry.canaries else {}}

    def human(c: Any) -> None:
        if not config.taint.enabled:
            c.print("Taint analysis is off (taint.enabled in baton.yaml): nothing is scanned. Add `taint: {enabled: "
                    "true}` to baton.yaml, then `baton taint seed`.")
        if not registry.canaries:
            c.print("No active canaries: `baton taint seed` seeds them.")
        else:
            c.print(table(f"Active canaries (generation {registry.generation})",
                          ("origin", "kind", "tier", "value", "fingerprint", "scope", "seeded"),
                          [(x.origin, x.kind, x.tier, x.value, x.fingerprint, ", ".join(x.scope), _when(x.created_at))
                           for x in registry.canaries]))
        for node, held in report["adapters"].items():
            if not held["answered"]:
                c.print(f"[yellow]{node}[/]: the adapter does not answer ({held['error']})")
            elif not held["current"]:
                c.print(f"[yellow]{node}[/]: the adapter holds generation {held['generation'] or 'none'}, not "
                        f"{registry.generation} (the conductor loads it within a few seconds)")
        if report["adapters"]:
            current = sum(1 for held in report["adapters"].values() if held["current"])
            c.print(f"Adapters holding the current canaries: {current} of {len(report['adapters'])}")
        last = summary["last_violation"]
        c.print(f"Violations: {summary['violations']}"
                + (f"; newest {_when(last['time'])} at {last['edge']}: {'; '.join(last['reasons'])}" if last else ""))
        if registry.corrupt:
            c.print(f"[yellow]note:[/] {registry.corrupt} lines of .baton/taint_canaries.jsonl are not canaries and "
                    "were skipped")

    emit(as_json, report, human)


def _collect_now(project: Any, config: Any) -> None:
    """One collector pass before listing, so what the adapters saw a moment ago is there too: the conductor's
    (which tells every ``baton watch``), or this process's when no conductor runs. A pass that cannot run lists
    what is recorded."""
    import asyncio
    import logging

    from baton.conductor_client import ConductorClient
    from baton.errors import BatonError
    from baton.taint.collector import collect_once

    if not config.taint.enabled:
        return
    try:
        conductor = ConductorClient.discover(project.state_dir)
        if conductor is not None and not conductor.stale and conductor.ping():
            conductor.collect_taint()  # its pass also tells every `baton watch`
        else:
            asyncio.run(collect_once(config, project.state_dir))
    except (BatonError, OSError) as exc:
        logging.getLogger(__name__).info("taint: no collector pass before listing: %s", exc)


@taint.command("violations")
@click.option("--node", help="Only violations seen at this node.")
@click.option("--last", "last", type=click.IntRange(1, 1_000_000), help="Only the newest N violations.")
@json_option
@click.pass_obj
def taint_violations(obj: Any, node: str | None, last: int | None, as_json: bool) -> None:
    """Violations grouped by edge and kind: how many, first and last seen, trace ids, reasons."""
    from baton.errors import UsageError
    from baton.taint import group_violations, load_violations

    project = obj.project()
    config = project.load()
    if node is not None and config.node(node) is None:
        raise UsageError(f"no node named {node!r} in baton.yaml; known nodes: "
                         f"{', '.join(n.name for n in config.nodes) or 'none'}.")
    _collect_now(project, config)
    found, corrupt = load_violations(project.state_dir)
    if node is not None:
        found = [v for v in found if v.node == node]
    if last is not None:
        found = found[-last:]
    groups = group_violations(found)
    shown = found[-1000:]
    report = {"count": len(found), "groups": groups, "violations": [v.model_dump() for v in shown],
              "omitted": len(found) - len(shown), "corrupt_lines": corrupt}

    def human(c: Any) -> None:
        if not found:
            c.print("No violations" + (f" at {node}" if node else "") + ": no canary was seen where it must not be.")
            return
        c.print(table(f"{len(found)} violations", ("edge", "kind", "tier", "count", "first", "last", "trace ids",
                                                   "why"),
                      [(g["edge"], g["kind"], g["tier"], g["count"], _when(g["first"]), _when(g["last"]),
                        ", ".join(g["trace_ids"]) or "-", "; ".join(g["reasons"][:2])) for g in groups]))

    emit(as_json, report, human)


@taint.command("clear")
@click.option("--violations", is_flag=True, help="Also forget the violations recorded so far.")
@json_option
@click.pass_obj
def taint_clear(obj: Any, violations: bool, as_json: bool) -> None:
    """Stop scanning on every running adapter and forget the canaries (violations are kept unless asked)."""
    from baton.cli.runtime_cmd import run_flow_command

    _, result = run_flow_command(obj, "taint-clear", {"violations": violations}, as_json)

    def human(c: Any) -> None:
        c.print(f"Cleared {result['canaries']} canaries from the registry and {len(result['cleared'])} adapters"
                + (f"; forgot {result['violations']} violations" if violations else "; violations kept") + ".")
        for name, why in result["unreachable"].items():
            c.print(f"[yellow]{name}[/]: not cleared ({why}); it holds no canaries once restarted.")

    emit(as_json, result, human)
