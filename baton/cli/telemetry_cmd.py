"""``baton metrics``, ``baton signals`` and ``baton events``: what the adapters measured and what services
reported, read live from the running adapters or from the files the conductor's pipelines keep under ``.baton/``
(signals.jsonl, metrics.jsonl, service_events.jsonl, each with its rotated files)."""

from __future__ import annotations

import sys
import time
from typing import Any

import click

from baton.cli.output import emit, json_option, table

__all__ = ["events", "metrics", "signals"]

LAST = click.IntRange(1, 1_000_000)


def _when(at: Any) -> str:
    if not isinstance(at, (int, float)) or isinstance(at, bool):
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at)) + f".{int(at * 1000) % 1000:03d}"


def _ms(value: Any) -> str:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return "-"
    return f"{value:.2f}" if value < 10 else f"{value:.1f}"


def _pct(rate: float) -> str:
    return f"{100 * rate:.1f} %"


def _known(config: Any, node: str | None) -> None:
    from baton.errors import UsageError

    if node is not None and config.node(node) is None:
        raise UsageError(f"no node named {node!r} in baton.yaml; known nodes: "
                         f"{', '.join(n.name for n in config.nodes) or 'none'}.")


def _context(obj: Any, node: str | None) -> tuple[Any, Any, Any]:
    from baton.telemetry import TelemetrySettings

    project = obj.project()
    config = project.load()
    _known(config, node)
    return project, config, TelemetrySettings.from_config(config)


def _not_piped(settings: Any) -> str:
    return "" if settings.enabled else " (observability.pipelines is off in baton.yaml)"


def _dropped(project: Any) -> dict[str, int]:
    """Per node: signals that fell off an adapter's ring before the conductor read them."""
    from baton.telemetry.pipelines import CursorStore

    try:
        return CursorStore(project.state_dir).load().dropped()
    except OSError:
        return {}


# -- metrics -----------------------------------------------------------------------------------------------------


def _metric_rows(nodes: dict[str, Any]) -> list[dict[str, Any]]:
    from baton.telemetry import metrics_row

    return [metrics_row(name, data) for name, data in nodes.items() if isinstance(data, dict)]


def _metrics_table(title: str | None, rows: list[dict[str, Any]], at: Any = None) -> Any:
    columns = ("node", "role", "requests", "failed", "error rate", "p50 ms", "p95 ms", "p99 ms", "conns",
               "bytes in", "bytes out")
    lead = ("time",) if at is not None else ()
    return table(title, (*lead, *columns), [
        (*((_when(r["at"]),) if at is not None else ()), r["node"], r["role"], r["requests"], r["failed"],
         _pct(r["error_rate"]), _ms(r["p50_ms"]), _ms(r["p95_ms"]), _ms(r["p99_ms"]), r["active_connections"],
         r["bytes_in"], r["bytes_out"]) for r in rows])


def _prometheus(project: Any, config: Any, node: str | None) -> str:
    import asyncio

    from baton.errors import BatonError
    from baton.telemetry.exposition import merge_expositions
    from baton.telemetry.sources import read_all, running_nodes

    nodes = [n for n in running_nodes(config, project.state_dir) if node is None or n == node]
    if not nodes:
        what = f"node {node}'s adapter is" if node else "the circuit is"
        raise BatonError(f"{what} not running: `baton metrics --prometheus` reads the running adapters' "
                         "/metrics/prometheus; run `baton up` first.")
    texts, failures = asyncio.run(read_all(config, project.state_dir, nodes, "/metrics/prometheus", as_text=True))
    if not texts:
        raise BatonError(f"no adapter answered /metrics/prometheus ({'; '.join(failures.values())}).")
    merged = merge_expositions(texts)
    for message in [*failures.values(), *merged.notes]:
        click.echo(f"note: {message}", err=True)
    return merged.text


@click.command()
@click.option("--node", help="Only this node.")
@click.option("--last", "last_n", type=LAST, help="The last N snapshots of .baton/metrics.jsonl instead of live "
                                                  "figures.")
