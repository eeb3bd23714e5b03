"""Building the prebuilt adapter image, tagged with the version and a content digest."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from baton.errors import BatonError
from baton.images.engine import build_image, image_available
from baton.images.offline import build_wheels, ensure_offline_base, source_digest

__all__ = ["ADAPTER_REPOSITORY", "AdapterImage", "adapter_image_name", "adapter_source", "build_adapter_image",
           "ensure_adapter_image", "published_adapter_image"]

ADAPTER_REPOSITORY = "baton-adapter"
IMAGE_ENV = "BATON_ADAPTER_IMAGE"  # the image adapter containers run (default baton-adapter:latest)
REGISTRY_ENV = "BATON_ADAPTER_REGISTRY"  # where published adapter images live; empty: never pull
PUBLISHED_REGISTRY = ""  # no registry publishes Baton's adapter image yet: set BATON_ADAPTER_REGISTRY to yours
Progress = Callable[[str], None]


def adapter_image_name() -> str:
    """The image the docker provider runs for adapters: ``$BATON_ADAPTER_IMAGE`` or ``baton-adapter:latest``."""
    return os.environ.get(IMAGE_ENV) or f"{ADAPTER_REPOSITORY}:latest"


def published_adapter_image() -> str | None:
    """The published adapter image of this version (``$BATON_ADAPTER_REGISTRY``), or None when pulling is off."""
    import baton_adapter

    registry = os.environ.get(REGISTRY_ENV, PUBLISHED_REGISTRY).strip().rstrip("/")
    return f"{registry}/{ADAPTER_REPOSITORY}:{baton_adapter.__version__}" if registry else None


def _split(image: str) -> tuple[str, str]:
    repository, _, tag = image.rpartition(":")
    if not repository or "/" in tag:
        return image, "latest"
    return repository, tag


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
                        progress: Progress = lambda _: None, name: str | None = None) -> AdapterImage:
    """Build (or find in the cache) the adapter image, also tagged ``name`` (default :func:`adapter_image_name`);
    raises with the build log's tail on failure."""
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
        repository, final = _split(name or adapter_image_name())
        tag = f"{repository}:{baton_adapter.__version__}"
        digest_tag = f"{tag}-{digest}"
        try:
            image = client.images.get(digest_tag)
            progress(f"{digest_tag} is up to date")
        except docker.errors.ImageNotFound:
            progress(f"building {digest_tag} on {base}")
            image = build_image(client, context, digest_tag, what="the adapter image",
                                build_args={"BASE_IMAGE": base}, progress=progress)
        image.tag(repository, tag.split(":")[1])
        image.tag(repository, final)
    return AdapterImage(tag, digest_tag, image.id, round(image.attrs["Size"] / 1e6, 1),
                        round(time.monotonic() - started, 2), base)


def ensure_adapter_image(client: Any, *, offline: bool = False, progress: Progress = lambda _: None) -> dict[str, Any]:
    """Make :func:`adapter_image_name` exist: present already, else the published tag when a registry answers,
    else built (on ``python:3.11-slim`` when it can be pulled, else on the offline base). ``offline`` skips pulls."""
    import docker.errors

    name = adapter_image_name()
    started = time.monotonic()
    try:
        client.images.get(name)
        return {"image": name, "action": "present", "seconds": 0.0}
    except docker.errors.ImageNotFound:
        pass
    published = None if offline else published_adapter_image()
    if published and image_available(client, published, progress):
        repository, tag = _split(name)
        client.images.get(published).tag(repository, tag)
        return {"image": name, "action": "pulled", "source": published,
                "seconds": round(time.monotonic() - started, 2)}
    online = not offline and image_available(client, "python:3.11-slim", progress)
    built = build_adapter_image(client, offline=not online, progress=progress, name=name)
    return {"image": name, "action": "built", "source": built.digest_tag, "base": built.base,
            "seconds": round(time.monotonic() - started, 2)}
