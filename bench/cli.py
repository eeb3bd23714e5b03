"""CLI overhead with the conductor up (issue 5's targets), measured in one run.

    .venv/bin/python bench/cli.py [--runs N] [--nodes 100]

Prints, for a throwaway project under a temp directory:
  * `baton status --json` and `baton route show` wall time (target <= 0.5 s);
  * `baton slot` wall time minus the service's own readiness (target <= 0.5 s);
  * a 100-node `baton up --mock` until every node answers (target <= 2 s);
and the same actions without the conductor, for comparison. Not a test: figures only.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BATON = str(Path(sys.executable).with_name("baton"))
SERVICE = f"{sys.executable} -m http.server $BATON_SERVICE_PORT --bind 127.0.0.1"


def run(*args: str, cwd: Path, env: dict[str, str] | None = None) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    proc = subprocess.run([BATON, *args], cwd=cwd, capture_output=True, text=True, env=env or os.environ.copy())
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"baton {' '.join(args)} failed: {proc.stderr.strip()}")
    return elapsed, proc


def write_circuit(root: Path, nodes: int) -> None:
    lines = ["name: bench", "version: 2", "nodes:"]
    for i in range(nodes):
        lines += [f"  - name: n{i}", f"    port: {20000 + i}"]
    lines.append("edges:")
    for i in range(1, nodes):
        lines += [f"  - source: n{i - 1}", f"    target: n{i}"]
    root.mkdir(parents=True, exist_ok=True)
    (root / "baton.yaml").write_text("\n".join(lines) + "\n")


def median(samples: list[float]) -> float:
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--nodes", type=int, default=100)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="baton-bench-"))
    small, large = base / "small", base / "large"
    write_circuit(small, 3)
    write_circuit(large, args.nodes)
    rows: list[tuple[str, float, float | None]] = []
    try:
        t, _ = run("up", "--mock", cwd=small)
        print(f"first `baton up --mock` (starts Prefect server + conductor): {t:.2f} s", flush=True)
        status = [run("status", "--json", cwd=small)[0] for _ in range(args.runs)]
        show = [run("route", "show", "n1", "--json", cwd=small)[0] for _ in range(args.runs)]
        totals, overheads = [], []
        for _ in range(args.runs):  # each slot replaces the previous service of n1
            t, proc = run("slot", "n1", SERVICE, "--json", cwd=small)
            totals.append(t)
            overheads.append(t - json.loads(proc.stdout)["ready_after_s"])
            time.sleep(0.3)  # a person types commands; back-to-back runs hit SQLite's lock (ENVIRONMENT.md)
        slot_total, slot_overhead = median(totals), median(overheads)
        swaps = [run("swap", "n1", SERVICE, cwd=small)[0] for _ in range(args.runs)]
        cold_env = {**os.environ, "BATON_NO_CONDUCTOR": "1"}
        cold_status = median([run("status", "--json", cwd=small, env=cold_env)[0] for _ in range(args.runs)])
        t_cold_slot, proc = run("slot", "n2", SERVICE, "--json", cwd=small, env=cold_env)
        cold_slot_overhead = t_cold_slot - json.loads(proc.stdout)["ready_after_s"]
        rows += [
            ("baton status --json", median(status), cold_status),
            ("baton route show n1 --json", median(show), None),
            ("baton slot: overhead beyond readiness", slot_overhead, cold_slot_overhead),
            ("baton slot: total", slot_total, t_cold_slot),
            ("baton swap: total (incl. readiness and drain)", median(swaps), None),
        ]
        run("down", cwd=small)
        # 100 nodes, conductor already warm for that project too
        from_cold, _ = run("up", "--mock", cwd=large)
        run("down", cwd=large)
        up_warm = []
        for _ in range(max(1, args.runs // 2)):
            t, proc = run("up", "--mock", "--json", cwd=large)
            assert len(json.loads(proc.stdout)["ready"]) == args.nodes
            up_warm.append(t)
            run("down", cwd=large)
        rows.append((f"baton up --mock, {args.nodes} nodes all answering", median(up_warm), from_cold))
    finally:
        for project in (small, large):
            subprocess.run([BATON, "down", "--all"], cwd=project, capture_output=True)
    print()
    print(f"{'action':<48} {'conductor up':>14} {'no conductor / first':>22}")
    for name, warm, cold in rows:
        w = f"{warm:.3f} s" if warm is not None else "-"
        c = f"{cold:.3f} s" if cold is not None else "-"
        print(f"{name:<48} {w:>14} {c:>22}")


if __name__ == "__main__":
    main()
