"""Trace context through grpc nodes: every call's backend gets a ``traceparent`` continuing the caller's trace
with the adapter's span as parent (or a new trace), the call's signal carries both ids, and with tracing on
the adapter exports one span per call. Real grpcio client and server, a real OTLP receiver (tests/)."""

from __future__ import annotations

import re
import secrets
from concurrent import futures
from typing import Any

import pytest

grpc = pytest.importorskip("grpc")

from _adapter_support import grpc_node as adapter  # noqa: E402
from otlp_receiver import OtlpReceiver  # noqa: E402

TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-0[01]$")


def _server() -> tuple[Any, int]:
    """A grpcio server whose /t.Trace/Seen answers the traceparent its call arrived with (raw bytes, no .proto)."""
    def seen(request: bytes, context: Any) -> bytes:
        return dict(context.invocation_metadata()).get("traceparent", "").encode()

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
        "t.Trace", {"Seen": grpc.unary_unary_rpc_method_handler(seen)}),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, port


def test_a_call_continues_the_callers_trace_and_is_exported_as_a_span() -> None:
    trace, client_span = secrets.token_hex(16), secrets.token_hex(8)
    server, port = _server()
    try:
        with OtlpReceiver() as receiver, adapter(backend={"port": port},
                                                 tracing={"otlp_endpoint": receiver.endpoint}) as node:
            with grpc.insecure_channel(f"127.0.0.1:{node.port}") as channel:
                seen = channel.unary_unary("/t.Trace/Seen")
                got = seen(b"", metadata=[("traceparent", f"00-{trace}-{client_span}-01")], timeout=30).decode()
                fresh = seen(b"", timeout=30).decode()
            m = TRACEPARENT.match(got)
            assert m is not None and m.group(1) == trace and m.group(2) != client_span
            signal = node.telemetry.signals_json(2)[0]
            assert (signal["method"], signal["trace_id"], signal["span_id"]) == ("GRPC", trace, m.group(2))
            spans = receiver.wait_for(lambda spans: [s for s in spans if s.trace_id == trace], "the call's span")
            span = spans[0]
            assert (span.parent_span_id, span.span_id) == (client_span, m.group(2))
            assert span.name == "GRPC" and span.attributes["url.path"] == "/t.Trace/Seen"
            assert span.attributes["http.response.status_code"] == 200
            # without a traceparent the call starts a trace of its own
            n = TRACEPARENT.match(fresh)
            assert n is not None and n.group(1) != trace
            assert node.telemetry.signals_json(1)[0]["trace_id"] == n.group(1)
    finally:
        server.stop(None)
