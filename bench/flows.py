"""Back-to-back flow-run latency on the shared Prefect server: SQLite against PostgreSQL, in one run.

    .venv/bin/python bench/flows.py [--runs 40] [--warmup 2] [--json]

For each backend in turn, under its own temporary ``BATON_HOME`` (and no ``PREFECT_*`` or ``BATON_*`` variable of
the caller's): ``baton server start`` (SQLite, the default) or ``baton server start --database URL`` (PostgreSQL,
a throwaway cluster on 127.0.0.1 started as tests/postgres.py does), a one-node project booted mocked without a
conductor (``baton up --mock --no-conductor``), then one warm worker process runs the real ``route-lock`` flow
in-process (``run_local``), alternately locking and unlocking ``api``, back to back: ``--warmup`` untimed runs,
then ``--runs`` timed ones. Only one backend's server runs while it is measured.

Prints a table (backend, runs, p50, p95, max, runs of 1 s or more), the ratio p95 SQLite / p95 PostgreSQL and the command line;
``--json`` prints one document instead. Cleanup always runs: ``baton down --all``, ``baton server stop``,
``pg_ctl stop``. Figures only; not a test.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# Run as a script, this file's directory leads sys.path and this module would shadow Baton's `flows` package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
BATON = str(Path(sys.executable).with_name("baton"))
WORKER_TIMEOUT_S = 900
STALL_S = 1.0  # a run this slow waited on the server's database (SQLite's "database is locked", retried)


def clean_env(home: Path) -> dict[str, str]:
    """The caller's environment without its Prefect/Baton settings, pointed at ``home``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "BATON_"))}
    return {**env, "BATON_HOME": str(home), "DO_NOT_TRACK": "1", "NO_COLOR": "1", "BATON_NO_SCHEDULES": "1",
            "BATON_NO_CUSTODIAN": "1"}


def baton(*args: str, cwd: Path, home: Path, check: bool = True, timeout: float = 180) -> str:
    proc = subprocess.run([BATON, *args], cwd=cwd, env=clean_env(home), capture_output=True, text=True,
                          timeout=timeout)
    if check and proc.returncode != 0:
        raise SystemExit(f"`baton {' '.join(args)}` failed (exit {proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout


def free_port() -> int:
    """A loopback port nothing holds now (the node's default, the first free from 9001, races other circuits)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def percentile(samples: list[float], pct: float) -> float:
    """Nearest-rank percentile: the smallest sample with at least ``pct`` % of the samples at or below it."""
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(pct / 100 * len(ordered)) - 1)]


def measure(name: str, base: Path, database: str | None, runs: int, warmup: int) -> dict[str, Any]:
    """One backend: its server, a mocked one-node project, the worker's timings; everything stopped after."""
    home, project = base / f"home-{name}", base / f"project-{name}"
    out = base / f"samples-{name}.json"
    try:
        started = json.loads(baton("server", "start", *(["--database", database] if database else []), "--json",
                                   cwd=base, home=home))
        baton("init", str(project), "--name", "bench", cwd=base, home=home)
        baton("node", "add", "api", "--port", str(free_port()), cwd=project, home=home)
        baton("up", "--mock", "--no-conductor", cwd=project, home=home)
        worker = [sys.executable, __file__, "--worker", str(project), "--runs", str(runs), "--warmup", str(warmup),
                  "--out", str(out)]
        proc = subprocess.run(worker, cwd=project, env=clean_env(home), capture_output=True, text=True,
                              timeout=WORKER_TIMEOUT_S)
        if proc.returncode != 0:
            raise SystemExit(f"the {name} worker failed (exit {proc.returncode}): {proc.stderr.strip()[-3000:]}")
        samples = json.loads(out.read_text())
    finally:
        if project.exists():
            baton("down", "--all", cwd=project, home=home, check=False)
        baton("server", "stop", cwd=base, home=home, check=False)
    return {"backend": name, "database": started["database"], "runs": len(samples),
            "p50_s": statistics.median(samples), "p95_s": percentile(samples, 95), "max_s": max(samples),
            "stalls": sum(1 for s in samples if s >= STALL_S), "samples_s": samples}


def work(project_dir: Path, runs: int, warmup: int, out: Path) -> None:
    """The worker: ``warmup + runs`` route-lock flows back to back in this one process; the timed ones to ``out``."""
    from baton.cli.flowrun import run_local
    from baton.project import Project

    project = Project.at(project_dir)
    samples = []
    for i in range(warmup + runs):
        start = time.perf_counter()
        result = run_local(project, "route-lock", {"node": "api", "locked": i % 2 == 0})
        elapsed = time.perf_counter() - start
        if result.get("node") != "api":
            raise RuntimeError(f"route-lock returned {result!r}, expected a result for node api.")
        if i >= warmup:
            samples.append(elapsed)
    out.write_text(json.dumps(samples))


def report(document: dict[str, Any]) -> None:
    print(f"{'backend':<12} {'runs':>5} {'p50':>9} {'p95':>9} {'max':>9} {'>=1s':>5}   database")
    for row in document["backends"]:
        print(f"{row['backend']:<12} {row['runs']:>5} {row['p50_s']:>8.3f}s {row['p95_s']:>8.3f}s "
              f"{row['max_s']:>8.3f}s {row['stalls']:>5}   {row['database']}")
    print(f"p95 SQLite / p95 PostgreSQL: {document['p95_ratio_sqlite_over_postgres']:.2f}x")
    print(f"Prefect {document['prefect']}, PostgreSQL {document['postgresql']}, flow route-lock "
          f"(lock/unlock alternately), {document['warmup']} warm-up runs untimed")
    print(f"command: {document['command']}")


def main() -> None:
    parser = argparse.ArgumentParser(description="Back-to-back flow-run latency, SQLite vs PostgreSQL.")
    parser.add_argument("--runs", type=int, default=40, help="timed flow runs per backend (default 40)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed runs first, per backend (default 2)")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.runs < 1 or args.warmup < 0:
        parser.error(f"--runs must be at least 1 and --warmup at least 0, found {args.runs} and {args.warmup}.")
    if args.worker:
        work(args.worker, args.runs, args.warmup, args.out)
        return

    sys.path.insert(0, str(ROOT / "tests"))
    from postgres import PostgresUnavailable, start_cluster

    command = shlex.join([os.path.relpath(sys.executable, Path.cwd()) if sys.executable.startswith(str(Path.cwd()))
                          else sys.executable, *sys.argv])
    base = Path(tempfile.mkdtemp(prefix="baton-bench-flows-"))
    cluster = None
    try:
        try:
            cluster = start_cluster(database="prefect")
        except PostgresUnavailable as exc:
            raise SystemExit(f"bench/flows.py needs PostgreSQL: {exc}") from None
        rows = [measure("sqlite", base, None, args.runs, args.warmup),
                measure("postgresql", base, cluster.url, args.runs, args.warmup)]
        version = cluster.version
    finally:
        if cluster is not None:
            cluster.stop()
        shutil.rmtree(base, ignore_errors=True)
    document = {"command": command, "runs": args.runs, "warmup": args.warmup, "flow": "route-lock",
                "prefect": metadata.version("prefect"), "postgresql": version, "backends": rows,
                "p95_ratio_sqlite_over_postgres": rows[0]["p95_s"] / rows[1]["p95_s"]}
    if args.json:
        print(json.dumps(document, indent=1))
    else:
        report(document)


if __name__ == "__main__":
    main()
