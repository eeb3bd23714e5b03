"""``baton export``: baton.yaml as it is running now (routing read back from the adapters),
rendered from the user's own file so comments and sections are kept."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from baton.cli.output import emit, json_option

__all__ = ["export"]


def _running_routing(project: Any, config: Any) -> dict[str, dict[str, Any]]:
    import asyncio

    from baton.control import ControlClient, ControlError
    from baton.state import StateStore

    if not StateStore(project.state_dir).load().running:
        return {}

    async def read(node: Any) -> dict[str, Any] | None:
        try:
            routing = await ControlClient.for_node(config, node.name, connect_attempts=1,
                                                    state_dir=project.state_dir).routing()
        except ControlError:
            return None
        if routing.get("strategy") == "single" and not routing.get("locked"):
            return None  # a single backend is the default: nothing to declare
        keep = ("strategy", "targets", "rules", "default_target", "locked")
        out = {k: routing[k] for k in keep if routing.get(k) not in (None, [], "")}
        out["targets"] = [{k: t[k] for k in ("name", "host", "port", "weight") if k in t} for t in out.get("targets", [])]
        return out

    async def read_all() -> list[dict[str, Any] | None]:
        return await asyncio.gather(*(read(n) for n in config.nodes))

    return {n.name: r for n, r in zip(config.nodes, asyncio.run(read_all()), strict=True) if r}


@click.command()
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), help="Write to this file instead of stdout.")
@json_option
@click.pass_obj
def export(obj: Any, output: Path | None, as_json: bool) -> None:
    """Print baton.yaml with the routing the circuit is running."""
    from ruamel.yaml.comments import CommentedMap

    project = obj.project()
    doc = project.document()
    config = project.load()
    running = _running_routing(project, config)
    if running:
        section = doc.data.get("routing")
        if not isinstance(section, dict):
            section = CommentedMap()
            doc.data["routing"] = section
        for name, routing in running.items():
            section[name] = routing
    text = doc.render()
    if output is not None:
        from baton.config import atomic_write_text

        atomic_write_text(output, text)
    payload = {"routing": running, "output": str(output) if output else None, "text": text}
    emit(as_json, payload, lambda c: c.out(text, end="") if output is None else c.print(f"Wrote {output}"))
