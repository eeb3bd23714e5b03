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
@click.option("--build", is_flag=True, help="Build every registered service's image first and slot it.")
@click.option("--offline", is_flag=True, help="With --build: build Python services on the offline base.")
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
    if "cloud" in result:
        deleted = result["cloud"]["deleted"]
        emit(as_json, result, lambda c: c.print(
            f"Torn down: {len(deleted)} Cloud Run services ({', '.join(deleted) or 'none'})"))
        return
    emit(as_json, result, lambda c: c.print(
        f"Torn down: {len(result['hosts_stopped'])} adapter hosts and {len(result['services_stopped'])} services"))


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
