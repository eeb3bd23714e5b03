"""Topology commands: init, node add/rm, edge add/rm, contract set.

Every edit goes through :meth:`Project.editing`: under the project lock, the
user's file edited losslessly, validated, then written atomically.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from baton.cli.output import emit, json_option

__all__ = ["init", "node", "edge", "contract"]

_ROLES = ("service", "ingress", "egress")
_INIT_TEMPLATE = """\
# Baton circuit: the nodes of your topology, the edges between them and their contracts.
# Edit by hand or with `baton node add`, `baton edge add`, `baton contract set`; both keep your comments.
name: {name}
version: 2
nodes: []
edges: []
"""


def _node_json(node: Any) -> dict[str, Any]:
    return {
        "name": node.name,
        "host": node.host,
        "port": node.port,
        "management_port": node.management_port,
        "proxy_mode": str(node.proxy_mode),
        "role": str(node.role),
        "contract": node.contract,
    }


def _contract_reference(project: Any, spec: Path) -> str:
    """How baton.yaml should refer to a contract: relative to the project when inside it."""
    spec = spec.resolve()
    try:
        return str(spec.relative_to(project.root))
    except ValueError:
        return os.path.relpath(spec, project.root) if spec.drive == project.root.drive else str(spec)


def _check_contract(spec: Path) -> Any:
    from baton.contracts import load_contract

    return load_contract(spec, label=str(spec))


def _is_grpc_contract(mode: str, spec: Path) -> bool:
    """A grpc node's .proto or descriptor set (checked by compiling and loading it, not as OpenAPI)."""
    from baton_adapter.grpc_mock import DESCRIPTOR_SUFFIXES

    return mode == "grpc" and spec.suffix in (".proto", *DESCRIPTOR_SUFFIXES)


