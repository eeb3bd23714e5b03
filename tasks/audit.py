"""The audit record of a topology action: before/after snapshots on the flow run."""

from __future__ import annotations

import json
import re
from typing import Any

from prefect.artifacts import acreate_markdown_artifact

from tasks.context import step

__all__ = ["record_change"]


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
