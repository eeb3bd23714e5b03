"""The dashboard's figures: a pure aggregation of what the adapters answered (``/status``, ``/health``,
``/metrics``, ``/tls``), what ``.baton/`` records (state, the custodian's verdicts, taint violations) and
Prefect's run history, into one row per node plus the circuit-wide lists the page shows.

Rates (req/s, error rate) compare two readings of an adapter's cumulative counters: the first reading of a node
has none ("no data", kept apart from 0), and a restarted adapter (another instance, or counters that went back)
starts afresh. Latency percentiles are the adapter's own, over its most recent requests.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from baton.dashboard.layout import layout

__all__ = ["Sample", "AdapterAnswers", "Inputs", "Routing", "CanaryView", "NodeRow", "Dashboard", "aggregate",
           "rates", "serving", "routing_of", "canary_of", "tone", "flow_run_url", "ERROR_RATE_WARN"]

ERROR_RATE_WARN = 0.05  # a window with more failures than this colours the node as a warning
STRATEGY_LABELS = {"single": "single", "weighted": "A/B", "canary": "canary", "header": "header rules"}
SIGNALS_SHOWN, DECISIONS_SHOWN, RUNS_SHOWN = 25, 20, 15


@dataclass(frozen=True)
class Sample:
    """One reading of a node's cumulative counters."""

    at: float
    instance: str
    requests: int
    failed: int


@dataclass(frozen=True)
class AdapterAnswers:
    """What one node's adapter answered; a route that did not answer is None, and ``error`` says why."""

    status: Mapping[str, Any] | None = None
    health: Mapping[str, Any] | None = None
    metrics: Mapping[str, Any] | None = None
    tls: Mapping[str, Any] | None = None
    error: str = ""


@dataclass(frozen=True)
class Inputs:
    circuit: str
    nodes: Sequence[tuple[str, str]]  # (name, role), declared order
    edges: Sequence[tuple[str, str, str]]  # (source, target, label)
    running: bool
    now: float
    adapters: Mapping[str, AdapterAnswers] = field(default_factory=dict)
    recorded: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # state.json's adapters, as JSON
    custody: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # the custodian's nodes, as JSON
    violations: Mapping[str, int] = field(default_factory=dict)  # taint violations by the node they were seen at
    violations_total: int = 0
    tls_mode: str = "off"
    signals: Sequence[Mapping[str, Any]] = ()
    decisions: Sequence[Mapping[str, Any]] = ()  # the custodian's, from events.jsonl
    runs: Sequence[Mapping[str, Any]] = ()  # baton.history.RunSummary.to_json(), newest first
    runs_note: str = ""  # why there are no runs to show (the Prefect API does not answer...)
    ui_url: str = ""  # Prefect's UI, e.g. http://127.0.0.1:4200
    signals_source: str = "adapters"


@dataclass(frozen=True)
class Routing:
    strategy: str
    label: str
    targets: tuple[dict[str, Any], ...]  # {name, weight, backend}: backend "mock" or host:port
    locked: bool = False


@dataclass(frozen=True)
class CanaryView:
    phase: str
    weight: int
    in_flight: bool
    reason: str
    steps: tuple[int, ...]
    progress: float  # 0..1: how far along its steps the weight is
    next_evaluation_in_s: float | None


@dataclass(frozen=True)
class NodeRow:
    name: str
    role: str
    serving: str  # live | mock | stopped
    health: str  # healthy | degraded | unhealthy | unreachable | stopped | unknown
    health_detail: str
    tone: str  # ok | warn | bad | idle: the colour the page gives the node
    requests_total: int | None
    rps: float | None
    error_rate: float | None  # over the window since the previous reading; None without traffic or reading
    error_rate_total: float | None
    p50_ms: float | None
    p99_ms: float | None
    routing: Routing | None
    canary: CanaryView | None
    custodian: dict[str, Any] | None  # {status, reason, paused}
    tls: dict[str, Any] | None  # {enabled, not_after, days_left} when the circuit serves TLS
    violations: int


@dataclass(frozen=True)
class Dashboard:
    circuit: str
    running: bool
    generated_at: float
    nodes: tuple[NodeRow, ...]
    topology: dict[str, Any]
    signals: tuple[dict[str, Any], ...]
    decisions: tuple[dict[str, Any], ...]
    runs: tuple[dict[str, Any], ...]
    runs_note: str
    signals_source: str
    totals: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


# -- one node ------------------------------------------------------------------------------------------------


def _sample(answers: AdapterAnswers | None, now: float) -> Sample | None:
    metrics = answers.metrics if answers else None
    if not metrics or "requests_total" not in metrics:
        return None
    instance = str((answers.status or {}).get("instance") or "") if answers else ""
    return Sample(at=now, instance=instance, requests=int(metrics["requests_total"]),
                  failed=int(metrics.get("requests_failed") or 0))