@click.command()
@click.argument("directory", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option("--name", help="Circuit name (default: the directory's name).")
@json_option
def init(directory: Path | None, name: str | None, as_json: bool) -> None:
    """Create baton.yaml and .baton/ in DIRECTORY (default: here)."""
    import re

    from baton.config import CONFIG_FILENAME
    from baton.errors import ProjectError, UsageError
    from baton.project import STATE_DIRNAME

    root = (directory or Path.cwd()).resolve()
    name = name or re.sub(r"[^A-Za-z0-9_.-]+", "-", root.name).strip("-") or "circuit"
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
        raise UsageError(f"circuit name must be letters, digits, '.', '_' or '-', found {name!r}; pass --name.")
    config = root / CONFIG_FILENAME
    if config.exists():
        raise ProjectError(f"{config} already exists; edit it, or remove it to start over.")
    if root.exists() and not root.is_dir():
        raise UsageError(f"{root} exists and is not a directory; pick another path.")
    root.mkdir(parents=True, exist_ok=True)
    state = root / STATE_DIRNAME
    state.mkdir(exist_ok=True)
    (state / ".gitignore").write_text("*\n")
    from baton.config import atomic_write_text

    atomic_write_text(config, _INIT_TEMPLATE.format(name=name))
    payload = {"name": name, "path": str(root), "config": str(config), "state_dir": str(state)}
    emit(as_json, payload, lambda c: c.print(f"Initialised circuit [bold]{name}[/] in {root}\n"
                                             f"Next: baton node add <name> [--port N] [--role ingress|service|egress]"))


@click.group()
def node() -> None:
    """Add or remove nodes."""


@node.command("add")
@click.argument("name")
@click.option("--port", type=click.IntRange(1024, 65535), help="Traffic port (default: first free in 9001-9999).")
@click.option("--mode", default="http", show_default=True,
              help="Proxy mode: http, tcp, grpc, protobuf, soap, or one an installed baton.protocols plugin adds.")
@click.option("--role", type=click.Choice(_ROLES), default="service", show_default=True)
@click.option("--contract", "contract_path", type=click.Path(dir_okay=False, path_type=Path),
              help="OpenAPI 3.x or JSON Schema file for the node.")
@click.option("--host", default="", help="Listen address of the adapter (default 127.0.0.1).")
@json_option
@click.pass_obj
def node_add(obj: Any, name: str, port: int | None, mode: str, role: str, contract_path: Path | None,
             host: str, as_json: bool) -> None:
    """Add node NAME to the circuit."""
    import re

    from baton.config import NODE_NAME_PATTERN, NodeRole
    from baton.config.edits import add_node
    from baton.errors import UsageError
    from baton.modes import check_mode

    if not re.fullmatch(NODE_NAME_PATTERN, name):
        raise UsageError(f"node names must match {NODE_NAME_PATTERN} (lower-case, start with a letter), found {name!r}.")
    refused = check_mode(name, mode)
    if refused:
        raise UsageError(refused)
    project = obj.project()
    reference = ""
    if contract_path is not None:
        if _is_grpc_contract(mode, contract_path):
            from baton.proto_contracts import grpc_methods

            grpc_methods(contract_path, label=str(contract_path))
        else:
            _check_contract(contract_path)
        reference = _contract_reference(project, contract_path)
    with project.editing() as doc:
        add_node(doc.data, name, port=port, mode=mode, role=NodeRole(role), contract=reference, host=host)
    added = project.load().node(name)
    emit(as_json, {"node": _node_json(added)}, lambda c: c.print(
        f"Added node [bold]{name}[/] ({added.role}, {added.proxy_mode}) on port {added.port}, "
        f"management port {added.management_port}"))


@node.command("rm")
@click.argument("name")
@json_option
@click.pass_obj
def node_rm(obj: Any, name: str, as_json: bool) -> None:
    """Remove node NAME and every edge touching it."""
    from baton.config.edits import remove_node

    project = obj.project()
    with project.editing() as doc:
        removed = remove_node(doc.data, name)
    payload = {"removed": name, "edges_removed": [{"source": s, "target": t} for s, t in removed]}
    suffix = f" and {len(removed)} edge{'s' if len(removed) != 1 else ''}" if removed else ""
    emit(as_json, payload, lambda c: c.print(f"Removed node [bold]{name}[/]{suffix}"))


@click.group()
def edge() -> None:
    """Add or remove edges (SOURCE calls TARGET)."""


@edge.command("add")
@click.argument("source")
@click.argument("target")
@click.option("--label", default="", help="Free-form label, e.g. depends-on.")
@json_option
@click.pass_obj
def edge_add(obj: Any, source: str, target: str, label: str, as_json: bool) -> None:
    """Connect SOURCE to TARGET."""
    from baton.config.edits import add_edge

    project = obj.project()
    with project.editing() as doc:
        add_edge(doc.data, source, target, label=label)
    payload = {"edge": {"source": source, "target": target, "label": label}}
    emit(as_json, payload, lambda c: c.print(f"Added edge [bold]{source}[/] -> [bold]{target}[/]"))


@edge.command("rm")
@click.argument("source")
@click.argument("target")
@json_option
@click.pass_obj
def edge_rm(obj: Any, source: str, target: str, as_json: bool) -> None:
    """Disconnect SOURCE from TARGET."""
    from baton.config.edits import remove_edge

    project = obj.project()
    with project.editing() as doc:
        remove_edge(doc.data, source, target)
    emit(as_json, {"removed": {"source": source, "target": target}},
         lambda c: c.print(f"Removed edge [bold]{source}[/] -> [bold]{target}[/]"))


@click.group()
def contract() -> None:
    """Attach contracts to nodes."""


@contract.command("set")
@click.argument("node_name", metavar="NODE")
@click.argument("spec", type=click.Path(dir_okay=False, path_type=Path))
@json_option
@click.pass_obj
def contract_set(obj: Any, node_name: str, spec: Path, as_json: bool) -> None:
    """Validate SPEC (OpenAPI 3.x or JSON Schema; a .proto or descriptor set for a grpc node) and attach it to
    NODE."""
    from baton.config.edits import set_contract

    project = obj.project()
    node = project.load().node(node_name)
    if node is not None and _is_grpc_contract(str(node.proxy_mode), spec):
        from baton.proto_contracts import grpc_methods

        methods = grpc_methods(spec, label=str(spec))
        reference = _contract_reference(project, spec)
        with project.editing() as doc:
            set_contract(doc.data, node_name, reference)
        emit(as_json, {"node": node_name, "contract": reference, "kind": "protobuf", "version": "",
                       "operations": methods},
             lambda c: c.print(f"Contract of [bold]{node_name}[/] set to {reference} ({len(methods)} gRPC methods)"))
        return
    parsed = _check_contract(spec)
    reference = _contract_reference(project, spec)
    with project.editing() as doc:
        set_contract(doc.data, node_name, reference)
    payload = {"node": node_name, "contract": reference, "kind": str(parsed.kind), "version": parsed.version,
               "operations": [f"{m} {p}" for m, p in parsed.operations()]}
    emit(as_json, payload, lambda c: c.print(f"Contract of [bold]{node_name}[/] set to {reference} ({parsed.summary})"))
