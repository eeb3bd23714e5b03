"""The one interface every provider implements: where adapter hosts and
slotted services run. Flows never know which provider they drive.

Crash safety: a provider records what it starts before starting it and keeps that record until it has
stopped it, so a command killed at any point leaves nothing unaccounted for (the local provider leases each
process, see :mod:`baton.leases`; the docker provider labels its containers)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from baton.config import NodeConfig
from baton.state import AdapterHost, ServiceSlot

__all__ = ["Provider"]


class Provider(Protocol):
    name: str

    def start_host(self, root: Path, state_dir: Path, host_id: str, adapter_config: Mapping[str, Any]) -> AdapterHost:
        """Start one adapter host serving ``adapter_config['nodes']``, recorded before it starts (``lease``);
        do not wait for readiness."""

    def stop_host(self, host: AdapterHost) -> bool:
        """Stop an adapter host, then drop its record; True when it had been running. Idempotent."""

    def host_alive(self, host: AdapterHost) -> bool: ...

    def host_log_tail(self, host: AdapterHost, lines: int = 5) -> str: ...

    def start_service(
        self, root: Path, state_dir: Path, node: NodeConfig, argv: Sequence[str], env: Mapping[str, str], port: int
    ) -> ServiceSlot:
        """Start a slotted service listening on ``port``, recorded before it starts (``lease``); do not wait
        for readiness."""

    def stop_service(self, slot: ServiceSlot) -> bool:
        """Stop a service and everything it started, then drop its record; True when it had been running.
        Idempotent."""

    def service_alive(self, slot: ServiceSlot) -> bool: ...

    def service_log_tail(self, state_dir: Path, node: str, slot: ServiceSlot, lines: int = 3) -> str:
        """The last lines this instance of the service printed, joined by `` | `` (never an earlier
        instance's); empty when it printed nothing."""

    def free_port(self) -> int:
        """A port nothing listens on, for a new service version."""

    def tls_names(self, root: Path, config: Any) -> dict[str, tuple[str, ...]]:
        """Per node, the names its adapter is reached by besides the node name (containers), for its certificate."""

    def trust_files(self, state_dir: Path) -> dict[str, str]:
        """``ca_file`` and ``trust_file`` as a service of this provider reads them (see baton.wiring.trust_env)."""

    def dependency_host(self, node: NodeConfig) -> str:
        """The host a service uses in ``BATON_<NODE>_URL`` to reach ``node``'s adapter."""
