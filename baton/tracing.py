"""Spans of flow runs: one OpenTelemetry span per topology action run, exported over OTLP/HTTP when
``observability.otlp_endpoint`` is set (nothing is imported, built or sent when it is not).

Every action runs through :func:`baton.cli.flowrun.run_in_loop` (the conductor's runs and local ones alike),
which wraps the flow call in :func:`flow_span`. The span is named ``baton <action>`` and carries
``baton.action``, ``baton.circuit``, ``baton.node`` (when the action has one), ``baton.actor``, the Prefect flow
run's id, name and final state (``prefect.flow_run.id``, ``prefect.flow_run.name``, ``prefect.flow_run.state``,
learnt from the flow's state hooks), and status ERROR when the run did not complete. Its resource is
``service.name`` ``baton``, ``service.namespace`` the circuit (or ``observability.service_name``).

The OpenTelemetry SDK is used here (a span per flow run costs nothing that matters beside a flow run): one
tracer provider per collector and namespace per process, with a batch processor that exports every 0.5 s in its
own thread (a 5 s timeout per request) and flushes at exit.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["FlowSpan", "flow_span", "traces_url"]

EXPORT_DELAY_MS = 500
EXPORT_TIMEOUT_S = 5.0
_providers: dict[tuple[str, str], Any] = {}
_lock = threading.Lock()


def traces_url(endpoint: str) -> str:
    """The collector's traces URL: ``endpoint`` itself when it ends in ``/v1/traces``, else that path added."""
    base = endpoint.rstrip("/")
    return base if base.endswith("/v1/traces") else base + "/v1/traces"


def _tracer(endpoint: str, namespace: str) -> Any:
    key = (traces_url(endpoint), namespace)
    with _lock:
        provider = _providers.get(key)
        if provider is None:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor

            provider = TracerProvider(resource=Resource.create({"service.name": "baton",
                                                                "service.namespace": namespace}))
            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=key[0], timeout=EXPORT_TIMEOUT_S),
                                                           schedule_delay_millis=EXPORT_DELAY_MS))
            _providers[key] = provider
    return provider.get_tracer("baton.flows")


@dataclass
class FlowSpan:
    """What the span learns while the run goes: the flow run (from its state hooks)."""

    span: Any = None
    run: dict[str, str] = field(default_factory=dict)

    def hooked(self, flow: Any) -> Any:
        """``flow`` with a state hook on every end (completed, failed, crashed, cancelled) that notes the run."""
        def note(_flow: Any, flow_run: Any, state: Any) -> None:
            self.run.update({"prefect.flow_run.id": str(flow_run.id), "prefect.flow_run.name": str(flow_run.name),
                             "prefect.flow_run.state": str(state.name)})

        if self.span is None:
            return flow
        return flow.with_options(on_completion=[*flow.on_completion_hooks, note],
                                 on_failure=[*flow.on_failure_hooks, note],
                                 on_crashed=[*flow.on_crashed_hooks, note],
                                 on_cancellation=[*flow.on_cancellation_hooks, note])


@contextlib.asynccontextmanager
async def flow_span(config: Any, action: str, params: Mapping[str, Any], actor: str) -> AsyncIterator[FlowSpan]:
    """A span around one run of ``action`` (a no-op without ``observability.otlp_endpoint``)."""
    observability = config.observability
    if not observability.otlp_endpoint:
        yield FlowSpan()
        return
    from opentelemetry.trace import SpanKind, Status, StatusCode

    tracer = _tracer(observability.otlp_endpoint, observability.service_name or config.name)
    attributes = {"baton.action": action, "baton.circuit": config.name, "baton.actor": actor}
    if params.get("node"):
        attributes["baton.node"] = str(params["node"])
    with tracer.start_as_current_span(f"baton {action}", kind=SpanKind.INTERNAL, attributes=attributes,
                                      record_exception=True, set_status_on_exception=True) as span:
        noted = FlowSpan(span)
        try:
            yield noted
        finally:
            span.set_attributes(noted.run)
            state = noted.run.get("prefect.flow_run.state")
            if state is not None and state != "Completed":
                span.set_status(Status(StatusCode.ERROR, f"the flow run ended {state}"))
