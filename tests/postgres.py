"""A throwaway PostgreSQL cluster on 127.0.0.1 for tests and benchmarks (Debian's ``postgresql`` binaries).

``start_cluster()`` runs ``initdb`` and ``pg_ctl`` from ``/usr/lib/postgresql/*/bin`` in a fresh temp directory
(as the ``postgres`` user when this process is root: both refuse root), trust authentication for the user
``baton``, a free loopback port, the socket in the same directory; it returns once a connection succeeds and
the database exists. ``Cluster.stop()`` stops it (``pg_ctl stop -m fast``) and removes the directory.
``PostgresUnavailable`` says why there is none: the caller skips or fails on it. No pytest here.
"""

from __future__ import annotations

import asyncio
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Cluster", "PostgresUnavailable", "binaries", "start_cluster", "create_database", "query"]

USER = "baton"
START_TIMEOUT_S = 60.0


class PostgresUnavailable(RuntimeError):
    """PostgreSQL's server binaries are missing, so no cluster can be started here."""


def binaries() -> Path:
    """The newest ``/usr/lib/postgresql/N/bin`` holding ``initdb`` and ``pg_ctl``."""
    found = [Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/initdb")
             if (Path(p).parent / "pg_ctl").exists()]
    if not found:
        raise PostgresUnavailable("PostgreSQL's server binaries are not installed (no /usr/lib/postgresql/*/bin/"
                                  "initdb); run `apt-get install -y postgresql` to test against it.")
    return max(found, key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)


def _as_owner(argv: list[str]) -> list[str]:
    """``argv`` run as the ``postgres`` user when we are root (initdb and pg_ctl refuse root)."""
    if os.geteuid() != 0:
        return argv
    return ["runuser", "-u", "postgres", "--", *argv]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _run(argv: list[str], what: str, timeout: float = 120) -> None:
    proc = subprocess.run(_as_owner(argv), capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{what} failed (exit {proc.returncode}): {(proc.stderr or proc.stdout).strip()[-2000:]}")


async def _connect(url: str, timeout: float = 5.0):  # noqa: ANN202 - asyncpg.Connection
    import asyncpg

    return await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://", 1), timeout=timeout)


def query(url: str, sql: str, *args: object) -> list[dict]:
    """Rows of ``sql`` on the database at ``url`` (one short connection)."""

    async def fetch() -> list[dict]:
        conn = await _connect(url)
        try:
            return [dict(row) for row in await conn.fetch(sql, *args)]
        finally:
            await conn.close()

    return asyncio.run(fetch())


def create_database(url: str, name: str) -> str:
    """Create database ``name`` on the cluster of ``url``; its URL (same user, host and port)."""
    if not name.replace("_", "").isalnum():
        raise ValueError(f"a database name of letters, digits and underscores was expected, found {name!r}.")
    query(url, f'CREATE DATABASE "{name}"')
    return url.rsplit("/", 1)[0] + f"/{name}"


@dataclass
class Cluster:
    """A running throwaway cluster: where it lives and how to reach its database."""

    base: Path
    bin: Path
    port: int
    database: str
    version: str = ""

    @property
    def data(self) -> Path:
        return self.base / "data"

    @property
    def log(self) -> Path:
        return self.base / "postgres.log"

    @property
    def url(self) -> str:
        """The database as Prefect takes it: ``postgresql+asyncpg://baton@127.0.0.1:PORT/DB``."""
        return f"postgresql+asyncpg://{USER}@127.0.0.1:{self.port}/{self.database}"

    def stop(self) -> None:
        """Stop the server (fast: open connections are closed) and remove its directory."""
        try:
            if self.data.exists():
                subprocess.run(_as_owner([str(self.bin / "pg_ctl"), "-D", str(self.data), "stop", "-m", "fast",
                                          "-w", "-t", "60"]), capture_output=True, text=True, timeout=90)
        finally:
            shutil.rmtree(self.base, ignore_errors=True)

    def log_tail(self, lines: int = 5) -> str:
        try:
            return " | ".join(self.log.read_text(errors="replace").strip().splitlines()[-lines:])
        except OSError:
            return "no log"


def _wait_ready(cluster: Cluster, timeout: float) -> str:
    """Poll a connection to the ``postgres`` database until the server accepts it; its version."""
    admin = f"postgresql://{USER}@127.0.0.1:{cluster.port}/postgres"
    deadline = time.monotonic() + timeout
    delay = 0.02
    while True:
        try:
            return query(admin, "SHOW server_version")[0]["server_version"]
        except Exception as exc:  # noqa: BLE001 - refused, or "the database system is starting up"
            last = exc
        if time.monotonic() > deadline:
            raise RuntimeError(f"PostgreSQL did not accept a connection within {timeout:.0f} s "
                               f"({type(last).__name__}: {last}; log: {cluster.log_tail()}).") from last
        time.sleep(delay)
        delay = min(delay * 2, 0.25)


def start_cluster(database: str = "prefect", timeout: float = START_TIMEOUT_S) -> Cluster:
    """A new cluster on a free loopback port with ``database`` created in it (raises PostgresUnavailable when
    PostgreSQL is not installed)."""
    bin_dir = binaries()
    base = Path(tempfile.mkdtemp(prefix="baton-pg-"))  # under /tmp: the postgres user must reach it
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            shutil.rmtree(base, ignore_errors=True)
            raise PostgresUnavailable("there is no `postgres` user to run initdb as (it refuses root); install "
                                      "Debian's `postgresql` package, which creates it.") from None
        os.chown(base, owner.pw_uid, owner.pw_gid)
    cluster = Cluster(base=base, bin=bin_dir, port=0, database=database)
    try:
        _run([str(bin_dir / "initdb"), "-D", str(cluster.data), "-A", "trust", "-U", USER, "-E", "UTF8",
              "--locale=C", "--no-sync"], "initdb")
        for attempt in range(3):  # a port free when chosen may be taken before the server binds it
            cluster.port = _free_port()
            options = f"-p {cluster.port} -k {base} -c listen_addresses=127.0.0.1"
            try:  # -w: pg_ctl returns once the server answers, or fails when it exits while starting
                _run([str(bin_dir / "pg_ctl"), "-D", str(cluster.data), "-l", str(cluster.log), "-o", options,
                      "-w", "-t", str(int(timeout)), "start"], "pg_ctl start", timeout=timeout + 30)
                break
            except RuntimeError as exc:
                if attempt == 2 or "Address already in use" not in cluster.log_tail(20):
                    raise RuntimeError(f"{exc} (log: {cluster.log_tail()})") from None
        cluster.version = _wait_ready(cluster, timeout)
        query(f"postgresql://{USER}@127.0.0.1:{cluster.port}/postgres", f'CREATE DATABASE "{database}"')
    except BaseException:
        cluster.stop()
        raise
    return cluster


if __name__ == "__main__":  # a manual check: start one, print its URL, stop it
    started = start_cluster()
    try:
        print(started.url, started.version)
    finally:
        started.stop()
