"""A node's Prometheus text exposition (format 0.0.4), rendered only when scraped.

A collector reads the node's counters (``telemetry.NodeTelemetry``, which calls :func:`render`) at scrape time and yields
prometheus_client's metric families, which its own writer renders with one ``# HELP`` and one ``# TYPE`` per
family, counters as ``<name>_total`` and label values escaped: what ``promtool check metrics`` accepts. Nothing
is registered anywhere and nothing runs on the request path; prometheus_client is imported at the first scrape.

Families (labels ``node`` and ``role`` on every sample, the original Baton's names where it had them)::

    baton_requests_total{target, status_class}     counter    client requests finished
    baton_requests_failed_total                    counter    ... that ended in a 5xx or a connection error
    baton_attempts_total{target, outcome}          counter    upstream attempts (retries included)
    baton_latency_seconds{target}                  histogram  client request latency through the adapter
    baton_active_connections, baton_active_requests  gauges
    baton_bytes_received_total, baton_bytes_sent_total  counters of body bytes
    baton_breaker_open{target, state}              gauge      1 while a target's breaker is open or half-open

and, on ``grpc`` nodes, ``baton_grpc_calls_total{target, code}`` (calls by ``grpc-status`` name, e.g. OK,
UNAVAILABLE); on ``soap`` nodes, ``baton_soap_faults_total{target}`` (responses carrying a ``soap:Fault``, each also
a failed request); and, once a node has had stream connections (``tcp``, ``protobuf``; see ``streams``)::

    baton_stream_connections_opened_total{target}  counter    connections opened to a target
    baton_stream_connections_closed_total{target}  counter    ... that have ended
    baton_stream_connection_seconds{target}        histogram  how long they lasted
    baton_stream_bytes_total{target, direction}    counter    bytes relayed (in: from clients, out: to them)
    baton_stream_frames_total{target, direction}   counter    whole frames relayed (protobuf)
    baton_stream_errors_total{target, reason}      counter    frame too large, frame cut, idle timeout, ...
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

__all__ = ["CONTENT_TYPE", "render"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _histogram(family: Any, labels: list[str], bounds: Sequence[float], counts: Sequence[int], total: float) -> None:
    cumulative, buckets = 0, []
    for bound, count in zip(bounds, counts, strict=False):
        cumulative += count
        buckets.append((repr(bound), cumulative))
    buckets.append(("+Inf", cumulative + counts[-1]))
    family.add_metric(labels, buckets, total)


def _families(telemetry: Any, breakers: dict[str, str], bounds: Sequence[float]) -> Iterator[Any]:
    from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

    base = [telemetry.node, telemetry.role]
    targets = list(telemetry.targets.items())  # a snapshot: the loop is ours while we render

    requests = CounterMetricFamily("baton_requests", "Client requests finished, by target and status class.",
                                   labels=["node", "role", "target", "status_class"])
    for name, stats in targets:
        for cls, n in stats.by_class.items():
            requests.add_metric([*base, name, cls], n)
    yield requests
    failed = CounterMetricFamily("baton_requests_failed", "Client requests that ended in a 5xx or a connection "
                                 "error.", labels=["node", "role"])
    failed.add_metric(base, telemetry.requests_failed)
    yield failed
    attempts = CounterMetricFamily("baton_attempts", "Upstream attempts by target and outcome (retries included).",
                                   labels=["node", "role", "target", "outcome"])
    for name, stats in targets:
        for outcome, n in stats.attempts.items():
            attempts.add_metric([*base, name, outcome], n)
    yield attempts
    latency = HistogramMetricFamily("baton_latency_seconds", "Client request latency through the adapter.",
                                    labels=["node", "role", "target"])
    for name, stats in targets:
        _histogram(latency, [*base, name], bounds, stats.buckets, stats.latency_sum)
    yield latency
    for metric, help_text, value in (
        ("baton_active_connections", "Open client connections on the data port.", telemetry.active_connections),
        ("baton_active_requests", "Client requests in flight.", telemetry.active_requests),
    ):
        gauge = GaugeMetricFamily(metric, help_text, labels=["node", "role"])
        gauge.add_metric(base, value)
        yield gauge
    for metric, help_text, value in (
        ("baton_bytes_received", "Request body bytes received from clients.", telemetry.bytes_in),
        ("baton_bytes_sent", "Response body bytes sent to clients.", telemetry.bytes_out),
    ):
        counter = CounterMetricFamily(metric, help_text, labels=["node", "role"])
        counter.add_metric(base, value)
        yield counter
    if breakers:
        breaker = GaugeMetricFamily("baton_breaker_open", "1 when a target's circuit breaker is open or half-open.",
                                    labels=["node", "role", "target", "state"])
        for name, state in breakers.items():
            breaker.add_metric([*base, name, state], 0 if state == "closed" else 1)
        yield breaker
    grpc = [(name, stats.by_grpc_code) for name, stats in targets if stats.grpc_codes]
    if grpc:
        calls = CounterMetricFamily("baton_grpc_calls", "gRPC calls finished, by target and grpc-status code.",
                                    labels=["node", "role", "target", "code"])
        for name, codes in grpc:
            for code, n in codes.items():
                calls.add_metric([*base, name, code], n)
        yield calls
    faults = [(name, stats.soap_faults) for name, stats in targets if stats.soap_faults]
    if faults:
        soap = CounterMetricFamily("baton_soap_faults", "Responses carrying a soap:Fault, by target (each also a "
                                   "failed request).", labels=["node", "role", "target"])
        for name, n in faults:
            soap.add_metric([*base, name], n)
        yield soap
    if telemetry.streams.targets:
        yield from _stream_families(base, list(telemetry.streams.targets.items()))


def _stream_families(base: list[str], targets: list[tuple[str, Any]]) -> Iterator[Any]:
    from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily

    from .streams import DURATION_BOUNDS

    labels = ["node", "role", "target"]
    for metric, help_text, attr in (
        ("baton_stream_connections_opened", "Stream connections opened to a target.", "opened"),
        ("baton_stream_connections_closed", "Stream connections to a target that have ended.", "closed"),
    ):
        counter = CounterMetricFamily(metric, help_text, labels=labels)
        for name, stats in targets:
            counter.add_metric([*base, name], getattr(stats, attr))
        yield counter
    durations = HistogramMetricFamily("baton_stream_connection_seconds", "How long stream connections lasted.",
                                      labels=labels)
    for name, stats in targets:
        _histogram(durations, [*base, name], DURATION_BOUNDS, stats.buckets, stats.duration_sum)
    yield durations
    for metric, help_text, attrs in (
        ("baton_stream_bytes", "Bytes relayed on stream connections (in: from clients, out: to clients).",
         ("bytes_in", "bytes_out")),
        ("baton_stream_frames", "Whole frames relayed on stream connections (in: from clients, out: to clients).",
         ("frames_in", "frames_out")),
    ):
        counter = CounterMetricFamily(metric, help_text, labels=[*labels, "direction"])
        for name, stats in targets:
            counter.add_metric([*base, name, "in"], getattr(stats, attrs[0]))
            counter.add_metric([*base, name, "out"], getattr(stats, attrs[1]))
        yield counter
    errors = CounterMetricFamily("baton_stream_errors", "Stream connections ended badly, by reason.",
                                 labels=[*labels, "reason"])
    for name, stats in targets:
        for reason, n in stats.errors.items():
            errors.add_metric([*base, name, reason], n)
    yield errors


class _Collector:
    """What prometheus_client's writer asks for: ``collect()`` yielding metric families."""

    def __init__(self, families: Iterable[Any]) -> None:
        self._families = families

    def collect(self) -> Iterable[Any]:
        return self._families


def render(telemetry: Any, breakers: dict[str, str], bounds: Sequence[float],
           extra: Iterable[Any] | None = None) -> str:
    """The exposition of a node's ``telemetry`` (a ``NodeTelemetry``, its latency histograms' upper ``bounds``);
    ``extra``: more prometheus_client metric families (the tracer's counters)."""
    from prometheus_client.exposition import generate_latest

    families = [*_families(telemetry, breakers, bounds), *(extra or ())]
    return generate_latest(_Collector(families)).decode("utf-8")  # type: ignore[arg-type]