@click.option("--prometheus", is_flag=True, help="Print one Prometheus text exposition of every running adapter.")
@json_option
@click.pass_obj
def metrics(obj: Any, node: str | None, last_n: int | None, prometheus: bool, as_json: bool) -> None:
    """Show each node's request counts, error rate and latency: live from the running adapters (else the last
    snapshot the conductor recorded), or the recorded snapshots with --last."""
    from baton.errors import UsageError

    if prometheus and (as_json or last_n):
        raise UsageError("--prometheus prints the running adapters' text exposition; drop --json and --last.")
    project, config, settings = _context(obj, node)
    if prometheus:
        sys.stdout.write(_prometheus(project, config, node))
        sys.stdout.flush()
        return
    if last_n is not None:
        _recorded(project, settings, node, last_n, as_json)
        return
    import asyncio

    from baton.telemetry.sources import read_all, running_nodes

    nodes = [n for n in running_nodes(config, project.state_dir) if node is None or n == node]
    if not nodes:
        _recorded(project, settings, node, 1, as_json, live_wanted=True)
        return
    at = time.time()
    answers, failures = asyncio.run(read_all(config, project.state_dir, nodes, "/metrics"))
    payload = {"source": "live", "timestamp": at, "nodes": answers, "unreachable": failures}

    def human(c: Any) -> None:
        c.print(_metrics_table(f"Metrics (live, {_when(at)})", _metric_rows(answers)))
        for name, why in failures.items():
            c.print(f"[yellow]{name}:[/] {why}")

    emit(as_json, payload, human)


def _recorded(project: Any, settings: Any, node: str | None, last_n: int, as_json: bool,
              live_wanted: bool = False) -> None:
    from baton.telemetry import METRICS_FILE, read_recent, select_snapshots

    snapshots = list(read_recent(project.state_dir, METRICS_FILE, settings.keep, last_n,
                                 lambda records: select_snapshots(records, node=node)).records)
    if live_wanted:
        latest = snapshots[-1] if snapshots else {"timestamp": None, "nodes": {}}
        payload: dict[str, Any] = {"source": METRICS_FILE, "running": False, **latest}
    else:
        payload = {"source": METRICS_FILE, "snapshots": snapshots}

    def human(c: Any) -> None:
        if not snapshots:
            c.print(("The circuit is not running, and " if live_wanted else "") +
                    f"no metric snapshot is recorded yet: the conductor appends one to .baton/{METRICS_FILE} every "
                    f"{settings.metrics_interval_s:g} s while the circuit runs{_not_piped(settings)}.")
            return
        if live_wanted:
            c.print("The circuit is not running: its last recorded snapshot.")
        rows = [{**row, "at": s["timestamp"]} for s in snapshots for row in _metric_rows(s["nodes"])]
        c.print(_metrics_table(None, rows, at=True))

    emit(as_json, payload, human)


# -- signals -----------------------------------------------------------------------------------------------------


@click.command()
@click.option("--node", help="Only requests this node served.")
@click.option("--path", help="Only this path and those under it (/users matches /users/42); end it with * for a "
                             "plain prefix.")
@click.option("--last", "last_n", type=LAST, help="The last N requests (default: 50 listed; all of them with "
                                                  "--stats).")
