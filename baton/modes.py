"""Which proxy modes a node may name: the adapter's built-in ones, and those that installed distributions add
to it through the ``baton.protocols`` entry-point group (read here without loading any plugin)."""

from __future__ import annotations

from importlib.metadata import entry_points

from baton.config.topology import BUILTIN_MODES

__all__ = ["ENTRY_POINT_GROUP", "check_mode", "offered_modes"]

ENTRY_POINT_GROUP = "baton.protocols"  # the adapter's group (baton_adapter.protocols.ENTRY_POINT_GROUP)


def offered_modes() -> dict[str, str]:
    """Every mode an adapter in this Python environment can serve, with who offers it ("built in" or the
    distribution's name)."""
    offered = {mode: "built in" for mode in BUILTIN_MODES}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name not in offered:
            offered[ep.name] = ep.dist.metadata["Name"] if ep.dist is not None else "(unknown distribution)"
    return offered


def check_mode(node: str, mode: str, offered: dict[str, str] | None = None) -> str | None:
    """None when ``mode`` can be served here, else the sentence saying why node ``node`` cannot start."""
    offered = offered_modes() if offered is None else offered
    if mode in offered:
        return None
    return (f"node {node} has proxy_mode {mode!r}, which is neither built in nor offered by an installed "
            f"distribution ({ENTRY_POINT_GROUP!r} entry points); expected one of {', '.join(sorted(offered))}: "
            f"install the plugin that adds {mode!r} or change the node's proxy_mode.")