def rates(previous: Sample | None, current: Sample | None) -> tuple[float | None, float | None]:
    """(requests per second, share of them that failed) between two readings; (None, None) without two readings
    of the same adapter instance; the error rate is None for a window without requests."""
    if previous is None or current is None or current.at <= previous.at:
        return None, None
    if previous.instance != current.instance or current.requests < previous.requests \
            or current.failed < previous.failed:  # a restarted adapter: its counters began again
        return None, None
    requests = current.requests - previous.requests
    failed = current.failed - previous.failed
    rps = round(requests / (current.at - previous.at), 2)
    return rps, (round(failed / requests, 4) if requests else None)


def serving(status: Mapping[str, Any] | None, recorded: Mapping[str, Any] | None, running: bool) -> str:
    """live when the adapter routes to any real backend, mock when it serves only its mock, stopped when the
    circuit is down; an adapter that did not answer is judged by what state.json recorded."""
    if not running:
        return "stopped"
    if status is not None:
        backend = status.get("backend") or {}
        targets = backend["targets"] if "targets" in backend else [backend] if backend else []
        if any(not t.get("mock") and "port" in t for t in targets):
            return "live"
        return "mock"
    service = (recorded or {}).get("service") or {}
    return "mock" if service.get("is_mock", True) else "live"


def routing_of(status: Mapping[str, Any] | None) -> Routing | None:
    """The adapter's routing as the page shows it: single, A/B (weighted), canary or header rules, with weights."""
    if status is None:
        return None
    backend = status.get("backend") or {}
    strategy = str(status.get("routing_strategy") or backend.get("strategy") or "single")
    raw = backend["targets"] if "targets" in backend else [backend] if backend else []
    targets = tuple({"name": t.get("name", ""), "weight": int(t.get("weight", 100 if strategy == "single" else 0)),
                     "backend": "mock" if t.get("mock") or "port" not in t else f"{t.get('host')}:{t['port']}"}
                    for t in raw)
    return Routing(strategy=strategy, label=STRATEGY_LABELS.get(strategy, strategy), targets=targets,
                   locked=bool(status.get("routing_locked")))


def canary_of(recorded: Mapping[str, Any] | None, now: float) -> CanaryView | None:
    """The node's canary (in flight, or how the last one ended) from its state.json record."""
    record = (recorded or {}).get("canary")
    if not record:
        return None
    policy = record.get("policy") or {}
    steps = tuple(int(s) for s in policy.get("steps") or (100,))
    weight = int(record.get("weight") or 0)
    in_flight = not record.get("concluded", False)
    phase = str(record.get("phase") or "")
    reached = sum(1 for s in steps if s <= weight)
    progress = 1.0 if phase == "Succeeded" else round(reached / len(steps), 3)
    decisions = record.get("decisions") or []
    due = float(record.get("last_step_at") or 0.0) + float(policy.get("interval_s") or 0.0)
    return CanaryView(phase=phase, weight=weight, in_flight=in_flight,
                      reason=str(decisions[-1].get("reason", "")) if decisions else "", steps=steps,
                      progress=progress, next_evaluation_in_s=round(max(0.0, due - now), 1) if in_flight else None)


def tone(health: str, custodian: Mapping[str, Any] | None, error_rate: float | None, canary: CanaryView | None) -> str:
    """The node's colour: bad when it does not serve (or the custodian gave up on it), warn when it serves
    badly (degraded, a failing window, a mock standing in, a failing canary), ok when healthy, idle when down."""
    status = (custodian or {}).get("status", "")
    if health in ("unhealthy", "unreachable") or status == "faulted":
        return "bad"
    if health == "stopped":
        return "idle"
    if (health == "degraded" or status in ("failing", "waiting", "restarting", "restarted", "mocking", "mocked",
                                             "degraded")
            or (error_rate is not None and error_rate > ERROR_RATE_WARN)
            or (canary is not None and canary.in_flight and canary.phase == "Failed")):
        return "warn"
    return "ok" if health == "healthy" else "idle"


def _tls(tls_mode: str, answer: Mapping[str, Any] | None, now: float) -> dict[str, Any] | None:
    if tls_mode == "off":
        return None
    current = (answer or {}).get("current") or {}
    not_after = current.get("not_after")
    days = None
    if isinstance(not_after, (int, float)):
        days = round((float(not_after) - now) / 86400, 1)
    elif isinstance(not_after, str) and not_after:
        from datetime import datetime

        try:
            days = round((datetime.fromisoformat(not_after.replace("Z", "+00:00")).timestamp() - now) / 86400, 1)
        except ValueError:
            days = None
    return {"mode": tls_mode, "enabled": bool((answer or {}).get("enabled")), "not_after": not_after,
            "days_left": days}


