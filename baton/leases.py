"""Leases: a record of every process Baton starts, written *before* the process exists and deleted only
after it has stopped, so a command killed at any point leaves nothing unaccounted for.

One small JSON document per process, ``.baton/leases/<id>.json``, written atomically::

    {"id": "service-api-5f0c2a9e", "kind": "service", "node": "api", "purpose": "swap",
     "created_at": "...", "flow_run_id": "...", "argv": [...], "pid": 4242, "pgid": 4242,
     "start_ticks": 913377, "details": {...}}

``kind`` is ``service`` (``node`` names the node it serves) or ``adapter-host`` (``host_id`` names the host).
``purpose`` is the flow that started it (``slot``, ``swap``, ``route-split``, ``heal-restart``, ``up``...),
``flow_run_id`` its run. ``pid``/``pgid``/``start_ticks`` are 0 until :func:`attach` records them right after
the spawn; ``details`` holds what the starter records in ``state.json`` (a ``ServiceSlot``), so a process
whose recording was cut short can be adopted.

The process receives its lease's path as ``BATON_LEASE`` (and as ``--lease``): it stops itself once the
file is gone, and a process started by a command killed before :func:`attach` is still found by that
variable in ``/proc/<pid>/environ``. Reading and writing leases never imports Prefect.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from baton.config.document import atomic_write_text
from baton.processes import ProcessRecord, group_members, is_running, process_start_ticks

__all__ = ["LEASE_ENV", "LEASES_DIRNAME", "SERVICE", "ADAPTER_HOST", "Lease", "lease_dir", "create", "attach",
           "describe", "release", "load", "all", "carriers", "process_of"]

LEASE_ENV = "BATON_LEASE"
LEASES_DIRNAME = "leases"
SERVICE = "service"
ADAPTER_HOST = "adapter-host"
KINDS = (SERVICE, ADAPTER_HOST)

@dataclass(frozen=True)
class Lease:
    """One lease file's content, and where it lives."""

    path: Path
    id: str
    kind: str
    node: str = ""
    host_id: str = ""
    purpose: str = ""
    created_at: str = ""
    flow_run_id: str = ""
    argv: tuple[str, ...] = ()
    pid: int = 0
    pgid: int = 0
    start_ticks: int = 0
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def attached(self) -> bool:
        """The process was spawned and its pid recorded."""
        return self.pid > 0

    @property
    def record(self) -> ProcessRecord | None:
        """The process as recorded by :func:`attach` (None before)."""
        if not self.attached:
            return None
        return ProcessRecord(self.pid, self.pgid or self.pid, self.start_ticks, self.argv)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.id, "kind": self.kind}
        data.update({"node": self.node} if self.kind == SERVICE else {"host_id": self.host_id})
        data.update(purpose=self.purpose, created_at=self.created_at, flow_run_id=self.flow_run_id,
                    argv=list(self.argv), pid=self.pid, pgid=self.pgid, start_ticks=self.start_ticks,
                    details=dict(self.details))
        return data

    @classmethod
    def from_json(cls, path: Path, data: Mapping[str, Any]) -> Lease:
        return cls(path=Path(path), id=str(data["id"]), kind=str(data["kind"]), node=str(data.get("node") or ""),
                   host_id=str(data.get("host_id") or ""), purpose=str(data.get("purpose") or ""),
                   created_at=str(data.get("created_at") or ""), flow_run_id=str(data.get("flow_run_id") or ""),
                   argv=tuple(str(a) for a in data.get("argv") or ()), pid=int(data.get("pid") or 0),
                   pgid=int(data.get("pgid") or 0), start_ticks=int(data.get("start_ticks") or 0),
                   details=dict(data.get("details") or {}))


def lease_dir(state_dir: Path) -> Path:
    return Path(state_dir) / LEASES_DIRNAME


def lease_id(path: str | Path) -> str:
    """The id of the lease at ``path`` (its file name without ``.json``)."""
    return Path(path).stem


def _flow_run() -> tuple[str, str]:
    """(flow name, flow run id) of the Prefect run we are in, if any; never imports Prefect itself."""
    if "prefect" not in sys.modules:
        return "", ""
    try:
        from prefect.runtime import flow_run

        return str(flow_run.flow_name or ""), str(flow_run.id or "")
    except Exception:  # noqa: BLE001 - the purpose is informative; a lease is written regardless
        return "", ""


def _write(lease: Lease) -> Lease:
    atomic_write_text(lease.path, json.dumps(lease.to_json(), indent=2) + "\n")
    return lease


