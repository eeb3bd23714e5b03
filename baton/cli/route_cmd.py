"""``baton route``: show, ab, canary, set, lock, unlock, clear."""

from __future__ import annotations

import re
from typing import Any

import click

from baton.cli.output import emit, json_option, print_notes, table
from baton.cli.runtime_cmd import run_flow_command

__all__ = ["route", "parse_target", "parse_steps"]

MAX_NO_DATA_WINDOWS = 40  # baton.canary.MAX_NO_DATA_WINDOWS (not imported here: the CLI loads it lazily)

_TARGET = re.compile(r"^(?P<name>[A-Za-z0-9_-]+)=(?P<address>[^=]+)$")
_RULE = re.compile(r"^(?P<header>[A-Za-z0-9-]+)=(?P<value>[^:]+):(?P<target>[A-Za-z0-9_-]+)$")


WEIGHTED = ("weighted", "canary")  # strategies whose targets need a weight each (summing to 100)
TARGET_FORMS = "NAME=HOST:PORT:WEIGHT, NAME=PORT:WEIGHT, NAME=HOST:PORT or NAME=PORT"
END_CANARY_HELP = "If NODE has a canary in flight, roll it back first (otherwise the command refuses)."


def parse_target(raw: str, strategy: str) -> dict[str, Any]:
    """One ``--target``: ``NAME=HOST:PORT:WEIGHT`` or ``NAME=PORT:WEIGHT``, and without the weight where the
    strategy allows (single, header); two numbers are a port and a weight, never a host and a port."""
    from baton.errors import UsageError

    match = _TARGET.match(raw)
    parts = match["address"].split(":") if match else []
    numeric = [p.isdigit() for p in parts]
    if len(parts) == 3 and numeric[1:] == [True, True] and parts[0]:
        host, port, weight = parts[0], parts[1], parts[2]
    elif len(parts) == 2 and numeric == [True, True]:
        host, port, weight = "127.0.0.1", parts[0], parts[1]
    elif len(parts) == 2 and numeric[1] and parts[0]:
        host, port, weight = parts[0], parts[1], None
    elif len(parts) == 1 and numeric[0]:
        host, port, weight = "127.0.0.1", parts[0], None
    else:
        raise UsageError(f"--target expects {TARGET_FORMS} like b=127.0.0.1:9102:20, found {raw!r}.")
    if not 1 <= int(port) <= 65535 or (weight is not None and int(weight) > 100):
        raise UsageError(f"--target expects a port within 1-65535 and a weight within 0-100, found {raw!r}.")
    if weight is None and strategy in WEIGHTED:
        raise UsageError(f"--target {raw!r} has no weight; {strategy} routing needs NAME=HOST:PORT:WEIGHT or "
                         f"NAME=PORT:WEIGHT for every target.")
    return {"name": match["name"], "host": host, "port": int(port), "weight": 100 if weight is None else int(weight)}


def parse_steps(steps: str, pct: int | None) -> list[int]:
    """``--steps`` (and ``--pct``, the first step) as the canary's weight targets, rising strictly within 1-100."""
    from baton.errors import UsageError

    try:
        weights = [int(s) for s in steps.split(",") if s.strip()]
    except ValueError:
        weights = []
    if not weights or any(not 0 < w <= 100 for w in weights) or weights != sorted(set(weights)):
        raise UsageError(f"--steps expects percentages rising strictly within 1-100 like 10,25,50,100, "
                         f"found {steps!r}.")
    return weights if pct is None else [pct, *[w for w in weights if w > pct]]


def _split(value: str) -> int:
    from baton.errors import UsageError

    match = re.fullmatch(r"(\d{1,3})/(\d{1,3})", value)
    if not match or int(match.group(1)) + int(match.group(2)) != 100:
        raise UsageError(f"--split expects two weights summing to 100 like 80/20, found {value!r}.")
    return int(match.group(2))


