"""``baton server status|start|stop`` and ``baton ui``: the user's shared Prefect server and its UI."""

from __future__ import annotations

from typing import Any

import click

from baton.cli.output import emit, json_option

__all__ = ["server", "ui"]


@click.group()
def server() -> None:
    """The Prefect server Baton keeps for this user (shared by every project)."""


def _describe(c: Any, info: dict[str, Any]) -> None:
    if info["api_url"] is None:
        c.print(f"No Prefect server has been started yet (home {info['home']}); any flow command starts one.")
        return
    state = "[green]running[/]" if info["running"] else "[red]not running[/]"
    c.print(f"Prefect server {state} at {info['api_url']} (UI {info['ui_url']}), kept by {info['managed_by']}")
    if info.get("pid"):
        c.print(f"  pid {info['pid']}, database {info['database']}, home {info['home']}")
    elif info.get("database"):
        c.print(f"  database {info['database']}, home {info['home']}")


@server.command("status")
@json_option
def server_status_cmd(as_json: bool) -> None:
    """Where the shared Prefect server is and whether it answers (exit 1 when it does not)."""
    from baton.prefect_server import server_status

    info = server_status()
    emit(as_json, info, lambda c: _describe(c, info))
    if not info["running"]:
        raise click.exceptions.Exit(1)


@server.command("start")
@click.option("--database", metavar="URL", help="Run it on PostgreSQL (postgresql://user:pw@host:port/db); kept for "
                                                "later starts. Default: SQLite under the Baton directory.")
@json_option
def server_start(database: str | None, as_json: bool) -> None:
    """Start the shared Prefect server (a no-op when it runs)."""
    from baton.prefect_server import ensure_server, server_status

    ensure_server(database=database)
    info = server_status()
    emit(as_json, info, lambda c: _describe(c, info))


@server.command("stop")
@json_option
def server_stop(as_json: bool) -> None:
    """Stop the shared Prefect server; history stays in its database. Running conductors start it again."""
    from baton.prefect_server import stop_server, user_api_url

    if user_api_url():
        from baton.errors import UsageError

        raise UsageError(f"PREFECT_API_URL is set ({user_api_url()}): that server is not Baton's to stop.")
    stopped = stop_server()
    emit(as_json, {"stopped": stopped},
         lambda c: c.print("Prefect server stopped" if stopped else "The Prefect server was not running"))


@click.command()
@click.option("--open", "open_browser", is_flag=True, help="Open it in a browser.")
@json_option
@click.pass_obj
def ui(obj: Any, open_browser: bool, as_json: bool) -> None:
    """Print the address of this project's runs in the Prefect UI."""
    from urllib.parse import quote

    from baton.prefect_server import ensure_server

    project = obj.project()
    server = ensure_server()
    tag = project.run_tag
    payload = {"ui_url": server.ui_url, "runs_url": f"{server.ui_url}/runs?tag={quote(tag)}", "tag": tag,
               "circuit": project.load().name}
    if open_browser:
        import webbrowser

        payload["opened"] = webbrowser.open(payload["runs_url"])
    emit(as_json, payload, lambda c: c.print(f"{payload['runs_url']}\n  (runs of {payload['circuit']} carry the tag "
                                            f"{tag}; every project's runs are at {server.ui_url}/runs)"))
