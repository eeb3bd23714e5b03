"""The audit record of a topology action: before/after snapshots on the flow run."""

from __future__ import annotations

import json
import re
from typing import Any

from prefect.artifacts import acreate_markdown_artifact

from tasks.context import step

__all__ = ["record_change", "label_run"]


async def label_run(root: str, action: str, nodes: list[str]) -> None:
    """Give a run started by a schedule (whose deployment knows no project) the tags ``baton history`` filters
    on: the circuit, the project, the action and every node it touches."""
    from prefect import get_client
    from prefect.runtime import flow_run

    from tasks.context import open_circuit

    run_id = flow_run.id
    if not run_id:
        return
    circuit = open_circuit(root)
    wanted = ["baton", f"action:{action}", f"circuit:{circuit.config.name}", circuit.project.run_tag,
              *(f"node:{n}" for n in nodes)]
    tags = list(flow_run.tags or [])
    missing = [t for t in wanted if t not in tags]
    if not missing:
        return
    if not any(t.startswith("actor:") for t in tags):
        missing.append("actor:schedule")
    async with get_client() as client:
        await client.update_flow_run(run_id, tags=[*tags, *missing])


def _key(action: str, node: str) -> str:
    return re.sub(r"[^a-z0-9-]+", "-", f"{action}-{node}".lower()).strip("-")


@step("record-change")
async def record_change(root: str, action: str, node: str, before: Any,
                        parameters: dict[str, Any] | None = None) -> str:
    """Read the node's state after the action and attach before/after to the run as an artifact; returns its key."""
    from tasks.adapters import read_snapshot

    after = await read_snapshot(root, node)
    key = _key(action, node)
    body = json.dumps({"action": action, "node": node, "parameters": parameters or {}, "before": before,
                       "after": after}, indent=2, default=str)
    await acreate_markdown_artifact(
        key=key,
        markdown=f"### {action} {node}\n\n```json\n{body}\n```\n",
        description=f"baton {action} {node}: before/after snapshot",
    )
    return key
