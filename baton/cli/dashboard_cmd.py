"""``baton dashboard``: the circuit at a glance, one row per node; ``--serve`` has the conductor serve it live in a
browser (a URL carrying a token, as Jupyter prints one); ``--stop`` stops serving it."""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from baton.cli.output import emit, json_option, table

__all__ = ["dashboard", "DEFAULT_PORT"]

DEFAULT_PORT = 9900  # baton.dashboard.server.DEFAULT_PORT, without importing aiohttp for --help
DASH = "-"


def _figure(value: Any, digits: int = 1, suffix: str = "") -> str:
    return DASH if value is None else f"{value:.{digits}f}{suffix}"


def _percent(value: float | None) -> str:
    return DASH if value is None else f"{100 * value:.1f}%"


def _routing(routing: dict[str, Any] | None) -> str:
    if not routing:
        return DASH
    if routing["strategy"] == "single":
        return f"single: {routing['targets'][0]['backend']}" if routing["targets"] else "single"
    return routing["label"] + ": " + ", ".join(f"{t['name']} {t['weight']}%" for t in routing["targets"])


def _canary(canary: dict[str, Any] | None) -> str:
    if not canary:
        return DASH
    return f"{canary['phase']} {canary['weight']}%" + ("" if canary["in_flight"] else " (ended)")


def _tls(tls: dict[str, Any] | None) -> str:
    if tls is None:
        return "off"
    if not tls["enabled"]:
        return "not served"
    return f"{tls['days_left']:g} d left" if tls["days_left"] is not None else "on"


def one_reading(project: Any, window_s: float) -> dict[str, Any]:
    """The dashboard as JSON: two readings ``window_s`` apart (rates need two; one when the circuit is down)."""
    import asyncio

    from baton.dashboard.collector import Collector
    from baton.prefect_server import running_server, user_api_url

    project.load()  # an invalid baton.yaml says so before anything is asked
    found = running_server()
    api_url = user_api_url() or (found[0] if found else None)

    async def read() -> dict[str, Any]:
        async with Collector(project, api_url=api_url) as collector:
            first = await collector.collect()
            if not first.running:
                return first.to_json()
            await asyncio.sleep(window_s)
            return (await collector.collect()).to_json()

    return {**asyncio.run(read()), "window_s": window_s}


def _print_table(c: Any, payload: dict[str, Any]) -> None:
    t = payload["totals"]
    c.print(f"Circuit [bold]{payload['circuit']}[/]: {t['nodes']} nodes, {t['live']} live, {t['mock']} mocked, "
            f"{t['healthy']} healthy" + ("" if payload["running"] else " (not running: `baton up`)"))
    c.print(table(None, ("node", "role", "serving", "health", "req/s", "errors", "p50 ms", "p99 ms", "routing",
                         "canary", "custodian", "TLS", "taint"), [
        (n["name"], n["role"], n["serving"], n["health"], _figure(n["rps"]), _percent(n["error_rate"]),
         _figure(n["p50_ms"]), _figure(n["p99_ms"]), _routing(n["routing"]), _canary(n["canary"]),
         (n["custodian"] or {}).get("status") or DASH, _tls(n["tls"]), n["violations"])
        for n in payload["nodes"]]))
    if payload["running"]:
        c.print(f"req/s and errors over {payload['window_s']:g} s; latency over each adapter's recent requests.")
    for n in payload["nodes"]:
        if n["health"] not in ("healthy", "stopped") and n["health_detail"]:
            c.print(f"[bold]{n['name']}[/] {n['health']}: {n['health_detail']}")
    if payload["runs"]:
        c.print(table("Recent actions", ("started", "action", "node", "state", "run"), [
            (r["started"][:19].replace("T", " "), r["action"], r["node"] or DASH, r["state"], r["url"] or r["name"])
            for r in payload["runs"][:5]]))
    elif payload["runs_note"]:
        c.print(f"Recent actions: {payload['runs_note']}")


