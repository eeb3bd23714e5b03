"""One build on the Docker engine: progress for each step, and a failure as one sentence with the log's tail."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from baton.errors import BatonError

__all__ = ["engine_client", "build_image", "image_available"]


def engine_client(instead: str) -> Any:
    """A client of the Docker engine that answered a ping, or one sentence saying none answers and, from
    ``instead``, what to do about it."""
    try:
        import docker

        client = docker.from_env()
        client.ping()
    except Exception as exc:  # noqa: BLE001 - every way of not reaching the engine reads the same
        raise BatonError(f"no Docker engine answers ({exc}); {instead}.") from exc
    return client


def image_available(client: Any, image: str, progress: Callable[[str], None] = lambda _: None) -> bool:
    """Whether ``image`` is here, or could be pulled now (a registry that does not answer means no)."""
    import docker.errors

    try:
        client.images.get(image)
        return True
    except docker.errors.ImageNotFound:
        pass
    progress(f"pulling {image}")
    try:
        client.images.pull(image)
        return True
    except docker.errors.APIError as exc:
        progress(f"cannot pull {image} ({str(exc.explanation or exc).splitlines()[0][:120]})")
        return False


def build_image(client: Any, context: Path, tag: str, *, what: str, build_args: dict[str, str] | None = None,
                progress: Callable[[str], None] = lambda _: None) -> Any:
    """Build ``context`` as ``tag`` (never pulling) and return the image; never swallows a failure."""
    import docker.errors

    log: list[str] = []
    try:
        for chunk in client.api.build(path=str(context), tag=tag, buildargs=build_args or {}, rm=True, forcerm=True,
                                      decode=True, pull=False):
            line = (chunk.get("stream") or "").strip()
            if line:
                log.append(line)
                if line.startswith("Step "):
                    progress(line)
            if "error" in chunk:
                raise BatonError(f"the image build of {what} failed: {chunk['error'].strip()} "
                                 f"(last output: {' | '.join(log[-6:]) or 'none'}).")
    except docker.errors.APIError as exc:
        raise BatonError(f"the Docker engine refused the build of {what} ({exc.explanation}).") from exc
    return client.images.get(tag)
