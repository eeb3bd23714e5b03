"""Who holds a TCP port on this machine: the listening process, its command, and the Baton project it belongs
to when it is part of another circuit. Read from ``/proc`` (Linux); elsewhere nothing is known."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["PortHolder", "port_holder", "describe_holder"]

LISTEN = "0A"


@dataclass(frozen=True)
class PortHolder:
    port: int
    pid: int | None
    command: str
    project: str | None  # the Baton project directory, when the holder is one of Baton's processes


def _listening_inodes(port: int) -> set[str]:
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 9 and fields[3] == LISTEN and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])
    return inodes


def _project_of(pid: int, argv: list[str]) -> str | None:
    """A Baton process names its project: an adapter host by its config under ``<project>/.baton/``, a service or
    conductor by its working directory holding ``baton.yaml``."""
    for word in argv:
        if "/.baton/" in word:
            return word.split("/.baton/", 1)[0]
    try:
        cwd = os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return None
    return cwd if (Path(cwd) / "baton.yaml").is_file() else None


def port_holder(port: int) -> PortHolder | None:
    """The process listening on ``port`` (any address), or None when nothing listens there."""
    inodes = _listening_inodes(port)
    if not inodes:
        return None
    wanted = {f"socket:[{inode}]" for inode in inodes}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fds = list((entry / "fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(fd) not in wanted:
                    continue
                argv = [a.decode(errors="replace") for a in (entry / "cmdline").read_bytes().split(b"\0") if a]
            except OSError:
                continue
            pid = int(entry.name)
            return PortHolder(port, pid, " ".join(argv)[:200], _project_of(pid, argv))
    return PortHolder(port, None, "", None)  # listening, but in a process we may not look into


def describe_holder(holder: PortHolder) -> str:
    """``port 8001 is held by pid 4242 (python -m baton_adapter ...), part of the Baton circuit at /srv/shop``."""
    if holder.pid is None:
        return f"port {holder.port} is held by a process this user cannot inspect"
    text = f"port {holder.port} is held by pid {holder.pid} ({holder.command or 'unknown command'})"
    if holder.project:
        text += f", part of the Baton circuit at {holder.project}"
    return text
