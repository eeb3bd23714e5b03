"""Edits of a ``baton.yaml`` round-trip tree.

Each function changes only what it names and leaves every other key, comment
and section of the user's file as it was. Validation of the result is the
caller's (see :meth:`baton.project.Project.editing`).
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterable
from typing import Any

from ruamel.yaml.comments import CommentedMap, CommentedSeq

from baton.config.topology import PORT_MAX, PORT_MIN, NodeRole, ProxyMode, derive_management_port
from baton.errors import UsageError

__all__ = [
    "AUTO_PORT_RANGE",
    "used_ports",
    "pick_free_port",
    "port_is_bindable",
    "add_node",
    "remove_node",
    "add_edge",
    "remove_edge",
    "set_contract",
    "add_service_dir",
    "ensure_list",
]

AUTO_PORT_RANGE = range(9001, 10000)
_SECTION_ORDER = ("name", "version", "nodes", "edges")


def ensure_list(data: CommentedMap, key: str) -> CommentedSeq:
    """The list under ``key``, created in its conventional place when absent."""
    value = data.get(key)
    if value is None:
        value = CommentedSeq()
        position = _insert_position(data, key)
        data.insert(position, key, value)
    elif not isinstance(value, list):
        raise UsageError(f"baton.yaml `{key}` must be a list, found {type(value).__name__}; fix the file first.")
    if not value and getattr(value, "fa", None) is not None and value.fa.flow_style():
        value.fa.set_block_style()  # `nodes: []` becomes a block list once it has items
    return value


def _insert_position(data: CommentedMap, key: str) -> int:
    keys = list(data.keys())
    if key not in _SECTION_ORDER:
        return len(keys)
    before = _SECTION_ORDER[: _SECTION_ORDER.index(key)]
    position = 0
    for index, existing in enumerate(keys):
        if existing in before:
            position = index + 1
    return position


def _nodes(data: CommentedMap) -> list[Any]:
    nodes = data.get("nodes") or []
    return [n for n in nodes if isinstance(n, dict)]


def _names(data: CommentedMap) -> list[str]:
    return [str(n.get("name")) for n in _nodes(data)]


def used_ports(data: CommentedMap) -> set[int]:
    """Every traffic and management port the file already assigns."""
    ports: set[int] = set()
    for node in _nodes(data):
        port = node.get("port")
        if isinstance(port, int):
            ports.add(int(port))
            management = node.get("management_port") or 0
            if management:
                ports.add(int(management))
            elif PORT_MIN <= port <= PORT_MAX:
                ports.add(derive_management_port(int(port)))
    return ports


def port_is_bindable(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def pick_free_port(
    data: CommentedMap,
    candidates: Iterable[int] = AUTO_PORT_RANGE,
    bindable: Callable[[int], bool] = port_is_bindable,
) -> int:
    """The first port in 9001-9999 that the circuit does not use, whose
    management port is also unused, and that nothing on this machine holds."""
    taken = used_ports(data)
    for port in candidates:
        management = derive_management_port(port)
        if port in taken or management in taken:
            continue
        if bindable(port) and bindable(management):
            return port
    raise UsageError("no free port left in 9001-9999 for a new node; pass --port explicitly.")


def add_node(
    data: CommentedMap,
    name: str,
    *,
    port: int | None,
    mode: str = "http",
    role: NodeRole = NodeRole.SERVICE,
    contract: str = "",
    host: str = "",
) -> CommentedMap:
    """Append a node; the port is auto-assigned when ``port`` is None."""
    if name in _names(data):
        raise UsageError(f"node {name!r} already exists; pick another name or `baton node rm {name}` first.")
    nodes = ensure_list(data, "nodes")
    if port is None:
        port = pick_free_port(data)
    elif port in used_ports(data):
        raise UsageError(f"port {port} is already used by this circuit; pick another with --port or omit it.")
    node = CommentedMap()
    node["name"] = name
    if host:
        node["host"] = host
    node["port"] = port
    if str(mode) != ProxyMode.HTTP:
        node["proxy_mode"] = str(mode)
    if role is not NodeRole.SERVICE:
        node["role"] = str(role)
    if contract:
        node["contract"] = contract
    nodes.append(node)
    return node


def remove_node(data: CommentedMap, name: str) -> list[tuple[str, str]]:
    """Remove a node, its edges and its routing; return the removed edges."""
    nodes = data.get("nodes") or []
    index = next((i for i, n in enumerate(nodes) if isinstance(n, dict) and n.get("name") == name), None)
    if index is None:
        raise UsageError(f"no node named {name!r}; known nodes: {', '.join(_names(data)) or 'none'}.")
    del nodes[index]
    removed: list[tuple[str, str]] = []
    edges = data.get("edges") or []
    for i in reversed(range(len(edges))):
        edge = edges[i]
        if isinstance(edge, dict) and name in (edge.get("source"), edge.get("target")):
            removed.append((str(edge.get("source")), str(edge.get("target"))))
            del edges[i]
    routing = data.get("routing")
    if isinstance(routing, dict) and name in routing:
        del routing[name]
    return list(reversed(removed))


def _require_node(data: CommentedMap, name: str) -> dict[str, Any]:
    for node in _nodes(data):
        if node.get("name") == name:
            return node
    raise UsageError(f"no node named {name!r}; known nodes: {', '.join(_names(data)) or 'none'}.")


def add_edge(data: CommentedMap, source: str, target: str, *, label: str = "") -> CommentedMap:
    if source == target:
        raise UsageError(f"an edge cannot connect {source!r} to itself; name two different nodes.")
    src = _require_node(data, source)
    _require_node(data, target)
    if src.get("role") == NodeRole.EGRESS.value:
        raise UsageError(f"egress node {source!r} cannot be an edge source; egress nodes are only called.")
    for edge in data.get("edges") or []:
        if isinstance(edge, dict) and edge.get("source") == source and edge.get("target") == target:
            raise UsageError(f"edge {source} -> {target} already exists.")
    edges = ensure_list(data, "edges")
    edge = CommentedMap()
    edge["source"] = source
    edge["target"] = target
    if label:
        edge["label"] = label
    edges.append(edge)
    return edge


def remove_edge(data: CommentedMap, source: str, target: str) -> None:
    edges = data.get("edges") or []
    for i, edge in enumerate(edges):
        if isinstance(edge, dict) and edge.get("source") == source and edge.get("target") == target:
            del edges[i]
            return
    raise UsageError(f"no edge {source} -> {target}; `baton status` lists the edges.")


def set_contract(data: CommentedMap, node_name: str, contract: str) -> None:
    node = _require_node(data, node_name)
    node["contract"] = contract


def add_service_dir(data: CommentedMap, directory: str) -> bool:
    """Record a service directory under ``services``; False when already there."""
    services = ensure_list(data, "services")
    if directory in [str(s) for s in services]:
        return False
    services.append(directory)
    return True
