"""Processes Baton starts on this machine: each in its own process group, so
stopping it stops its children too, and identified by pid *and* start time, so
a recycled pid is never mistaken for ours."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from baton.waiting import WaitTimeout, wait_for

__all__ = ["ProcessRecord", "spawn", "is_running", "stop_group", "process_start_ticks", "group_members"]


def process_start_ticks(pid: int) -> int | None:
    """The kernel's start time of ``pid`` (clock ticks since boot), or None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    fields = stat[stat.rfind(")") + 2 :].split()
    if fields and fields[0] == "Z":  # a zombie has exited: it is not running
        return None
    return int(fields[19])  # field 22 overall: starttime


@dataclass(frozen=True)
class ProcessRecord:
    """What must be persisted to find a process again from another command."""

    pid: int
    pgid: int
    start_ticks: int
    argv: tuple[str, ...]

    def to_json(self) -> dict[str, object]:
        return {**asdict(self), "argv": list(self.argv)}

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> ProcessRecord:
        return cls(int(data["pid"]), int(data["pgid"]), int(data["start_ticks"]), tuple(data.get("argv") or ()))  # type: ignore[arg-type]


def spawn(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: Path,
    stdout: Path | None = None,
) -> ProcessRecord:
    """Start ``argv`` (no shell) as the leader of a new process group, detached from our terminal."""
    out = open(stdout, "ab", buffering=0) if stdout is not None else subprocess.DEVNULL  # noqa: SIM115
    try:
        proc = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
    finally:
        if stdout is not None:
            out.close()  # type: ignore[union-attr]
    ticks = process_start_ticks(proc.pid) or 0
    # Popen objects reap on garbage collection; we only keep the record.
    return ProcessRecord(proc.pid, proc.pid, ticks, tuple(argv))


def is_running(record: ProcessRecord) -> bool:
    ticks = process_start_ticks(record.pid)
    return ticks is not None and (record.start_ticks == 0 or ticks == record.start_ticks)


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes of process group ``pgid``."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return []
    except PermissionError:
        pass
    members = []
    for entry in Path("/proc").iterdir():  # killpg(0) succeeds while zombies remain: look for a live member
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rfind(")") + 2 :].split()
            if len(fields) > 2 and int(fields[2]) == pgid and fields[0] != "Z":
                members.append(int(entry.name))
    return members


def _group_alive(pgid: int) -> bool:
    return bool(group_members(pgid))


def stop_group(record: ProcessRecord, *, timeout: float = 10.0) -> bool:
    """SIGTERM the whole group, wait up to ``timeout``, then SIGKILL. True when it had been running."""
    if not is_running(record) and not _group_alive(record.pgid):
        return False
    try:
        os.killpg(record.pgid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    def exited() -> bool:
        _reap(record.pid)
        return not _group_alive(record.pgid)

    try:
        wait_for(exited, timeout_s=timeout, timeout_error="", first_delay_s=0.01, max_delay_s=0.2)
        return True
    except WaitTimeout:
        pass
    try:
        os.killpg(record.pgid, signal.SIGKILL)
    except ProcessLookupError:
        return True
    with contextlib.suppress(WaitTimeout):
        wait_for(exited, timeout_s=5, timeout_error="", first_delay_s=0.01, max_delay_s=0.05)
    return True


def _reap(pid: int) -> None:
    """Collect our own exited child so it does not linger as a zombie."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
