"""``baton logs``: what slotted services printed, with the severity Baton gave each line."""

from __future__ import annotations

import json
from typing import Any

import click

from baton.cli.output import emit, json_option, table

__all__ = ["logs"]

_LEVELS = ("debug", "info", "warning", "error", "critical")


@click.command()
@click.option("--node", help="Only this node's service.")
@click.option("--level", type=click.Choice(_LEVELS), help="Only lines at this severity or above.")
@click.option("--last", "last_n", type=click.IntRange(1, 100000), default=50, show_default=True)
@json_option
@click.pass_obj
def logs(obj: Any, node: str | None, level: str | None, last_n: int, as_json: bool) -> None:
    """Show captured service logs (.baton/service_logs.jsonl, rotated at 10 MiB into .1 .. .3)."""
    project = obj.project()
    path = project.state_dir / "service_logs.jsonl"
    floor = _LEVELS.index(level) if level else 0
    records: list[dict[str, Any]] = []
    for file in _newest_first(path):  # the rotated files are read only when the newer ones fall short
        older = []
        for line in _lines(file):
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if not isinstance(record, dict) or (node and record.get("node_name") != node):
                continue
            severity = record.get("severity", "info")
            if (_LEVELS.index(severity) if severity in _LEVELS else 1) < floor:
                continue
            older.append(record)
        records = older + records
        if len(records) >= last_n:
            break
    records = records[-last_n:]

    def human(c: Any) -> None:
        if not records:
            c.print("No service logs yet.")
            return
        c.print(table(None, ("time", "node", "severity", "stream", "message"), [
            (r.get("timestamp", "")[11:23], r.get("node_name"), r.get("severity"), r.get("stream"), r.get("message"))
            for r in records
        ]))

    emit(as_json, {"logs": records}, human)


def _newest_first(path: Any) -> list[Any]:
    """The log, then its rotated files ``.1``, ``.2``… (see :mod:`baton.logpump`)."""
    rotated = [p for p in path.parent.glob(path.name + ".*") if p.suffix[1:].isdigit()]
    return [path, *sorted(rotated, key=lambda p: int(p.suffix[1:]))]


def _lines(path: Any) -> list[str]:
    try:
        return path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return []
