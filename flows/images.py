"""``baton image adapter``: build the prebuilt adapter image (online base or the offline path)."""

from __future__ import annotations

from typing import Any

from prefect import flow

from tasks.images import build_adapter_image

__all__ = ["image_adapter"]


@flow(name="image-adapter", flow_run_name="image-adapter-{circuit}")
async def image_adapter(root: str, circuit: str = "", offline: bool = False,
                        base_image: str | None = None) -> dict[str, Any]:
    return await build_adapter_image(offline, base_image)