def create(state_dir: Path, kind: str, *, node: str = "", host_id: str = "", argv: Sequence[str] = (),
           purpose: str = "") -> Lease:
    """Write a new lease for a process about to be spawned (call this *before* spawning it)."""
    if kind not in KINDS:
        raise ValueError(f"a lease kind is one of {', '.join(KINDS)}, got {kind!r}.")
    subject = node if kind == SERVICE else host_id
    if not subject or "/" in subject or subject.startswith("."):
        raise ValueError(f"a {kind} lease needs a plain name for what it runs, got {subject!r}.")
    flow_name, run_id = _flow_run()
    ident = f"{kind}-{subject}-{secrets.token_hex(4)}"
    directory = lease_dir(state_dir)
    directory.mkdir(parents=True, exist_ok=True)
    return _write(Lease(path=directory / f"{ident}.json", id=ident, kind=kind, node=node if kind == SERVICE else "",
                        host_id=host_id if kind == ADAPTER_HOST else "", purpose=purpose or flow_name or "manual",
                        created_at=datetime.now(UTC).isoformat(timespec="milliseconds"), flow_run_id=run_id,
                        argv=tuple(argv)))


def attach(lease: Lease, process: ProcessRecord, details: Mapping[str, Any] | None = None) -> Lease:
    """Record the spawned process (and what state will record for it) in its lease."""
    return _write(replace(lease, pid=process.pid, pgid=process.pgid, start_ticks=process.start_ticks,
                          argv=tuple(process.argv), details=dict(details if details is not None else lease.details)))


def describe(path: str | Path, details: Mapping[str, Any]) -> Lease | None:
    """Replace what the lease at ``path`` says state records for its process (None when it is gone)."""
    lease = load(path)
    return _write(replace(lease, details=dict(details))) if lease is not None else None


def release(path: str | Path) -> bool:
    """Delete a lease once its process has stopped; True when there was one."""
    try:
        Path(path).unlink()
    except FileNotFoundError:
        return False
    return True


def load(path: str | Path) -> Lease | None:
    """The lease at ``path``; None when it is missing or unreadable."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        return Lease.from_json(Path(path), data)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def all(state_dir: Path) -> list[Lease]:  # noqa: A001 - read as ``leases.all(state_dir)``
    """Every lease of the project, oldest first."""
    directory = lease_dir(state_dir)
    try:
        paths = sorted(directory.glob("*.json"))
    except OSError:
        return []
    found = [lease for lease in map(load, paths) if lease is not None]
    return sorted(found, key=lambda lease: lease.created_at)


def carriers(state_dir: Path | None = None) -> dict[str, list[int]]:
    """Live processes by the ``BATON_LEASE`` they were started with (only leases under ``state_dir`` if
    given): how a process is found when its starter was killed before recording its pid."""
    prefix = (str(lease_dir(state_dir)) + os.sep).encode() if state_dir is not None else b""
    marker = LEASE_ENV.encode() + b"="
    found: dict[str, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:  # gone meanwhile, or not ours to read
            continue
        if marker not in environ:
            continue
        for item in environ.split(b"\0"):
            if item.startswith(marker) and item[len(marker):].startswith(prefix):
                if process_start_ticks(int(entry.name)) is not None:  # zombies have exited
                    found.setdefault(item[len(marker):].decode(errors="replace"), []).append(int(entry.name))
                break
    return found


def _cwd(pid: int) -> str:
    try:
        return os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return ""


def _pgid(pid: int) -> int:
    try:
        return os.getpgid(pid)
    except OSError:
        return pid


def process_of(lease: Lease, found: Mapping[str, list[int]] | None = None) -> ProcessRecord | None:
    """The process (group) of ``lease`` while any of it runs, else None.

    The recorded pid when it still runs (start time checked, so a recycled pid is not ours); otherwise any
    live process carrying the lease in its environment: one spawned but never attached, or the children of
    a leader that died. ``found`` is a :func:`carriers` scan to reuse across many leases."""
    record = lease.record
    if record is not None and is_running(record):
        return record
    pids = (found if found is not None else carriers()).get(str(lease.path), [])
    if not pids:
        # a service runs with an explicit environment (no lease variable): what is left of its recorded group,
        # when it still works in this project (a recycled group id of someone else's is never taken for it)
        root = str(Path(lease.path).resolve().parent.parent.parent)
        if record is not None and record.pgid and any(_cwd(pid) == root for pid in group_members(record.pgid)):
            return record
        return None
    groups = {pid: _pgid(pid) for pid in pids}
    leader = next((pid for pid, pgid in groups.items() if pid == pgid), pids[0])
    return ProcessRecord(leader, groups[leader], process_start_ticks(leader) or 0, lease.argv)
