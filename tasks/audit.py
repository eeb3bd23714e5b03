"""The audit record of a topology action: before/after snapshots on the flow run."""

from __future__ import annotations

import json
import re
from typing import Any

from prefect import task
from prefect.artifacts import create_markdown_artifact

__all__ = ["record_change"]


def _key(action: str, node: str) -> str:
    return re.sub(r"[^a-z0-9-]+", "-", f"{action}-{node}".lower()).strip("-")


@task(name="record-change")
def record_change(action: str, node: str, before: Any, after: Any, parameters: dict[str, Any] | None = None) -> str:
    """Attach what changed (before and after) to the run as an artifact; returns its key."""
    key = _key(action, node)
    body = json.dumps({"action": action, "node": node, "parameters": parameters or {}, "before": before,
                       "after": after}, indent=2, default=str)
    create_markdown_artifact(
        key=key,
        markdown=f"### {action} {node}\n\n```json\n{body}\n```\n",
        description=f"baton {action} {node}: before/after snapshot",
    )
    return key
