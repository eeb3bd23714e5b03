"""Request spans: one OpenTelemetry server span per client request, exported over OTLP/HTTP in the background.

A node with a ``tracing`` section gets a :class:`SpanRecorder`. When a request finishes, the exchange hands it
the request's facts and the recorder appends one tuple to its exporter's queue; that is all the request path
does (with tracing off, the exchange checks one attribute). The span continues the request's W3C trace: the
same trace id as the incoming ``traceparent``, the incoming span as its parent, and as its own id the span id
the adapter sent upstream in its ``traceparent`` (so the backend's spans hang under the adapter's). Requests
answered without a backend (a mock, a 503) get ids of their own.

An :class:`OtlpExporter` per endpoint and process (shared by the nodes the process hosts) wakes every
``EXPORT_INTERVAL_S`` (or as soon as ``WAKE_AT`` spans wait), encodes what waits then (:mod:`.otlp`, grouped by
node: one resource per node, ``service.name`` the node's name; ``ENCODE_CHUNK`` spans between two turns of the
event loop, so requests are served meanwhile) and POSTs it, ``MAX_BATCH`` spans a request. The
queue is bounded (``queue_size``): past it new spans are dropped and counted; spans of a request the collector
refused or did not answer in time are dropped and counted too, and the exporter then waits (1 s, doubling to
30 s) before posting again, dropping what arrives meanwhile. Nothing is ever retried or buffered beyond the
queue, so a collector that is down costs a counter increment per request. The counts are in the node's
Prometheus exposition as ``baton_trace_spans_total{outcome}``.

Attributes of a span: ``http.request.method``, ``url.path``, ``http.route`` (when the contract documents the
path), ``http.response.status_code``, ``baton.node``, ``baton.target`` and ``baton.request.classifications``:
the sorted ``x-data-classification`` values the node's contract declares for the operation (when any). Status
ERROR for a 5xx or no response. Sampling: a request whose incoming ``traceparent`` says not sampled is not
recorded; of the others, ``sample_rate`` by trace id (the low 64 bits, so every adapter of a trace agrees).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import deque
from random import getrandbits
from typing import TYPE_CHECKING, Any

from . import otlp
from .classification import Classifier

if TYPE_CHECKING:
    from .config import TracingConfig

__all__ = ["EXPORT_INTERVAL_S", "OtlpExporter", "SpanRecorder"]

log = logging.getLogger(__name__)
EXPORT_INTERVAL_S = 0.5
WAKE_AT = 1024  # spans waiting that wake the exporter before its interval
MAX_BATCH = 1024  # spans per POST
ENCODE_CHUNK = 128  # spans encoded between two turns of the event loop (about 0.15 ms)
POST_TIMEOUT_S = 5.0
BACKOFF_S, BACKOFF_MAX_S = 1.0, 30.0
CLOSE_FLUSH_S = 2.0  # how long a stopping exporter tries to post what waits
SCOPE = ("baton_adapter", "0.1.0")
_TRACEPARENT = re.compile(rb"^[0-9a-f]{2}-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
_perf = time.perf_counter
_MAX_TAILS = 4096  # cached encodings of (method, target URL, status, routing target)


class SpanRecorder:
    """One node's side of tracing: the hot-path ``record``, the node's resource and its span counters."""

    __slots__ = ("node", "role", "instance", "config", "exporter", "queue", "limit", "classifier", "loading",
                 "contract", "resource", "tails", "dropped", "exported", "failed", "unsampled", "_ratio_bound")

    def __init__(self, node: str, role: str, instance: str, contract: str | None, config: TracingConfig) -> None:
        self.node, self.role, self.instance, self.config = node, role, instance, config
        self.exporter = OtlpExporter.shared(config)
        self.queue = self.exporter.queue
        self.limit = config.queue_size
        self.classifier = Classifier()
        self.loading: asyncio.Future[Classifier] | None = None
        self.contract = contract
        resource: list[tuple[str, Any]] = [("service.name", node), ("service.instance.id", instance or "-")]
        if config.service_namespace:
            resource.append(("service.namespace", config.service_namespace))
        resource += [("baton.node", node), ("baton.role", role), ("telemetry.sdk.name", "baton-adapter"),
                     ("telemetry.sdk.language", "python")]
        self.resource = resource
        self.tails: dict[tuple[bytes, bytes, int, str], tuple[bytes, bytes]] = {}
        self.dropped = self.exported = self.failed = self.unsampled = 0
        self._ratio_bound = int(config.sample_rate * (1 << 64))

    # -- lifecycle (the node's start and stop) --------------------------------------------------------------

    def start(self) -> None:
        """Load the contract's classifications in a thread and join the exporter (called by the node's start)."""
        loop = asyncio.get_running_loop()
        if self.loading is None:
            self.loading = loop.run_in_executor(None, Classifier.load, self.contract, self.node)
        self.exporter.acquire(self)

    async def stop(self) -> None:
        """Leave the exporter; the last node to leave flushes what waits (within ``CLOSE_FLUSH_S``) and closes it."""
        await self.exporter.release(self)

    async def ready(self) -> None:
        """Wait until the classifications are loaded (the exporter does before encoding this node's spans)."""
        loading = self.loading
        if loading is not None:
            self.classifier = await loading
            self.loading = None

    # -- the request path -----------------------------------------------------------------------------------

    def record(self, method: bytes, url: bytes, status: int, started: float, trace_id: str, span_id: str,
               incoming: bytes | None, target: str) -> None:
        """A request finished: queue its span (``started``: its ``perf_counter`` start; ``incoming``: the
        client's traceparent; ``trace_id``/``span_id``: what the adapter sent upstream, empty when nothing)."""
        queue = self.queue
        if len(queue) >= self.limit:
            self.dropped += 1
            return
        queue.append((self, method, url, status, started, _perf(), trace_id, span_id, incoming, target))
        if len(queue) == WAKE_AT:
            self.exporter.wake()

    # -- encoding (in the exporter's task) ------------------------------------------------------------------

    def encode(self, item: tuple[Any, ...], offset_ns: int) -> bytes | None:
        """One queued request as an encoded span (None when it is not sampled)."""
        _, method, url, status, started, ended, trace_id, span_id, incoming, target = item
        parent = b""
        if incoming is not None:
            m = _TRACEPARENT.match(incoming.strip().lower())
            if m is not None and m.group(1) != b"0" * 32:
                if not int(m.group(3), 16) & 1:
                    self.unsampled += 1
                    return None
                trace_id = trace_id or m.group(1).decode()
                parent = bytes.fromhex(m.group(2).decode())
        if not trace_id:
            trace_id = "%032x" % (getrandbits(128) or 1)
        if self._ratio_bound < (1 << 64) and int(trace_id[16:], 16) >= self._ratio_bound:
            self.unsampled += 1
            return None
        span_bytes = bytes.fromhex(span_id) if span_id else (getrandbits(64) or 1).to_bytes(8, "big")
        key = (method, url, status, target)
        cached = self.tails.get(key)
        if cached is None:
            cached = self._tail(method, url.partition(b"?")[0], status, target)
            if len(self.tails) < _MAX_TAILS:
                self.tails[key] = cached
        return otlp.span(bytes.fromhex(trace_id), span_bytes, parent, cached[0],
                         int(started * 1e9) + offset_ns, int(ended * 1e9) + offset_ns, cached[1])

    def _tail(self, method: bytes, path: bytes, status: int, target: str) -> tuple[bytes, bytes]:
        """The name and kind, and the attributes and status, of every span of this request line, status and
        target (cached: the same few requests make most spans)."""
        route, classes = self.classifier.lookup(method, path)
        verb = method.decode("latin-1")
        parts = [otlp.attribute("http.request.method", verb), otlp.attribute("http.response.status_code", status),
                 otlp.attribute("url.path", path.decode("latin-1")), otlp.attribute("baton.node", self.node),
                 otlp.attribute("baton.target", target)]
        if route:
            parts.append(otlp.attribute("http.route", route))
        if classes:
            parts.append(otlp.attribute("baton.request.classifications", list(classes)))
        if status >= 500 or status < 100:
            parts.append(otlp.status(otlp.STATUS_ERROR, f"HTTP {status}" if status else "no response"))
        return otlp.span_head(f"{verb} {route}" if route else verb), b"".join(parts)

    def families(self) -> list[Any]:
        """The span counters as a prometheus_client family (for the node's exposition)."""
        from prometheus_client.metrics_core import CounterMetricFamily

        spans = CounterMetricFamily("baton_trace_spans", "Request spans by outcome: exported, dropped (the queue "
                                    "was full), failed (the collector refused or did not answer), unsampled.",
                                    labels=["node", "role", "outcome"])
        for outcome, value in (("exported", self.exported), ("dropped", self.dropped), ("failed", self.failed),
                               ("unsampled", self.unsampled)):
            spans.add_metric([self.node, self.role, outcome], value)
        return [spans]


class OtlpExporter:
    """The queue of finished spans of every node of this process that exports to one endpoint, and the task
    that posts them."""

    _shared: dict[str, OtlpExporter] = {}

    def __init__(self, url: str, queue_size: int) -> None:
        self.url = url
        self.queue: deque[tuple[Any, ...]] = deque()
        self.queue_size = queue_size
        self.users: set[SpanRecorder] = set()
        self.task: asyncio.Task[None] | None = None
        self.session: Any = None
        self.event: asyncio.Event | None = None
        self.resume_at = 0.0  # monotonic time before which nothing is posted (after a failure)
        self.backoff = 0.0
        self.posts = 0

    @classmethod
    def shared(cls, config: TracingConfig) -> OtlpExporter:
        exporter = cls._shared.get(config.traces_url)
        if exporter is None:
            exporter = cls._shared[config.traces_url] = cls(config.traces_url, config.queue_size)
        return exporter

    def acquire(self, recorder: SpanRecorder) -> None:
        self.users.add(recorder)
        if self.task is None:
            self.event = asyncio.Event()
            self.task = asyncio.get_running_loop().create_task(self._run(), name=f"otlp-export {self.url}")

    async def release(self, recorder: SpanRecorder) -> None:
        self.users.discard(recorder)
        if self.users or self.task is None:
            return
        task, self.task = self.task, None
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        try:
            await asyncio.wait_for(self.flush(), CLOSE_FLUSH_S)
        except (TimeoutError, asyncio.TimeoutError):
            pass
        self._drop_all()
        if self.session is not None:
            await self.session.close()
            self.session = None
        if self._shared.get(self.url) is self:
            del self._shared[self.url]

    def wake(self) -> None:
        if self.event is not None:
            self.event.set()

    async def _run(self) -> None:
        event = self.event
        assert event is not None
        while True:
            try:
                await asyncio.wait_for(event.wait(), EXPORT_INTERVAL_S)
            except (TimeoutError, asyncio.TimeoutError):
                pass
            event.clear()
            try:
                await self.flush()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - the exporter must outlive any one batch
                log.exception("exporting spans to %s failed", self.url)

    async def flush(self) -> None:
        """Encode and post the spans waiting now, a batch at a time (or drop them while backing off). Spans that
        arrive meanwhile wait for the next wake: posting each handful as it comes would cost a request each."""
        queue = self.queue
        pending = len(queue)
        while pending > 0 and queue:
            if time.monotonic() < self.resume_at:
                self._drop_all()
                return
            batch = [queue.popleft() for _ in range(min(MAX_BATCH, pending, len(queue)))]
            pending -= len(batch)
            for recorder in {item[0] for item in batch}:
                await recorder.ready()
            bodies: list[bytes] = []
            counts: dict[SpanRecorder, int] = {}
            for start in range(0, len(batch), ENCODE_CHUNK):  # the loop serves requests between chunks
                part, chunk_counts = self._encode(batch[start:start + ENCODE_CHUNK])
                bodies.append(part)
                for recorder, n in chunk_counts.items():
                    counts[recorder] = counts.get(recorder, 0) + n
                await asyncio.sleep(0)
            body = b"".join(bodies)  # concatenated messages are one message: their resource_spans in a row
            if body and not await self._post(body):
                for recorder, n in counts.items():
                    recorder.failed += n
                continue
            for recorder, n in counts.items():
                recorder.exported += n

    def _encode(self, batch: list[tuple[Any, ...]]) -> tuple[bytes, dict[SpanRecorder, int]]:
        offset_ns = time.time_ns() - int(_perf() * 1e9)
        spans: dict[SpanRecorder, list[bytes]] = {}
        for item in batch:
            encoded = item[0].encode(item, offset_ns)
            if encoded is not None:
                spans.setdefault(item[0], []).append(encoded)
        body = otlp.trace_request(otlp.resource_spans(r.resource, SCOPE, s) for r, s in spans.items())
        return body, {r: len(s) for r, s in spans.items()}

    async def _post(self, body: bytes) -> bool:
        import aiohttp

        if self.session is None:
            self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=POST_TIMEOUT_S, connect=2.0))
        self.posts += 1
        try:
            async with self.session.post(self.url, data=body,
                                         headers={"Content-Type": "application/x-protobuf"}) as resp:
                await resp.read()
                ok = 200 <= resp.status < 300
                why = f"HTTP {resp.status}"
        except (aiohttp.ClientError, TimeoutError, asyncio.TimeoutError, OSError) as exc:
            ok, why = False, type(exc).__name__
        if ok:
            self.backoff = 0.0
            return True
        self.backoff = min(BACKOFF_MAX_S, max(BACKOFF_S, 2 * self.backoff))
        self.resume_at = time.monotonic() + self.backoff
        log.warning("the OTLP collector at %s refused spans (%s); dropping spans for %.0f s", self.url, why,
                    self.backoff)
        return False

    def _drop_all(self) -> None:
        queue = self.queue
        while queue:
            queue.popleft()[0].failed += 1
