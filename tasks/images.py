"""Image tasks: build the prebuilt adapter image."""

from __future__ import annotations

import asyncio
from typing import Any

from tasks.context import step

__all__ = ["build_adapter_image"]


@step("build-adapter-image", retries=1, retry_delay_seconds=2)
async def build_adapter_image(offline: bool, base_image: str | None = None) -> dict[str, Any]:
    """Build (or find cached) the adapter image; each build step is logged to the run."""
    import docker

    from baton.images.adapter import build_adapter_image as build
    from prefect import get_run_logger

    logger = get_run_logger()
    client = docker.from_env()
    try:
        image = await asyncio.to_thread(build, client, offline=offline, base_image=base_image, progress=logger.info)
    finally:
        client.close()
    return image.to_json()
