"""Where adapters and services run: a registry of providers behind one interface."""

from __future__ import annotations

from collections.abc import Callable

from baton.errors import UsageError
from providers.base import Provider

__all__ = ["Provider", "register_provider", "get_provider", "provider_names"]

_FACTORIES: dict[str, Callable[[], Provider]] = {}


def register_provider(name: str, factory: Callable[[], Provider]) -> None:
    """Make a provider available by name (users may register their own)."""
    _FACTORIES[name] = factory


def provider_names() -> list[str]:
    return sorted(_FACTORIES)


def get_provider(name: str) -> Provider:
    try:
        return _FACTORIES[name]()
    except KeyError:
        raise UsageError(f"unknown provider {name!r}; expected one of {', '.join(provider_names())}.") from None


def _local() -> Provider:
    from providers.local import LocalProvider

    return LocalProvider()


def _docker() -> Provider:
    from providers.docker import DockerProvider

    return DockerProvider()


def _cloudrun() -> Provider:
    from providers.cloudrun import CloudRunProvider

    return CloudRunProvider()


register_provider("local", _local)
register_provider("docker", _docker)
register_provider("cloudrun", _cloudrun)
register_provider("gcp", _cloudrun)  # the original Baton's spelling
