"""``baton watch`` (the custodian's decisions, live) and ``baton heal pause|resume NODE``."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import click

from baton.cli.output import console, emit, json_option

__all__ = ["watch", "heal"]


def _conductor(obj: Any) -> Any:
    """The conductor (the custodian lives there), started if it is not running."""
    from baton.cli.conductor_launch import ensure_conductor

    return ensure_conductor(obj.project())


def _clock(at: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(at))


@click.command()
@click.option("--once", is_flag=True, help="Print the current custody of every node and exit.")
@json_option
@click.pass_obj
def watch(obj: Any, once: bool, as_json: bool) -> None:
    """Stream the custodian's decisions as they happen (Ctrl-C to stop); --json for one JSON line each."""
    client = _conductor(obj)
    out = console()
    try:
        for item in client.watch():
            if "keepalive" in item:
                continue
            if "snapshot" in item:
                nodes = item["snapshot"]["nodes"]
                if as_json:
                    sys.stdout.write(json.dumps(item) + "\n")
                    sys.stdout.flush()
                else:
                    if not nodes:
                        out.print(f"No verdict yet: the custodian probes every slotted service every "
                                  f"{item['snapshot']['policy']['probe_interval_s']:g} s (`baton slot <node> <command>` one).")
                    for name, node in nodes.items():
                        paused = " (paused)" if node["paused"] else ""
                        out.print(f"[bold]{name}[/]: {node['status']}{paused}: {node['reason']}")
                    for name, part in (item["snapshot"].get("components") or {}).items():  # Baton's own parts
                        out.print(f"[bold]{name}[/]: {part['status']}: {part['reason']}")
                    for name, difference in (item["snapshot"].get("drift") or {}).items():
                        out.print(f"[bold red]{name}[/]: {difference}")
                if once:
                    return
                continue
            if as_json:
                sys.stdout.write(json.dumps(item) + "\n")
                sys.stdout.flush()
            else:
                out.print(f"{_clock(item['at'])} [bold]{item['node']}[/] {item['status']}: {item['reason']}")
    except KeyboardInterrupt:
        return


@click.group()
def heal() -> None:
    """Pause, resume or cancel the custodian's healing of a node."""


def _heal_command(kind: str, text: str):  # noqa: ANN202
    @heal.command(kind, help=text)
    @click.argument("node")
    @json_option
    @click.pass_obj
    def command(obj: Any, node: str, as_json: bool) -> None:
        result = _conductor(obj).heal(kind, node)
        emit(as_json, result, lambda c: c.print(
            f"[bold]{node}[/]: healing {'paused' if result['paused'] else 'on'}; {result['status']}: {result['reason']}"))

    return command


heal_pause = _heal_command("pause", "Stop repairing NODE (probes go on; nothing is restarted or mocked).")
heal_cancel = _heal_command("cancel", "Cancel NODE's repair in flight (its flow run ends Cancelled) and pause healing.")
heal_resume = _heal_command("resume", "Repair NODE again; a mocked or faulted node is restarted from the start.")
