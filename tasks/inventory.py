"""What a provider holds for the project (containers, networks, volumes), so that teardown can say what it
removed and leave nothing behind. The provider is named explicitly: after ``down`` state no longer says it."""

from __future__ import annotations

import asyncio
from typing import Any

from tasks.context import open_circuit, step

__all__ = ["current_provider", "provider_inventory", "sweep_leftovers"]


def current_provider(root: str) -> str:
    """The provider the circuit runs on (or was last deployed to)."""
    return open_circuit(root).state().provider or "local"


def _provider(name: str) -> Any:
    from providers import get_provider

    return get_provider(name)


@step("provider-inventory", retries=1, retry_delay_seconds=1)
async def provider_inventory(root: str, provider: str) -> dict[str, list[str]]:
    """The provider's own resources of this project; empty for providers that run processes only."""
    inventory = getattr(_provider(provider), "inventory", None)
    return await asyncio.to_thread(inventory, open_circuit(root).root) if inventory else {}


@step("sweep-leftovers", retries=1, retry_delay_seconds=1)
async def sweep_leftovers(root: str, provider: str) -> bool:
    """Remove what the provider still holds of this project after its hosts and services were stopped."""
    sweep = getattr(_provider(provider), "sweep", None)
    if sweep:
        await asyncio.to_thread(sweep, open_circuit(root).root)
    return bool(sweep)
