"""``baton image adapter``: build the prebuilt adapter image (online base or the offline path)."""

from __future__ import annotations

from typing import Any

from prefect import flow

from tasks.images import build_adapter_image, build_service_image, push_image

__all__ = ["image_adapter", "image_build", "image_push"]


@flow(name="image-adapter", flow_run_name="image-adapter-{circuit}")
async def image_adapter(root: str, circuit: str = "", offline: bool = False,
                        base_image: str | None = None) -> dict[str, Any]:
    return await build_adapter_image(offline, base_image)


@flow(name="image-build", flow_run_name="image-build-{node}")
async def image_build(root: str, node: str, path: str, offline: bool = False,
                      base_image: str | None = None) -> dict[str, Any]:
    """Build a service image for ``node`` from ``path``."""
    return await build_service_image(root, node, path, offline, base_image)


@flow(name="image-push", flow_run_name="image-push-{node}")
async def image_push(root: str, node: str, tag: str, registry: str, target_tag: str | None = None) -> dict[str, Any]:
    """Push a built image to a registry."""
    return await push_image(tag, registry, target_tag)
