"""Rows of ``bench/adapter.py`` that measure the adapter's optional work against the adapter itself, in adjacent
runs of one process: taint scanning off and on (``PUT /taint`` with :data:`TAINT_CANARIES` canaries), tracing
on against plain, and the adapter polled as the conductor's pipelines poll it. ``load`` and ``print_table`` are
``bench/adapter.py``'s (one load generator, one table format for every row)."""

from __future__ import annotations

import argparse
import json
import os
import re
import urllib.request
from pathlib import Path
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from adapter import Result

__all__ = ["TAINT_CANARIES", "observability_rows", "taint_rows"]

TAINT_CANARIES = 50
Load = Callable[..., Any]  # adapter.load(name, port, args, connections, path="/") -> Result
Table = Callable[..., None]  # adapter.print_table(results)


def set_taint(management_port: int, on: bool) -> None:
    """``PUT /taint`` with ``TAINT_CANARIES`` canaries (of every kind, none in the bench's traffic), or DELETE."""
    kinds = ("email", "name", "ssn", "card", "phone")
    body = {"enabled": True, "generation": "bench", "seed": [],
            "canaries": [{"fingerprint": f"{0x00B0_0000 + i:08x}", "kind": kinds[i % 5]} for i in range(TAINT_CANARIES)]}
    request = urllib.request.Request(
        f"http://127.0.0.1:{management_port}/taint", method="PUT" if on else "DELETE",
        data=json.dumps(body).encode() if on else None, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as resp:
        state = json.loads(resp.read())
    assert state["enabled"] is on, state


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of process ``pid`` (None where /proc is not available)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def requests_served(management_port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{management_port}/metrics", timeout=10) as resp:
        return int(json.loads(resp.read())["requests_total"])


def taint_rows(args: argparse.Namespace, pid: int, ready: dict, plain: Result, load: Load,  # type: ignore[type-arg]
               print_table: Table) -> None:
    """One adapter with taint scanning off and on, in adjacent runs (off-on, then on-off, ...): the ratio of each
    pair is taken while the machine is in the same state, and the median pair is reported."""
    port, management = ready["port"], ready["management_port"]
    rows: dict[str, Result] = {}
    cpu: dict[str, float] = {}
    ratios: dict[str, list[float]] = {}
    for path in ("/", "/json"):
        for round_ in range(args.taint_rounds):
            pair = {}
            for on in (False, True) if round_ % 2 == 0 else (True, False):
                set_taint(management, on)
                name = f"adapter, taint {'on (50 canaries)' if on else 'off'}, {path}"
                before_cpu, before_requests = cpu_seconds(pid), requests_served(management)
                result = pair[on] = load(name, port, args, args.connections, path)
                after_cpu, served = cpu_seconds(pid), requests_served(management) - before_requests
                if name not in rows or result.rps > rows[name].rps:
                    rows[name] = result
                if before_cpu is not None and after_cpu is not None and served:
                    per_request = 1e6 * (after_cpu - before_cpu) / served  # warm-up run included in both
                    cpu[name] = min(cpu.get(name, per_request), per_request)
            ratios.setdefault(path, []).append(pair[True].rps / pair[False].rps)
        set_taint(management, False)
    print_table(rows)
    print()
    for path in ("/", "/json"):
        off = rows[f"adapter, taint off, {path}"].name
        on = rows[f"adapter, taint on (50 canaries), {path}"].name
        cost = ""
        if off in cpu and on in cpu:
            cost = f"; adapter CPU per request {cpu[off]:.1f} us off, {cpu[on]:.1f} us on (+{cpu[on] - cpu[off]:.1f} us)"
        pairs = sorted(ratios[path])
        print(f"taint on / off, {path:<6} {pairs[len(pairs) // 2]:.2f}  (target >= 0.80; median of "
              f"{len(pairs)} adjacent pairs: {', '.join(f'{r:.2f}' for r in ratios[path])}){cost}")
    print(f"taint off / plain adapter row, /: {rows['adapter, taint off, /'].rps / plain.rps:.2f}  "
          "(the hooks while off: expected 1.00 within noise)")


class Poller:
    """What the conductor's telemetry pipeline asks an adapter every second: ``/metrics``, the signals after the
    last one read (``/signals?since=``), the newest service event (``/events?last_n=1``)."""

    def __init__(self, management_port: int, every_s: float = 1.0) -> None:
        import threading

        self.base, self.every_s = f"http://127.0.0.1:{management_port}", every_s
        self.since, self.passes, self.signals = 0, 0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _get(self, path: str) -> object:
        with urllib.request.urlopen(self.base + path, timeout=10) as resp:
            return json.loads(resp.read())

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            self._get("/metrics")
            while True:  # pages of at most 1,000, until a short one (as the pipeline reads)
                page = self._get(f"/signals?since={self.since}")
                assert isinstance(page, dict)
                self.signals += len(page["signals"])
                self.since = page["next"]
                if len(page["signals"]) < 1000:
                    break
            self._get("/events?last_n=1")
            self.passes += 1

    def __enter__(self) -> Poller:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)


def trace_spans(management_port: int) -> dict[str, float]:
    """The traced adapter's span counters (``baton_trace_spans_total`` by outcome)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{management_port}/metrics/prometheus", timeout=10) as resp:
        text = resp.read().decode()
    found = re.findall(r'baton_trace_spans_total\{[^}]*outcome="(\w+)"[^}]*\} (\S+)', text)
    return {outcome: float(value) for outcome, value in found}


def observability_rows(args: argparse.Namespace, plain: tuple[int, dict], traced: tuple[int, dict],  # type: ignore[type-arg]
                       load: Load, print_table: Table) -> None:
    """A plain adapter alone and polled like the conductor does, and an adapter exporting a span per request, in
    adjacent runs per round; ratios against the plain run of the same round."""
    rows: dict[str, Result] = {}
    cpu: dict[str, float] = {}
    ratios: dict[str, list[float]] = {"tracing": [], "polled": []}
    polls = 0

    def measure(name: str, pid: int, ready: dict) -> Result:  # type: ignore[type-arg]
        management = ready["management_port"]
        before_cpu, before_requests = cpu_seconds(pid), requests_served(management)
        result = load(name, ready["port"], args, args.connections)
        after_cpu, served = cpu_seconds(pid), requests_served(management) - before_requests
        if name not in rows or result.rps > rows[name].rps:
            rows[name] = result
        if before_cpu is not None and after_cpu is not None and served:
            per_request = 1e6 * (after_cpu - before_cpu) / served
            cpu[name] = min(cpu.get(name, per_request), per_request)
        return result

    names = {"plain": "adapter, plain", "tracing": "adapter, tracing on (OTLP/HTTP)",
             "polled": "adapter, polled like the pipelines (1/s)"}
    for round_ in range(args.obs_rounds):
        order = ["plain", "tracing", "polled"] if round_ % 2 == 0 else ["polled", "tracing", "plain"]
        got: dict[str, Result] = {}
        for kind in order:
            if kind == "polled":
                with Poller(plain[1]["management_port"]) as poller:
                    got[kind] = measure(names[kind], *plain)
                polls += poller.passes
            else:
                got[kind] = measure(names[kind], *(traced if kind == "tracing" else plain))
        for kind in ("tracing", "polled"):
            ratios[kind].append(got[kind].rps / got["plain"].rps)
    print_table({n: rows[n] for n in names.values()})
    print()
    for kind in ("tracing", "polled"):
        pairs = sorted(ratios[kind])
        cost = ""
        if names[kind] in cpu and names["plain"] in cpu:
            cost = (f"; adapter CPU per request {cpu[names['plain']]:.1f} us plain, {cpu[names[kind]]:.1f} us "
                    f"({cpu[names[kind]] - cpu[names['plain']]:+.1f} us)")
        print(f"{kind} / plain: {pairs[len(pairs) // 2]:.2f}  (median of {len(pairs)} rounds: "
              f"{', '.join(f'{r:.2f}' for r in ratios[kind])}){cost}")
    spans = trace_spans(traced[1]["management_port"])
    print(f"spans of the traced adapter: {', '.join(f'{k} {v:.0f}' for k, v in sorted(spans.items()))}; "
          f"polling passes: {polls}")
