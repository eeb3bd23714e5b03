"""``baton image``: container images (the adapter image now; service images next)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from baton.cli.output import emit, json_option
from baton.cli.runtime_cmd import run_flow_command

__all__ = ["image"]


@click.group()
def image() -> None:
    """Build container images."""


@image.command("adapter")
@click.option("--offline", is_flag=True,
              help="Build on a local Debian base (debootstrap) with host-built wheels: no image pulls.")
@click.option("--base-image", help="Base image (default python:3.11-slim, or the offline base with --offline).")
@json_option
@click.pass_obj
def image_adapter(obj: Any, offline: bool, base_image: str | None, as_json: bool) -> None:
    """Build the prebuilt adapter image, tagged with the version and a content digest."""
    _, result = run_flow_command(obj, "image-adapter", {"offline": offline, "base_image": base_image}, as_json)
    emit(as_json, result, lambda c: c.print(
        f"Built [bold]{result['digest_tag']}[/] (also {result['tag']}, baton-adapter:latest): "
        f"{result['size_mb']} MB on {result['base']} in {result['seconds']} s"))


def _service_dirs(project: Any, node: str | None, path: Path | None) -> list[tuple[str, Path]]:
    """(node, directory) pairs to build: --path, a registered service named --node, or every registered service."""
    from baton.errors import UsageError
    from baton.services import load_service

    config = project.load()
    if path is not None:
        name = node or path.resolve().name
        if config.node(name) is None:
            raise UsageError(f"no node named {name!r} in baton.yaml; pass --node to say which node {path} serves.")
        return [(name, path.resolve())]
    services = [load_service(project.resolve(d), label=d) for d in config.services]
    found = [(s.manifest.name, s.directory) for s in services if node is None or s.manifest.name == node]
    if not found:
        if node:
            raise UsageError(f"no registered service named {node!r}; pass --path DIR with its source directory.")
        raise UsageError("nothing to build: pass --node N --path DIR, or register services with "
                         "`baton service register DIR`.")
    return found


@image.command("build")
@click.option("--node", help="The node whose service to build (its registered manifest's directory).")
@click.option("--path", "path", type=click.Path(file_okay=False, path_type=Path), help="The service's source directory.")
@click.option("--offline", is_flag=True, help="Build on a local Debian base (Python: with host-built wheels).")
@click.option("--base-image", help="Override the template's base image.")
@json_option
@click.pass_obj
def image_build(obj: Any, node: str | None, path: Path | None, offline: bool, base_image: str | None,
                as_json: bool) -> None:
    """Detect the runtime, render the Dockerfile from dockerfiles/ (the service's own wins) and build."""
    project = obj.project()
    built = []
    for name, directory in _service_dirs(project, node, path):
        _, result = run_flow_command(obj, "image-build", {"node": name, "path": str(directory), "offline": offline,
                                                          "base_image": base_image}, as_json)
        built.append(result)

    def human(c: Any) -> None:
        for b in built:
            c.print(f"Built [bold]{b['tag']}[/] for {b['node_name']} ({b['runtime']}: {b['reason']}), "
                    f"{b['size_mb']} MB in {b['seconds']} s")

    emit(as_json, {"images": built}, human)


@image.command("list")
@json_option
@click.pass_obj
def image_list(obj: Any, as_json: bool) -> None:
    """List the images built for this circuit (.baton/images.json)."""
    from baton.cli.output import table
    from baton.images.service import read_images

    images = read_images(obj.project().state_dir)

    def human(c: Any) -> None:
        if not images:
            c.print("No images built yet: baton image build --node N --path DIR")
            return
        c.print(table("Images", ("node", "tag", "runtime", "size", "built"), [
            (i["node_name"], i["tag"], i["runtime"], f"{i['size_mb']} MB", i["built_at"][:19]) for i in images]))

    emit(as_json, {"images": images}, human)


@image.command("push")
@click.option("--node", help="Push the newest image of this node (default: every node's newest).")
@click.option("--tag", "target_tag", help="Tag to push as (default: the image's content digest).")
@click.option("--registry", required=True, help="Registry host[:port], e.g. 127.0.0.1:5000.")
@json_option
@click.pass_obj
def image_push(obj: Any, node: str | None, target_tag: str | None, registry: str, as_json: bool) -> None:
    """Push built images to a registry."""
    from baton.errors import UsageError
    from baton.images.service import read_images

    project = obj.project()
    newest: dict[str, dict[str, Any]] = {}
    for entry in read_images(project.state_dir):
        newest[entry["node_name"]] = entry
    chosen = [newest[node]] if node in newest else ([] if node else list(newest.values()))
    if not chosen:
        raise UsageError(f"no image built for {node or 'any node'}; run `baton image build` first.")
    pushed = []
    for entry in chosen:
        _, result = run_flow_command(obj, "image-push", {"node": entry["node_name"], "tag": entry["tag"],
                                                         "registry": registry, "target_tag": target_tag}, as_json)
        pushed.append(result)
    emit(as_json, {"pushed": pushed}, lambda c: [c.print(f"Pushed [bold]{p['pushed']}[/] {p['digest']}") for p in pushed])
