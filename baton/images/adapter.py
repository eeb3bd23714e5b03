"""Building the prebuilt adapter image, tagged with the version and a content digest."""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from baton.errors import BatonError
from baton.images.engine import build_image
from baton.images.offline import build_wheels, ensure_offline_base, source_digest

__all__ = ["ADAPTER_REPOSITORY", "AdapterImage", "adapter_source", "build_adapter_image"]

ADAPTER_REPOSITORY = "baton-adapter"
Progress = Callable[[str], None]


@dataclass(frozen=True)
class AdapterImage:
    tag: str
    digest_tag: str
    image_id: str
    size_mb: float
    seconds: float
    base: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def adapter_source() -> Path:
    """The adapter's source tree (with its Dockerfile), from the installed package."""
    import baton_adapter

    root = Path(baton_adapter.__file__).resolve().parent.parent
    if not (root / "Dockerfile").is_file():
        raise BatonError(f"no adapter Dockerfile next to {root}; build from a Baton checkout "
                         "(the adapter image is built from adapter_image/).")
    return root


def _copy_source(source: Path, context: Path) -> None:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build", "dist", "wheels")
    shutil.copytree(source, context, ignore=ignore)


def build_adapter_image(client: Any, *, offline: bool, base_image: str | None = None,
                        progress: Progress = lambda _: None) -> AdapterImage:
    """Build (or find in the cache) the adapter image; raises with the build log's tail on failure."""
    import docker.errors

    import baton_adapter

    started = time.monotonic()
    source = adapter_source()
    base = base_image or (ensure_offline_base(client, progress) if offline else "python:3.11-slim")
    with tempfile.TemporaryDirectory(prefix="baton-adapter-ctx-") as tmp:
        context = Path(tmp) / "context"
        _copy_source(source, context)
        wheels = context / "wheels"
        wheels.mkdir()
        if offline:
            for wheel in build_wheels(source, progress=progress).glob("*.whl"):
                shutil.copy2(wheel, wheels / wheel.name)
        # content digest: the adapter's source and the base (wheels follow from the source)
        digest = hashlib.sha256(f"{source_digest(source)}:{base}:{offline}".encode()).hexdigest()[:12]
        tag = f"{ADAPTER_REPOSITORY}:{baton_adapter.__version__}"
        digest_tag = f"{tag}-{digest}"
        try:
            image = client.images.get(digest_tag)
            progress(f"{digest_tag} is up to date")
        except docker.errors.ImageNotFound:
            progress(f"building {digest_tag} on {base}")
            image = build_image(client, context, digest_tag, what="the adapter image",
                                build_args={"BASE_IMAGE": base}, progress=progress)
        image.tag(ADAPTER_REPOSITORY, tag.split(":")[1])
        image.tag(ADAPTER_REPOSITORY, "latest")
    return AdapterImage(tag, digest_tag, image.id, round(image.attrs["Size"] / 1e6, 1),
                        round(time.monotonic() - started, 2), base)