def _where(result: dict[str, Any]) -> str:
    """Where a second version runs: its port, or its revision on a provider of revisions (Cloud Run)."""
    return f"as revision {result['revision']}" if result.get("revision") else f"on port {result['port']}"


@click.group()
def route() -> None:
    """Show and change how a node's adapter routes traffic."""


@route.command("show")
@click.argument("node")
@json_option
@click.pass_obj
def route_show(obj: Any, node: str, as_json: bool) -> None:
    """Show NODE's routing table and per-target metrics, as its adapter reports them."""
    import asyncio

    from baton.control import ControlClient
    from baton.errors import UsageError

    project = obj.project()
    config = project.load()
    spec = config.node(node)
    if spec is None:
        raise UsageError(f"no node named {node!r}; known nodes: {', '.join(n.name for n in config.nodes) or 'none'}.")
    routing = asyncio.run(ControlClient.for_node(config, node, connect_attempts=1, state_dir=project.state_dir).routing())

    def human(c: Any) -> None:
        lock = " (locked)" if routing.get("locked") else ""
        c.print(f"[bold]{node}[/]: strategy {routing.get('strategy')}{lock}")
        metrics = routing.get("target_metrics") or {}
        rows = []
        for t in routing.get("targets") or []:
            m = metrics.get(t.get("name")) or {}
            rows.append((t.get("name"), "mock" if t.get("mock") else f"{t.get('host')}:{t.get('port')}",
                         t.get("weight"), m.get("requests", 0), m.get("failed", 0),
                         f"{100 * m.get('error_rate', 0):.1f}%", m.get("latency_ms_avg", "-")))
        c.print(table("Targets", ("name", "address", "weight", "requests", "failed", "error rate", "avg ms"), rows))
        for rule in routing.get("rules") or []:
            c.print(f"  rule: {rule.get('header')} = {rule.get('value')} -> {rule.get('target')}")
        if routing.get("default_target"):
            c.print(f"  default: {routing['default_target']}")

    emit(as_json, routing, human)


@route.command("ab")
@click.argument("node")
@click.argument("command")
@click.option("--split", "split", default="80/20", show_default=True, help="Weights of the current and new version.")
@click.option("--force", is_flag=True, help="Split even if the new version fails contract validation.")
@click.option("--end-canary", is_flag=True, help=END_CANARY_HELP)
@json_option
@click.pass_obj
def route_ab(obj: Any, node: str, command: str, split: str, force: bool, end_canary: bool, as_json: bool) -> None:
    """Start COMMAND as version b of NODE and split traffic a/b."""
    weight = _split(split)
    _, result = run_flow_command(obj, "route-split", {"node": node, "command": command, "strategy": "weighted",
                                          "weight": weight, "force": force, "end_canary": end_canary}, as_json)
    emit(as_json, result, lambda c: (print_notes(c, result), c.print(
        f"[bold]{node}[/]: a {100 - weight}% / b {weight}% (b = {command} {_where(result)})")))


@route.command("canary")
@click.argument("node")
@click.argument("command")
@click.option("--pct", type=click.IntRange(1, 99), default=None, help="Canary share (default: the first step, 10).")
@click.option("--promote", is_flag=True, help="Evaluate every interval and promote or roll back automatically.")
@click.option("--steps", default="10,25,50,100", show_default=True, help="Weight steps (targets, in %).")
@click.option("--error-threshold", type=click.FloatRange(0, 100), default=5.0, show_default=True,
              help="Max canary error rate, %.")
@click.option("--latency-threshold", type=click.FloatRange(0, min_open=True), default=500.0, show_default=True,
              help="Max canary p99, ms.")
@click.option("--eval-interval", type=click.FloatRange(0, min_open=True), default=30.0, show_default=True,
              help="Seconds between evaluations.")
@click.option("--min-requests", type=click.IntRange(1), default=20, show_default=True,
              help="Requests the canary must serve for a window to be judged.")