def _node(name: str, role: str, inputs: Inputs, previous: Sample | None) -> tuple[NodeRow, Sample | None]:
    answers = inputs.adapters.get(name)
    recorded = inputs.recorded.get(name)
    status = answers.status if answers else None
    current = _sample(answers, inputs.now)
    rps, error_rate = rates(previous, current)
    metrics = (answers.metrics if answers else None) or {}
    latency = metrics.get("latency_ms") or {}
    keeper = inputs.custody.get(name)
    custodian = {k: keeper.get(k) for k in ("status", "reason", "paused")} if keeper else None
    if not inputs.running:
        health, detail = "stopped", "the circuit is not running (`baton up`)"
    elif answers is None or (answers.health is None and status is None):
        health, detail = "unreachable", (answers.error if answers else "") or "its adapter does not answer"
    elif answers.health is None:
        health, detail = "unknown", answers.error or "its health was not reported"
    else:
        health, detail = str(answers.health.get("verdict") or "unknown"), str(answers.health.get("detail") or "")
    canary = canary_of(recorded, inputs.now)
    row = NodeRow(
        name=name, role=role, serving=serving(status, recorded, inputs.running), health=health, health_detail=detail,
        tone=tone(health, custodian, error_rate, canary),
        requests_total=current.requests if current else None, rps=rps, error_rate=error_rate,
        error_rate_total=metrics.get("error_rate") if metrics else None,
        p50_ms=latency.get("p50"), p99_ms=latency.get("p99"),
        routing=routing_of(status), canary=canary, custodian=custodian,
        tls=_tls(inputs.tls_mode, answers.tls if answers else None, inputs.now),
        violations=int(inputs.violations.get(name, 0)),
    )
    return row, current


# -- the circuit -----------------------------------------------------------------------------------------------


def flow_run_url(ui_url: str, run_id: str) -> str:
    """A run's page in Prefect's UI (``<UI>/runs/flow-run/<id>``), or "" without a UI."""
    return f"{ui_url.rstrip('/')}/runs/flow-run/{run_id}" if ui_url and run_id else ""


def _signals(items: Sequence[Mapping[str, Any]]) -> tuple[dict[str, Any], ...]:
    keep = ("timestamp", "node_name", "direction", "method", "path", "status_code", "latency_ms", "body_bytes",
            "trace_id", "target")
    ordered = sorted(items, key=lambda s: float(s.get("timestamp") or 0.0), reverse=True)[:SIGNALS_SHOWN]
    return tuple({k: s.get(k) for k in keep} for s in ordered)


def aggregate(inputs: Inputs, previous: Mapping[str, Sample] | None = None) -> tuple[Dashboard, dict[str, Sample]]:
    """The dashboard, and the readings to compare the next one with."""
    previous = previous or {}
    rows, samples = [], {}
    for name, role in inputs.nodes:
        row, current = _node(name, role, inputs, previous.get(name))
        rows.append(row)
        if current is not None:
            samples[name] = current
    names = [name for name, _ in inputs.nodes]
    topology = layout(names, inputs.edges).to_json()
    for name, placed in topology["nodes"].items():  # what the drawing needs of each node, beside its box
        row = next(r for r in rows if r.name == name)
        placed.update(serving=row.serving, health=row.health, tone=row.tone, role=row.role)
    runs = tuple({**run, "url": flow_run_url(inputs.ui_url, str(run.get("id") or ""))}
                 for run in list(inputs.runs)[:RUNS_SHOWN])
    decisions = tuple(sorted((dict(d) for d in inputs.decisions), key=lambda d: float(d.get("timestamp") or 0.0),
                             reverse=True)[:DECISIONS_SHOWN])
    known = [r.rps for r in rows if r.rps is not None]
    totals = {"nodes": len(rows), "live": sum(r.serving == "live" for r in rows),
              "mock": sum(r.serving == "mock" for r in rows),
              "healthy": sum(r.health == "healthy" for r in rows),
              "rps": round(sum(known), 2) if known else None, "violations": inputs.violations_total,
              "tls": inputs.tls_mode}
    dashboard = Dashboard(circuit=inputs.circuit, running=inputs.running, generated_at=inputs.now, nodes=tuple(rows),
                          topology=topology, signals=_signals(inputs.signals), decisions=decisions, runs=runs,
                          runs_note=inputs.runs_note, signals_source=inputs.signals_source, totals=totals)
    return dashboard, samples
