"""``baton deploy``, ``baton teardown``, ``baton deploy-status``: the circuit on a provider, as flows."""

from __future__ import annotations

from typing import Any

import click

from baton.cli.output import emit, json_option, table
from baton.cli.runtime_cmd import run_flow_command

__all__ = ["deploy", "teardown", "deploy_status"]


@click.command()
@click.option("--provider", default="local", show_default=True,
              help="Where to run: local, docker or cloudrun (gcp is the same).")
@click.option("--build", is_flag=True, help="Build what is missing first (on docker the adapter image: pulled when "
              "a registry answers, else built) and every registered service's image, and slot each.")
@click.option("--offline", is_flag=True, help="With --build: pull nothing; build on the offline (debootstrap) base.")
@click.option("--timeout", "timeout_s", type=float, default=60.0, show_default=True)
@click.option("--project", default="", help="cloudrun: the Google Cloud project (default: deploy.project).")
@click.option("--region", default="", help="cloudrun: the region (default: deploy.region).")
@click.option("--public-ingress", is_flag=True, help="cloudrun: let anyone invoke the ingress node (allUsers).")
@json_option
@click.pass_obj
def deploy(obj: Any, provider: str, build: bool, offline: bool, timeout_s: float, project: str, region: str,
           public_ingress: bool, as_json: bool) -> None:
    """Deploy the circuit: adapters for every node on PROVIDER (mocks where nothing is slotted)."""
    from providers import get_provider

    provider = get_provider(provider).name  # unknown: a usage error before anything starts; gcp -> cloudrun
    if provider == "local":
        from baton.cli.conductor_launch import ensure_conductor

        ensure_conductor(obj.project())
    params: dict[str, Any] = {"provider": provider, "build": build, "offline": offline, "timeout_s": timeout_s}
    if provider == "cloudrun":
        params.update(project=project, region=region, public_ingress=public_ingress)
    _, result = run_flow_command(obj, "deploy", params, as_json)

    def human(c: Any) -> None:
        booted = result["booted"]
        c.print(f"Deployed [bold]{result['circuit']}[/] on {provider}: {len(booted['ready'])} nodes answering")
        adapter = result.get("adapter_image")
        if adapter and adapter["action"] != "present":
            c.print(f"  {adapter['action']} the adapter image {adapter['image']} ({adapter.get('source', '')}) "
                    f"in {adapter['seconds']} s")
        if result.get("nothing_to_build"):
            c.print("  nothing to build: " + ("the adapter image is present and " if adapter else "")
                    + "no service is registered (`baton service register DIR`)")
        for image in result["images"]:
            c.print(f"  built {image['tag']} for {image['node_name']}")
        for slotted in result["slotted"]:
            c.print(f"  slotted {slotted['command']} into {slotted['node']}")
        cloud = result.get("cloud")
        if cloud:
            c.print(f"  project {cloud['project']}, region {cloud['region']}, invoker {cloud['account']}; "
                    f"worst case ${cloud['cost']['monthly_usd']:,.2f} a month; {cloud['seconds']} s")
            for name, node in cloud["nodes"].items():
                c.print(f"  {name:<16} {node['url']}  ({node['revision']}{', public' if node.get('public') else ''})")

    emit(as_json, result, human)


@click.command()
@json_option
@click.pass_obj
def teardown(obj: Any, as_json: bool) -> None:
    """Remove everything the deployment created (containers, networks, processes)."""
    _, result = run_flow_command(obj, "teardown", {}, as_json)

    def human(c: Any) -> None:
        removed = {kind: names for kind, names in (result.get("removed") or {}).items()}
        if removed:  # a provider with resources of its own: what it held, by kind
            c.print(f"Torn down on {result['provider']}: removed " + ", ".join(
                _count(len(names), kind) for kind, names in removed.items()))
            for kind, names in removed.items():
                for name in names:
                    c.print(f"  {kind[:-1]} {name}")
        else:
            c.print(f"Torn down: {_count(len(result['hosts_stopped']), 'adapter hosts')} and "
                    f"{_count(len(result['services_stopped']), 'services')} stopped")
        for kind, names in (result.get("left") or {}).items():
            c.print(f"[yellow]left:[/] {kind} {', '.join(names)} (still in use; remove them by hand)")

    emit(as_json, result, human)


def _count(n: int, plural: str) -> str:
    return f"{n} {plural if n != 1 else plural[:-1]}"


@click.command("deploy-status")
@json_option
@click.pass_obj
def deploy_status(obj: Any, as_json: bool) -> None:
    """Where the circuit runs and how each node is doing."""
    _, result = run_flow_command(obj, "deploy-status", {}, as_json)

    def human(c: Any) -> None:
        c.print(f"Provider: {result['provider']} ({'running' if result['running'] else 'not running'})")
        c.print(table("Nodes", ("node", "state", "health", "detail"), [
            (name, n["state"], n["health"], n["detail"]) for name, n in result["nodes"].items()]))

    emit(as_json, result, human)
