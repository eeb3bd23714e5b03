"""Service-first workflow: ``service register/list/derive`` and ``check``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from baton.cli.output import emit, json_option, table

__all__ = ["service", "check"]


def _registered(project: Any, config: Any) -> list[Any]:
    from baton.services import load_service

    return [load_service(project.resolve(d), label=d) for d in config.services]


@click.group()
def service() -> None:
    """Register service manifests (baton-service.yaml) and derive the circuit from them."""


@service.command("register")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@json_option
@click.pass_obj
def service_register(obj: Any, path: Path, as_json: bool) -> None:
    """Register the service whose baton-service.yaml is in PATH."""
    from baton.config.edits import add_service_dir
    from baton.services import load_service

    project = obj.project()
    registered = load_service(path)
    directory = registered.directory.resolve()
    try:
        reference = str(directory.relative_to(project.root)) or "."
    except ValueError:
        reference = os.path.relpath(directory, project.root)
    with project.editing() as doc:
        added = add_service_dir(doc.data, reference)
    payload = {"service": registered.manifest.name, "directory": reference, "added": added}
    emit(as_json, payload, lambda c: c.print(
        f"Registered service [bold]{registered.manifest.name}[/] from {reference}" if added
        else f"Service [bold]{registered.manifest.name}[/] ({reference}) was already registered"))


@service.command("list")
@json_option
@click.pass_obj
def service_list(obj: Any, as_json: bool) -> None:
    """List registered services."""
    project = obj.project()
    services = _registered(project, project.load())
    rows = [{
        "name": s.manifest.name,
        "directory": project.label(s.directory),
        "version": s.manifest.version,
        "role": str(s.manifest.role),
        "port": s.manifest.port,
        "api_spec": s.manifest.api_spec,
        "dependencies": [{"name": d.name, "required": d.required, "expected_api": d.expected_api}
                         for d in s.manifest.dependencies],
    } for s in services]

    def human(c: Any) -> None:
        if not rows:
            c.print("No services registered: baton service register <dir>")
            return
        c.print(table("Services", ("name", "directory", "version", "role", "api_spec", "depends on"), [
            (r["name"], r["directory"], r["version"], r["role"], r["api_spec"] or "-",
             ", ".join(d["name"] + ("" if d["required"] else "?") for d in r["dependencies"]) or "-")
            for r in rows
        ]))

    emit(as_json, {"services": rows}, human)


@service.command("derive")
@click.option("--save", is_flag=True, help="Add the derived nodes and edges to baton.yaml.")
@json_option
@click.pass_obj
def service_derive(obj: Any, save: bool, as_json: bool) -> None:
    """Derive nodes and edges from the registered manifests."""
    import contextlib

    from baton.config.edits import add_edge, add_node, used_ports
    from baton.config import NodeRole
    from baton.services import derive_circuit

    project = obj.project()
    added_nodes: list[str] = []
    added_edges: list[str] = []
    with project.editing() if save else contextlib.nullcontext(None) as doc:
        config = project.load() if doc is None else None
        if doc is not None:
            from baton.config import CircuitConfig, validate_document

            config = validate_document(doc, CircuitConfig, label="baton.yaml")
        services = _registered(project, config)
        if not services:
            from baton.errors import UsageError

            raise UsageError("no services are registered; run `baton service register <dir>` first.")
        existing = {n.name for n in config.nodes}
        taken = {p for n in config.nodes for p in (n.port, n.management_port)}
        derived = derive_circuit(services, root=project.root, taken_ports=taken)
        if doc is not None:
            for n in derived.nodes:
                if n.name not in existing:
                    port = n.port if n.port not in used_ports(doc.data) else None
                    add_node(doc.data, n.name, port=port, mode=n.proxy_mode, role=NodeRole(n.role),
                             contract=n.contract)
                    added_nodes.append(n.name)
            known = {(e.source, e.target) for e in config.edges}
            for e in derived.edges:
                if (e.source, e.target) not in known:
                    add_edge(doc.data, e.source, e.target, label=e.label)
                    added_edges.append(f"{e.source} -> {e.target}")
    payload = {
        "nodes": [{"name": n.name, "port": n.port, "role": str(n.role), "proxy_mode": n.proxy_mode,
                   "contract": n.contract} for n in derived.nodes],
        "edges": [{"source": e.source, "target": e.target, "label": e.label} for e in derived.edges],
        "skipped_optional": derived.skipped,
        "saved": save,
        "added_nodes": added_nodes,
        "added_edges": added_edges,
    }

    def human(c: Any) -> None:
        c.print(table("Derived nodes", ("name", "role", "mode", "port", "contract"),
                      [(n["name"], n["role"], n["proxy_mode"], n["port"], n["contract"] or "-") for n in payload["nodes"]]))
        if payload["edges"]:
            c.print(table("Derived edges", ("consumer", "provider", "label"),
                          [(e["source"], e["target"], e["label"]) for e in payload["edges"]]))
        for skipped in derived.skipped:
            c.print(f"[yellow]Skipped optional dependency[/] {skipped} (no manifest registered)")
        if save:
            c.print(f"Saved to baton.yaml: {len(added_nodes)} nodes and {len(added_edges)} edges added")
        else:
            c.print("Dry view: add --save to write these into baton.yaml")

    emit(as_json, payload, human)


@click.command()
@click.option("--service", "only", help="Check only this consumer service.")
@json_option
@click.pass_obj
def check(obj: Any, only: str | None, as_json: bool) -> None:
    """Static API compatibility: each consumer's expected_api against its provider's contract."""
    from baton.compat import Severity, check_compatibility
    from baton.contracts import load_contract
    from baton.errors import UsageError

    project = obj.project()
    config = project.load()
    services = _registered(project, config)
    by_name = {s.manifest.name: s for s in services}
    if only and only not in by_name:
        raise UsageError(f"no registered service named {only!r}; registered: {', '.join(by_name) or 'none'}.")
    findings, checked, skipped = [], [], []
    for consumer in services:
        if only and consumer.manifest.name != only:
            continue
        for dep in consumer.manifest.dependencies:
            pair = f"{consumer.manifest.name} -> {dep.name}"
            if not dep.expected_api:
                skipped.append(f"{pair}: no expected_api declared")
                continue
            provider_spec = None
            if dep.name in by_name and by_name[dep.name].manifest.api_spec:
                provider_spec = by_name[dep.name].path_of(by_name[dep.name].manifest.api_spec)
            elif config.node(dep.name) is not None and config.node(dep.name).spec_path:
                provider_spec = project.resolve(config.node(dep.name).spec_path)
            if provider_spec is None:
                skipped.append(f"{pair}: the provider has no contract")
                continue
            expected = load_contract(consumer.path_of(dep.expected_api), label=project.label(consumer.path_of(dep.expected_api)))
            provided = load_contract(provider_spec, label=project.label(provider_spec))
            findings += check_compatibility(expected.resolved(), provided.resolved(),
                                            consumer=consumer.manifest.name, provider=dep.name)
            checked.append(pair)
    errors = [f for f in findings if f.severity is Severity.ERROR]
    payload = {"ok": not errors, "checked": checked, "skipped": skipped, "findings": [f.to_json() for f in findings]}

    def human(c: Any) -> None:
        if findings:
            c.print(table("Compatibility findings", ("severity", "consumer -> provider", "operation", "where", "problem"), [
                (f.severity, f"{f.consumer} -> {f.provider}", f.operation, f.location, f.message) for f in findings
            ]))
        for s in skipped:
            c.print(f"[dim]Skipped {s}[/]")
        verdict = "[green]compatible[/]" if not errors else f"[red]{len(errors)} incompatibilities[/]"
        c.print(f"Checked {len(checked)} dependenc{'y' if len(checked) == 1 else 'ies'}: {verdict}")

    emit(as_json, payload, human)
    if errors:
        raise click.exceptions.Exit(1)
