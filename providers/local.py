"""The local provider: adapter hosts and services as process groups on this machine.

One adapter process hosts every node of ``up`` (one event loop; 100 nodes
listen in well under a second and share ~40 MB, where 100 Python processes
would cost seconds and gigabytes); nodes added later get a host of their own.
Services run under ``baton.logpump`` so their output lands in
``.baton/service_logs.jsonl`` with a severity.

Every process is leased (see :mod:`baton.leases`): the lease is written before the spawn, handed to the
process (``BATON_LEASE``, ``--lease``: it stops itself once the lease is gone), completed with its pid right
after, and released only once the process has stopped.

Adapter hosts get the management token in the variable their config names (see
:func:`baton.control.control_token`). A service gets exactly its explicit environment
(:func:`baton.wiring.service_environment`): the log pump runs it through ``env -i``, so neither the pump's
lease nor anything else of Baton's environment reaches it.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from baton import leases
from baton.config import NodeConfig
from baton.config.document import atomic_write_text
from baton.control import control_token, token_env
from baton.errors import BatonError, ConfigError
from baton.leases import LEASE_ENV
from baton.logpump import LEASE_CHECK_ENV
from baton.processes import ProcessRecord, is_running, spawn, stop_group
from baton.state import AdapterHost, ProcessInfo, ServiceSlot, now_iso
from baton.wiring import base_env, service_environment

__all__ = ["LocalProvider", "check_startable"]

TAIL_WINDOW_BYTES = 256 * 1024  # how much of the end of the service log a failed start's tail reads


def _info(record: ProcessRecord) -> ProcessInfo:
    return ProcessInfo(pid=record.pid, pgid=record.pgid, start_ticks=record.start_ticks, argv=list(record.argv))


def _record(info: ProcessInfo) -> ProcessRecord:
    return ProcessRecord(info.pid, info.pgid, info.start_ticks, tuple(info.argv))


def _spawn_leased(lease: leases.Lease, argv: Sequence[str], *, env: Mapping[str, str], cwd: Path,
                  stdout: Path | None = None) -> ProcessRecord:
    """Spawn the process of ``lease`` (written already); a spawn that fails releases it."""
    try:
        return spawn(argv, env={**env, LEASE_ENV: str(lease.path)}, cwd=cwd, stdout=stdout)
    except BaseException:
        leases.release(lease.path)
        raise


def _env_binary() -> str:
    return shutil.which("env", path=os.defpath) or "/usr/bin/env"


def exactly(env: Mapping[str, str], argv: Sequence[str]) -> list[str]:
    """``argv`` run with ``env`` as its whole environment (``env -i``; the variables are no secret, they are
    the service's own)."""
    return [_env_binary(), "-i", "--", *(f"{k}={v}" for k, v in env.items()), *argv]


def pump_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The log pump's own environment: the base, what it reads (its lease check interval) and what lets it
    import Baton; no token, nothing of Prefect's (a service can read its parent's environment)."""
    keep = (LEASE_CHECK_ENV, "PYTHONPATH")
    return {**base_env(environ), **{k: environ[k] for k in keep if k in environ}}


def taint_arguments(root: Path, state_dir: Path) -> list[str]:
    """With taint analysis on, the log pump scans the service's output for the active canaries (a project whose
    baton.yaml cannot be read has it off)."""
    from baton.taint import CANARIES_FILE, SIGHTINGS_FILE

    try:
        if not _config(root).taint.enabled:
            return []
    except BatonError:
        return []
    return ["--taint-file", str(state_dir / CANARIES_FILE), "--sightings-file", str(state_dir / SIGHTINGS_FILE)]


def check_startable(argv: Sequence[str], env: Mapping[str, str], cwd: Path) -> None:
    """Refuse a command the OS could not start, with its reason, before anything is spawned (the service
    runs under the log pump and ``env -i``, where the reason would only reach its log)."""
    program = argv[0] if argv else ""
    if not program:
        raise BatonError("cannot start the service: its command is empty; give the program to run.")
    if "/" in program:
        path = cwd / program
        if not path.exists():
            raise BatonError(f"cannot start {program!r}: not found (no such file, relative to {cwd}); "
                             "check the path.")
        if path.is_dir() or not os.access(path, os.X_OK):
            what = "is a directory" if path.is_dir() else "permission denied (the file is not executable)"
            raise BatonError(f"cannot start {program!r}: {what}; "
                             f"{'name a program' if path.is_dir() else f'run chmod +x {program} or name its interpreter'}.")
        return
    search = env.get("PATH", os.defpath)
    if shutil.which(program, path=search) is None:
        found = [d for d in search.split(os.pathsep) if d and os.path.exists(os.path.join(d, program))]
        if found:
            raise BatonError(f"cannot start {program!r}: permission denied (not executable in {found[0]}); "
                             "make it executable or name its interpreter.")
        raise BatonError(f"cannot start {program!r}: not found on the service's PATH ({search}); "
                         "install it, give its full path, or set PATH in the node's env.")


def _config(root: Path) -> Any:
    from baton.project import Project

    return Project.at(root).load()


def _check_modes(adapter_config: Mapping[str, Any]) -> None:
    """Refuse, before anything starts, a node whose mode no adapter in this environment can serve."""
    from baton.modes import check_mode, offered_modes

    offered = offered_modes()
    for entry in adapter_config["nodes"]:
        refused = check_mode(entry["name"], entry.get("mode", "http"), offered)
        if refused:
            raise ConfigError(refused)


class LocalProvider:
    name = "local"

    def start_host(self, root: Path, state_dir: Path, host_id: str, adapter_config: Mapping[str, Any]) -> AdapterHost:
        _check_modes(adapter_config)
        adapters = state_dir / "adapters"
        adapters.mkdir(parents=True, exist_ok=True)
        config_file = adapters / f"{host_id}.json"
        # service events stay in the adapters' rings, where the conductor's pipeline reads them on every provider
        # (into service_events.jsonl): none goes into events.jsonl, which holds Baton's own decisions
        written = {k: v for k, v in adapter_config.items() if k != "events_file"}
        atomic_write_text(config_file, json.dumps(written, indent=2))
        argv = [sys.executable, "-m", "baton_adapter", "--config", str(config_file)]
        config = _config(root)
        env = {**os.environ, token_env(config): control_token(config, state_dir, create=True) or ""}
        lease = leases.create(state_dir, leases.ADAPTER_HOST, host_id=host_id, argv=argv)
        record = _spawn_leased(lease, [*argv, "--lease", str(lease.path)], env=env, cwd=root,
                               stdout=adapters / f"{host_id}.log")
        host = AdapterHost(host_id=host_id, nodes=[n["name"] for n in adapter_config["nodes"]],
                           config_file=str(config_file), process=_info(record), started_at=now_iso(),
                           lease=str(lease.path))
        leases.attach(lease, record, host.model_dump())
        return host

    def stop_host(self, host: AdapterHost) -> bool:
        stopped = host.process is not None and stop_group(_record(host.process), timeout=15)
        if host.lease:
            leases.release(host.lease)
        return stopped

    def host_alive(self, host: AdapterHost) -> bool:
        return host.process is not None and is_running(_record(host.process))

    def host_log_tail(self, host: AdapterHost, lines: int = 5) -> str:
        log = Path(host.config_file).with_suffix(".log")
        try:
            return " | ".join(log.read_text(errors="replace").strip().splitlines()[-lines:])
        except OSError:
            return ""

    def start_service(
        self, root: Path, state_dir: Path, node: NodeConfig, argv: Sequence[str], env: Mapping[str, str], port: int
    ) -> ServiceSlot:
        environment = service_environment(os.environ, env)
        check_startable(argv, environment, root)
        lease = leases.create(state_dir, leases.SERVICE, node=node.name, argv=argv)
        wrapper = [sys.executable, "-m", "baton.logpump", "--node", node.name,
                   "--out", str(state_dir / "service_logs.jsonl"), "--lease", str(lease.path),
                   *taint_arguments(root, state_dir), "--", *exactly(environment, argv)]
        record = _spawn_leased(lease, wrapper, env=pump_env(os.environ), cwd=root)
        slot = ServiceSlot(command=" ".join(argv), argv=list(argv), env=dict(env), is_mock=False, host="127.0.0.1",
                           port=port, process=_info(record), started_at=now_iso(), lease=str(lease.path))
        leases.attach(lease, record, slot.model_dump())
        return slot

    def stop_service(self, slot: ServiceSlot) -> bool:
        stopped = slot.process is not None and stop_group(_record(slot.process), timeout=10)
        if slot.lease:
            leases.release(slot.lease)
        return stopped

    def service_alive(self, slot: ServiceSlot) -> bool:
        return slot.process is not None and is_running(_record(slot.process))

    def service_log_tail(self, state_dir: Path, node: str, slot: ServiceSlot, lines: int = 3) -> str:
        """From the end of ``service_logs.jsonl``: the lines whose ``pid`` is the instance's (its log pump)."""
        if slot.process is None:
            return ""
        try:
            with (state_dir / "service_logs.jsonl").open("rb") as file:
                file.seek(max(0, file.seek(0, os.SEEK_END) - TAIL_WINDOW_BYTES))
                raw = file.read().decode("utf-8", errors="replace").splitlines()
        except OSError:
            return ""
        mine = []
        for line in raw:
            try:
                record = json.loads(line)
            except ValueError:
                continue  # the first line, cut by the seek
            if isinstance(record, dict) and record.get("node_name") == node and record.get("pid") == slot.process.pid:
                mine.append(str(record.get("message", "")))
        return " | ".join(mine[-lines:])

    def free_port(self) -> int:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return sock.getsockname()[1]

    def tls_names(self, root: Path, config: Any) -> dict[str, tuple[str, ...]]:
        return {}  # reached on loopback, which every certificate names

    def trust_files(self, state_dir: Path) -> dict[str, str]:
        from baton.certs.layout import TlsLayout

        layout = TlsLayout.of(state_dir)
        return {"ca_file": str(layout.bundle), "trust_file": str(layout.trust)}

    def dependency_host(self, node: NodeConfig) -> str:
        return "127.0.0.1" if node.host in ("0.0.0.0", "::") else node.host
