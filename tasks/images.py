"""Image tasks: build the prebuilt adapter image."""

from __future__ import annotations

import asyncio
from typing import Any

from baton.images.engine import engine_client
from tasks.context import progress_lines, step

__all__ = ["build_adapter_image", "ensure_adapter_image", "build_service_image", "push_image"]


@step("build-adapter-image", retries=1, retry_delay_seconds=2)
async def build_adapter_image(offline: bool, base_image: str | None = None) -> dict[str, Any]:
    """Build (or find cached) the adapter image; each build step is logged to the run."""
    from baton.images.adapter import build_adapter_image as build

    progress = progress_lines()
    client = engine_client("start dockerd, or build on a machine that runs one")
    try:
        image = await asyncio.to_thread(build, client, offline=offline, base_image=base_image, progress=progress)
    finally:
        client.close()
    return image.to_json()


@step("ensure-adapter-image", retries=0)
async def ensure_adapter_image(offline: bool = False) -> dict[str, Any]:
    """Make the adapter image the docker provider runs exist: present, pulled (a published tag) or built."""
    from baton.images.adapter import ensure_adapter_image as ensure

    progress = progress_lines()
    client = engine_client("start dockerd, or build on a machine that runs one")
    try:
        return await asyncio.to_thread(ensure, client, offline=offline, progress=progress)
    finally:
        client.close()


@step("build-service-image", retries=0)
async def build_service_image(root: str, node: str, path: str, offline: bool,
                              base_image: str | None = None) -> dict[str, Any]:
    """Build one service's image from its directory and record it in .baton/images.json."""
    from pathlib import Path

    from baton.images.service import build_service_image as build
    from baton.images.service import record_image, repository_for
    from tasks.context import open_circuit

    circuit = open_circuit(root)
    progress = progress_lines()
    client = engine_client("start dockerd, or build on a machine that runs one")
    try:
        image = await asyncio.to_thread(build, client, Path(path), name=node,
                                        repository=repository_for(circuit.config.name, node), offline=offline,
                                        base_image=base_image, progress=progress)
    finally:
        client.close()
    record_image(circuit.state_dir, image)
    return image.to_json()


@step("push-image", retries=2, retry_delay_seconds=1)
async def push_image(tag: str, registry: str, target_tag: str | None = None) -> dict[str, Any]:
    """Tag ``tag`` into ``registry`` and push it; the engine's error is raised as one sentence."""
    from baton.errors import BatonError

    client = engine_client("start dockerd, or build on a machine that runs one")
    try:
        image = client.images.get(tag)
        repository = f"{registry.rstrip('/')}/{tag.split(':')[0]}"
        version = target_tag or tag.split(":")[1]
        image.tag(repository, version)
        last: dict[str, Any] = {}
        for line in await asyncio.to_thread(
                lambda: list(client.images.push(repository, tag=version, stream=True, decode=True))):
            last = line
            if "error" in line:
                raise BatonError(f"pushing {repository}:{version} failed: {line['error']}; is the registry running "
                                 "and reachable (an http registry must be on loopback or listed as insecure)?")
        return {"pushed": f"{repository}:{version}", "digest": (last.get("aux") or {}).get("Digest", "")}
    finally:
        client.close()