def _has_display() -> bool:
    """A browser can be opened here (without one, :mod:`webbrowser` may take the terminal for a text browser)."""
    return sys.platform in ("darwin", "win32") or bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def _serve(project: Any, port: int, port_given: bool, no_open: bool, as_json: bool) -> None:
    from baton.cli.conductor_launch import ensure_conductor
    from baton.errors import UsageError

    if os.environ.get("BATON_NO_CONDUCTOR"):
        raise UsageError("the dashboard is served by the project's conductor, which BATON_NO_CONDUCTOR=1 keeps off; "
                         "unset it, or use `baton dashboard --json` for one reading.")
    project.load()
    client = ensure_conductor(project, progress=None if as_json else lambda line: click.echo(line, err=True))
    answer = client._json("POST", "/dashboard", {"port": port})
    if not no_open and not answer["already"] and _has_display():
        import webbrowser

        webbrowser.open(answer["url"], new=2)

    def human(c: Any) -> None:
        if answer["already"]:
            moved = (f" (on port {answer['port']}, not {port}: `baton dashboard --stop` first to move it)"
                     if port_given and port not in (0, answer["port"]) else "")
            c.print(f"The dashboard is already served{moved}:")
        else:
            c.print("The conductor serves the dashboard; open this URL (it carries the dashboard's token):")
        c.print(f"    {answer['url']}", soft_wrap=True)
        c.print("It refreshes every second. `baton dashboard --stop` stops serving it.")

    emit(as_json, answer, human)


@click.command()
@click.option("--serve", is_flag=True, help="Have the project's conductor serve the dashboard live on 127.0.0.1 and "
                                            "print its URL (with a token); again, the same URL.")
@click.option("--port", type=click.IntRange(0, 65535), default=DEFAULT_PORT, show_default=True,
              help="With --serve: the loopback port (0: any free one).")
@click.option("--no-open", is_flag=True, help="With --serve: do not open a browser.")
@click.option("--stop", is_flag=True, help="Stop serving the dashboard.")
@click.option("--window", "window_s", type=click.FloatRange(0.2, 60), default=1.0, show_default=True,
              help="Seconds between the two readings req/s and error rates compare.")
@json_option
@click.pass_context
def dashboard(ctx: click.Context, serve: bool, port: int, no_open: bool, stop: bool, window_s: float,
              as_json: bool) -> None:
    """The circuit per node: live or mocked, health, req/s, error rate, p50/p99 latency, routing, canary,
    custodian verdict, TLS, taint violations; --serve for the live page with the topology, signals and actions."""
    from baton.errors import UsageError

    source = ctx.get_parameter_source
    given = {name for name in ("port", "no_open", "window_s") if source(name) == click.core.ParameterSource.COMMANDLINE}
    if serve and stop:
        raise UsageError("--serve and --stop go separately: stop first, then serve again (on another --port, say).")
    if given & {"port", "no_open"} and not serve:
        raise UsageError("--port and --no-open go with --serve (`baton dashboard --serve --port N`).")
    if "window_s" in given and (serve or stop):
        raise UsageError("--window sets the one reading of `baton dashboard`; the served page reads every second.")
    project = ctx.obj.project()
    if serve:
        _serve(project, port, "port" in given, no_open, as_json)
    elif stop:
        _stop(project, as_json)
    else:
        payload = one_reading(project, window_s)
        emit(as_json, payload, lambda c: _print_table(c, payload))


def _stop(project: Any, as_json: bool) -> None:
    from baton.conductor_client import ConductorClient

    client = ConductorClient.discover(project.state_dir)
    stopped = bool(client is not None and client.ping() and client._json("DELETE", "/dashboard")["stopped"])
    emit(as_json, {"stopped": stopped}, lambda c: c.print("The dashboard is no longer served." if stopped
                                                          else "The dashboard was not being served."))