@click.option("--max-no-data", type=click.IntRange(1, MAX_NO_DATA_WINDOWS), default=10, show_default=True,
              metavar="N", help="Windows in a row without --min-requests before rolling back as inconclusive.")
@click.option("--failed-checks", type=click.IntRange(1), default=1, show_default=True,
              help="Failed evaluations before rollback.")
@click.option("--max-duration", type=click.FloatRange(0, min_open=True), default=3600.0, show_default=True,
              help="Seconds before giving up.")
@click.option("--gate", "gate_url", help="URL that must answer 2xx before each step (confirm-promotion).")
@click.option("--keep-warm", type=click.FloatRange(0), default=0.0, show_default=True, metavar="SECONDS",
              help="After a promotion, keep the old version running this long so `baton route revert` is instant.")
@click.option("--detach", is_flag=True, help="Start, then return: the conductor's scheduled canary tick "
                                             "carries the analysis on (see `baton status`, `baton history`).")
@click.option("--force", is_flag=True, help="Start even if the canary fails contract validation.")
@click.option("--end-canary", is_flag=True, help="If NODE already has a canary in flight, roll it back first.")
@json_option
@click.pass_obj
def route_canary(obj: Any, node: str, command: str, pct: int | None, promote: bool, steps: str,
                 error_threshold: float, latency_threshold: float, eval_interval: float, min_requests: int,
                 max_no_data: int, failed_checks: int, max_duration: float, gate_url: str | None, keep_warm: float,
                 detach: bool, force: bool, end_canary: bool, as_json: bool) -> None:
    """Start COMMAND as the canary of NODE; with --promote, analyse it until promoted or rolled back."""
    from baton.cli.flowrun import actor
    from baton.errors import UsageError

    weights = parse_steps(steps, pct)
    if (detach or keep_warm) and not promote:
        raise UsageError("--detach and --keep-warm belong to an analysed canary; add --promote.")
    if detach:
        from baton.cli.conductor_launch import ensure_conductor

        ensure_conductor(obj.project())  # its scheduled tick advances the canary
    if not promote:
        _, result = run_flow_command(obj, "route-split", {"node": node, "command": command, "strategy": "canary",
                                                          "weight": weights[0], "force": force,
                                                          "end_canary": end_canary}, as_json)
        emit(as_json, result, lambda c: (print_notes(c, result), c.print(
            f"[bold]{node}[/]: stable {100 - weights[0]}% / canary {weights[0]}% (canary = {command} on port "
            f"{_where(result)}); add --promote to analyse and promote automatically")))
        return
    _, result = run_flow_command(obj, "route-canary", {
        "node": node, "command": command, "steps": weights, "error_threshold_pct": error_threshold,
        "latency_threshold_ms": latency_threshold, "interval_s": eval_interval, "min_requests": min_requests,
        "max_no_data_windows": max_no_data, "failed_checks": failed_checks, "max_duration_s": max_duration,
        "gate_url": gate_url, "force": force, "keep_warm_s": keep_warm, "detach": detach, "end_canary": end_canary,
        "actor": actor(),
    }, as_json)

    if detach:
        emit(as_json, result, lambda c: (print_notes(c, result), c.print(
            f"[bold]{node}[/]: canary at {result['weight']}% (port {result['port']}); the scheduled canary tick "
            f"evaluates it every {eval_interval:g} s. Follow it with `baton status` and `baton history --node {node}`.")))
        return

    def human(c: Any) -> None:
        print_notes(c, result)
        for reason in result["decisions"]:
            c.print(f"  {reason}")
        verdict = "[green]promoted[/]" if result["outcome"] == "Succeeded" else "[red]rolled back[/]"
        c.print(f"[bold]{node}[/]: canary {verdict}; {result['reason']}")
        if result.get("warm"):
            c.print(f"  the previous version stays warm on port {result['warm']} for {keep_warm:g} s: "
                    f"`baton route revert {node}` returns to it at once")

    emit(as_json, result, human)
    if result["outcome"] != "Succeeded":
        raise click.exceptions.Exit(1)