@click.option("--stats", is_flag=True, help="Per node and path: count, error rate, p50/p95/p99 latency.")
@json_option
@click.pass_obj
def signals(obj: Any, node: str | None, path: str | None, last_n: int | None, stats: bool, as_json: bool) -> None:
    """Show the requests the adapters served (.baton/signals.jsonl, recorded by the conductor)."""
    from baton.errors import UsageError
    from baton.telemetry import SIGNALS_FILE, read_recent, read_records, select_signals, signal_stats

    if path is not None and not path.startswith("/"):
        raise UsageError(f"--path expects a path starting with /, found {path!r}.")
    project, _, settings = _context(obj, node)
    last = last_n if (stats or last_n) else 50
    if last is None:  # --stats over every request recorded
        lines = read_records(project.state_dir, SIGNALS_FILE, settings.keep)
        chosen = select_signals(lines.records, node=node, path=path)
    else:
        lines = read_recent(project.state_dir, SIGNALS_FILE, settings.keep, last,
                            lambda records: select_signals(records, node=node, path=path))
        chosen = list(lines.records)
    dropped = _dropped(project)
    anything = (project.state_dir / SIGNALS_FILE).exists()
    empty = (f"No signals recorded{' for these filters' if anything else ' yet'}: the conductor writes "
             f".baton/{SIGNALS_FILE} while the circuit runs{_not_piped(settings)}.")
    if stats:
        found = signal_stats(chosen)
        payload: dict[str, Any] = {"stats": [s.to_json() for s in found], "signals": len(chosen),
                                   "dropped": dropped, "corrupt_lines": lines.corrupt}

        def human(c: Any) -> None:
            if not found:
                c.print(empty)
                return
            c.print(table(f"Signals by node and path ({len(chosen)} requests)",
                          ("node", "path", "count", "errors", "error rate", "p50 ms", "p95 ms", "p99 ms"),
                          [(s.node, s.path, s.count, s.errors, _pct(s.error_rate), _ms(s.p50_ms), _ms(s.p95_ms),
                            _ms(s.p99_ms)) for s in found]))
            _dropped_line(c, dropped)

        emit(as_json, payload, human)
        return

    def listing(c: Any) -> None:
        if not chosen:
            c.print(empty)
            return
        c.print(table(None, ("time", "node", "method", "path", "status", "latency ms", "bytes", "target", "trace"), [
            (_when(r.get("timestamp")), r.get("node_name"), r.get("method"), r.get("path"), r.get("status_code"),
             _ms(r.get("latency_ms")), r.get("body_bytes"), r.get("target", ""), str(r.get("trace_id") or "")[:16])
            for r in chosen]))
        _dropped_line(c, dropped)

    emit(as_json, {"signals": chosen, "dropped": dropped, "corrupt_lines": lines.corrupt}, listing)


def _dropped_line(c: Any, dropped: dict[str, int]) -> None:
    if dropped:
        c.print("[yellow]not recorded[/] (fell off an adapter's ring before the conductor read it): " +
                ", ".join(f"{n} {k}" for n, k in dropped.items()))


# -- events ------------------------------------------------------------------------------------------------------


@click.command()
@click.option("--node", help="Only events of this node's service.")
@click.option("--type", "type_", help="Only events of this type.")
@click.option("--last", "last_n", type=LAST, default=50, show_default=True)
@json_option
@click.pass_obj
def events(obj: Any, node: str | None, type_: str | None, last_n: int, as_json: bool) -> None:
    """Show what slotted services reported (POST /events on their adapter; .baton/service_events.jsonl)."""
    from baton.telemetry import SERVICE_EVENTS_FILE, read_recent, select_events

    project, _, settings = _context(obj, node)
    lines = read_recent(project.state_dir, SERVICE_EVENTS_FILE, settings.keep, last_n,
                        lambda records: select_events(records, node=node, type_=type_))
    chosen = list(lines.records)
    anything = (project.state_dir / SERVICE_EVENTS_FILE).exists()

    def human(c: Any) -> None:
        if not chosen:
            c.print(f"No service events{' for these filters' if anything else ' yet'}: services report them "
                    "with POST /events on their node's management API (BATON_CONTROL_PORT); the conductor keeps "
                    f"them in .baton/{SERVICE_EVENTS_FILE}{_not_piped(settings)}.")
            return
        c.print(table(None, ("time", "node", "severity", "type", "message", "data"), [
            (_when(r.get("timestamp")), r.get("node_name"), r.get("severity"), r.get("type"), r.get("message"),
             _data(r.get("data"))) for r in chosen]))

    emit(as_json, {"events": chosen, "corrupt_lines": lines.corrupt}, human)


def _data(data: Any) -> str:
    import json

    text = json.dumps(data, separators=(",", ":"), default=str) if data else ""
    return text if len(text) <= 80 else text[:77] + "..."
