"""``baton image``: container images (the adapter image now; service images next)."""

from __future__ import annotations

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