@route.command("set")
@click.argument("node")
@click.option("--strategy", type=click.Choice(["single", "weighted", "header", "canary"]), required=True)
@click.option("--target", "targets", multiple=True, metavar="NAME=[HOST:]PORT[:WEIGHT]",
              help="NAME=HOST:PORT:WEIGHT or NAME=PORT:WEIGHT (the weight optional for single and header); "
                   "repeatable.")
@click.option("--rule", "rules", multiple=True, metavar="HEADER=VALUE:TARGET", help="Header rule; repeatable.")
@click.option("--default", "default_target", help="Default target of header routing.")
@click.option("--end-canary", is_flag=True, help=END_CANARY_HELP)
@json_option
@click.pass_obj
def route_set(obj: Any, node: str, strategy: str, targets: tuple[str, ...], rules: tuple[str, ...],
              default_target: str | None, end_canary: bool, as_json: bool) -> None:
    """Install a routing table on NODE."""
    from pydantic import ValidationError

    from baton.config import RoutingConfig
    from baton.errors import UsageError

    parsed_targets = [parse_target(raw, strategy) for raw in targets]
    parsed_rules = []
    for raw in rules:
        m = _RULE.match(raw)
        if not m:
            raise UsageError(f"--rule expects HEADER=VALUE:TARGET like x-version=2:b, found {raw!r}.")
        parsed_rules.append(m.groupdict())
    routing: dict[str, Any] = {"strategy": strategy, "targets": parsed_targets}
    if parsed_rules:
        routing["rules"] = parsed_rules
    if default_target:
        routing["default_target"] = default_target
    try:
        RoutingConfig.model_validate(routing)
    except ValidationError as exc:
        raise UsageError(f"invalid routing: {exc.errors()[0]['msg'].removeprefix('Value error, ')}.") from None
    _, result = run_flow_command(obj, "route-set", {"node": node, "routing": routing, "end_canary": end_canary},
                                 as_json)
    emit(as_json, result, lambda c: c.print(f"[bold]{node}[/]: routing set to {strategy}"))


def _lock_command(locked: bool):  # noqa: ANN202
    verb = "lock" if locked else "unlock"

    @route.command(verb, help=f"{verb.capitalize()} NODE's routing ({'changes are refused with 423' if locked else 'allow changes again'}).")
    @click.argument("node")
    @json_option
    @click.pass_obj
    def command(obj: Any, node: str, as_json: bool) -> None:
        _, result = run_flow_command(obj, "route-lock", {"node": node, "locked": locked}, as_json)
        emit(as_json, result, lambda c: c.print(f"[bold]{node}[/]: routing {verb}ed"))

    return command


route_lock = _lock_command(True)
route_unlock = _lock_command(False)


@route.command("revert")
@click.argument("node")
@json_option
@click.pass_obj
def route_revert(obj: Any, node: str, as_json: bool) -> None:
    """Undo NODE's latest promotion: roll back its canary, or return to the version kept warm."""
    from baton.cli.flowrun import actor

    _, result = run_flow_command(obj, "route-revert", {"node": node, "actor": actor()}, as_json)
    emit(as_json, result, lambda c: c.print(
        f"[bold]{node}[/]: {'canary rolled back' if result['reverted'] == 'canary' else 'promotion reverted'}; "
        f"serving port {result.get('serving')}"))


@route.command("clear")
@click.argument("node")
@click.option("--end-canary", is_flag=True, help=END_CANARY_HELP)
@json_option
@click.pass_obj
def route_clear(obj: Any, node: str, end_canary: bool, as_json: bool) -> None:
    """Back to a single backend; extra versions are stopped."""
    _, result = run_flow_command(obj, "route-clear", {"node": node, "end_canary": end_canary}, as_json)
    emit(as_json, result, lambda c: c.print(
        f"[bold]{node}[/]: single backend; stopped {', '.join(result['stopped']) or 'nothing'}"))
