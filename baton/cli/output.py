"""How commands speak: one JSON document on stdout with ``--json``, rich tables
otherwise, errors on stderr. rich is imported only when a table is drawn."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

import click

__all__ = ["json_option", "emit", "table", "console", "error_console"]


def json_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--json", "as_json", is_flag=True, help="Print one JSON document on stdout, no colour.")(func)


def console():  # noqa: ANN201 - rich is imported lazily
    import os

    from rich.console import Console

    # Piped output keeps full rows (rich would fold tables at 80 columns).
    width = None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 200
    return Console(highlight=False, soft_wrap=True, width=width)


def error_console():  # noqa: ANN201
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True)


def emit(as_json: bool, payload: Any, human: Callable[[Any], None]) -> None:
    """Print ``payload`` as JSON, or hand a rich console to ``human``."""
    if as_json:
        sys.stdout.write(json.dumps(payload, indent=2, default=str) + "\n")
        sys.stdout.flush()
        return
    human(console())


def table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[Any]]):  # noqa: ANN201
    from rich.table import Table

    grid = Table(title=title, title_justify="left", header_style="bold")
    for column in columns:
        grid.add_column(column, overflow="fold")
    for row in rows:
        grid.add_row(*("" if cell is None else str(cell) for cell in row))
    return grid


def print_notes(c: Any, result: dict[str, Any]) -> None:
    """The notes a flow returns with its result (e.g. a literal of the node's own port, rewritten)."""
    for note in result.get("notes") or ():
        c.print(f"[yellow]note:[/] {note}")
