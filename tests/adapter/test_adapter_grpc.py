"""gRPC nodes: real grpcio clients and servers through the adapter's per-call HTTP/2 proxy.

The service is a tiny ``.proto`` compiled by ``grpc_tools.protoc`` into a tmp dir. The adapter runs on its own
event loop in a thread (grpcio's sync client and server use threads of their own); everything listens on
127.0.0.1 at OS-chosen ports.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import sys
import threading
import time
from concurrent import futures
from pathlib import Path
from typing import Any, Iterator

import pytest

grpc = pytest.importorskip("grpc")
protoc = pytest.importorskip("grpc_tools.protoc")

from _adapter_support import SteadyCalls, grpc_node as adapter, on_loop, refused_port, until  # noqa: E402

PROTO = """
syntax = "proto3";
package batontest;
message Msg { string text = 1; int32 n = 2; double remaining = 3; int32 code = 4; bytes blob = 5; }
service Echo {
  rpc Unary(Msg) returns (Msg);
  rpc Server(Msg) returns (stream Msg);
  rpc Client(stream Msg) returns (Msg);
  rpc Bidi(stream Msg) returns (stream Msg);
  rpc Hold(Msg) returns (stream Msg);
}
"""


HEALTH_PROTO = """
syntax = "proto3";
package grpc.health.v1;
message HealthCheckRequest { string service = 1; }
message HealthCheckResponse {
  enum ServingStatus { UNKNOWN = 0; SERVING = 1; NOT_SERVING = 2; SERVICE_UNKNOWN = 3; }
  ServingStatus status = 1;
}
service Health { rpc Check(HealthCheckRequest) returns (HealthCheckResponse); }
"""


@pytest.fixture(scope="module")
def pb(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The compiled service: a namespace with ``pb2`` (messages) and ``grpc`` (stubs) modules."""
    out = tmp_path_factory.mktemp("proto")
    (out / "batontest.proto").write_text(PROTO)
    (out / "batonhealth.proto").write_text(HEALTH_PROTO)
    assert protoc.main(["protoc", f"-I{out}", f"--python_out={out}", f"--grpc_python_out={out}",
                        str(out / "batontest.proto"), str(out / "batonhealth.proto")]) == 0
    sys.path.insert(0, str(out))
    try:
        return type("pb", (), {"pb2": importlib.import_module("batontest_pb2"),
                               "grpc": importlib.import_module("batontest_pb2_grpc"),
                               "health_pb2": importlib.import_module("batonhealth_pb2"),
                               "health_grpc": importlib.import_module("batonhealth_pb2_grpc")})
    finally:
        sys.path.remove(str(out))


def _code(value: int) -> Any:
    return next(c for c in grpc.StatusCode if c.value[0] == value)


GATES: dict[str, tuple[threading.Event, threading.Event]] = {}  # text -> (the call arrived, let it answer)


def _servicer(pb: Any, name: str, cancelled: threading.Event | None = None, fail: int = 0) -> Any:
    msg = pb.pb2.Msg

    class Echo(pb.grpc.EchoServicer):  # type: ignore[misc, name-defined]
        def Unary(self, request: Any, context: Any) -> Any:
            if request.code or fail:
                code = request.code or fail
                context.abort(_code(code), f"failing with {code} on purpose")
            gate = GATES.get(request.text)
            if gate is not None:
                gate[0].set()
                assert gate[1].wait(30)
            remaining = context.time_remaining()
            return msg(text=f"{name}:{request.text}", remaining=-1.0 if remaining is None else remaining,
                       blob=request.blob)

        def Server(self, request: Any, context: Any) -> Iterator[Any]:
            for i in range(request.n):
                yield msg(text=f"{name}:{request.text}", n=i)

        def Client(self, requests: Any, context: Any) -> Any:
            items = []
            for r in requests:
                if r.code:  # answer at once, before the client's side ends
                    return msg(text=f"{name}:early", n=r.code)
                items.append(r.n)
            return msg(text=f"{name}:{len(items)}", n=sum(items))

        def Bidi(self, requests: Any, context: Any) -> Iterator[Any]:
            for r in requests:
                yield msg(text=f"{name}:{r.text}", n=r.n * 2)

        def Hold(self, request: Any, context: Any) -> Iterator[Any]:
            context.add_callback(cancelled.set)  # type: ignore[union-attr]
            yield msg(text=f"{name}:held")
            while context.is_active():
                time.sleep(0.01)

    return Echo()


def start_server(pb: Any, name: str, cancelled: threading.Event | None = None, fail: int = 0,
                 health: int | None = None) -> tuple[Any, int]:
    """A started grpcio server on 127.0.0.1 whose answers carry ``name`` (``fail``: every unary call fails with
    that code; ``health``: it offers grpc.health.v1 answering that serving status), and its port."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    pb.grpc.add_EchoServicer_to_server(_servicer(pb, name, cancelled, fail), server)
    if health is not None:
        class Health(pb.health_grpc.HealthServicer):  # type: ignore[misc, name-defined]
            def Check(self, request: Any, context: Any) -> Any:
                return pb.health_pb2.HealthCheckResponse(status=health)

        pb.health_grpc.add_HealthServicer_to_server(Health(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, port


@contextlib.contextmanager
def grpc_server(pb: Any, name: str, cancelled: threading.Event | None = None, fail: int = 0,
                health: int | None = None) -> Iterator[int]:
    """A grpcio server on 127.0.0.1 whose answers carry ``name``; yields its port."""
    server, port = start_server(pb, name, cancelled, fail, health)
    try:
        yield port
    finally:
        server.stop(None)


def stub(pb: Any, node: Any) -> tuple[Any, Any]:
    channel = grpc.insecure_channel(f"127.0.0.1:{node.port}")
    return channel, pb.grpc.EchoStub(channel)


def test_unary_call_through_the_adapter(pb: Any) -> None:
    with grpc_server(pb, "a") as port, adapter(backend={"port": port}) as node:
        channel, echo = stub(pb, node)
        with channel:
            reply = echo.Unary(pb.pb2.Msg(text="hi"), timeout=30)
        assert reply.text == "a:hi"
        stats = node.telemetry.targets["primary"]
        assert stats.by_grpc_code == {"OK": 1} and stats.failed == 0
        signal = node.telemetry.signals_json(1)[0]
        assert (signal["method"], signal["path"], signal["status_code"]) == ("GRPC", "/batontest.Echo/Unary", 200)
        until(lambda: not node.pool.busy)


def test_the_four_call_kinds_and_a_message_larger_than_the_windows(pb: Any) -> None:
    msg = pb.pb2.Msg
    with grpc_server(pb, "a") as port, adapter(backend={"port": port}) as node:
        channel, echo = stub(pb, node)
        with channel:
            assert [r.n for r in echo.Server(msg(text="s", n=5), timeout=30)] == [0, 1, 2, 3, 4]
            reply = echo.Client(iter([msg(n=i) for i in range(10)]), timeout=30)
            assert (reply.text, reply.n) == ("a:10", 45)
            answers = list(echo.Bidi(iter([msg(text=str(i), n=i) for i in range(20)]), timeout=30))
            assert [(r.text, r.n) for r in answers] == [(f"a:{i}", 2 * i) for i in range(20)]
            blob = bytes(range(256)) * (3 * 4096)  # 3 MiB: three times the adapter's windows, both ways
            assert echo.Unary(msg(text="big", blob=blob), timeout=60).blob == blob
        assert node.telemetry.targets["primary"].by_grpc_code == {"OK": 4}


def test_a_weighted_split_applies_per_call_on_one_channel(pb: Any) -> None:
    calls = 400
    with grpc_server(pb, "a") as a, grpc_server(pb, "b") as b, adapter(routing={
        "strategy": "weighted", "targets": [{"name": "a", "host": "127.0.0.1", "port": a, "weight": 90},
                                            {"name": "b", "host": "127.0.0.1", "port": b, "weight": 10}]},
    ) as node:
        channel, echo = stub(pb, node)
        with channel:
            served = [echo.Unary(pb.pb2.Msg(text="x"), timeout=30).text for _ in range(calls)]
        to_b = served.count("b:x")
        # Binomial(400, 0.1): mean 40, sd 6; 5 sd either side (a one-connection split would give 0 or 400)
        assert 10 <= to_b <= 70, to_b
        assert served.count("a:x") == calls - to_b
        targets = node.telemetry.targets
        assert (targets["a"].requests, targets["b"].requests) == (calls - to_b, to_b)


def test_header_rules_read_the_call_metadata(pb: Any) -> None:
    with grpc_server(pb, "a") as a, grpc_server(pb, "b") as b, adapter(routing={
        "strategy": "header", "default_target": "a", "rules": [{"header": "x-version", "value": "beta", "target": "b"}],
        "targets": [{"name": "a", "host": "127.0.0.1", "port": a}, {"name": "b", "host": "127.0.0.1", "port": b}]},
    ) as node:
        channel, echo = stub(pb, node)
        with channel:
            plain = echo.Unary(pb.pb2.Msg(text="x"), timeout=30).text
            beta = echo.Unary(pb.pb2.Msg(text="x"), timeout=30, metadata=[("x-version", "beta")]).text
        assert (plain, beta) == ("a:x", "b:x")


def test_non_ok_codes_are_failed_calls_counted_by_code(pb: Any) -> None:
    with grpc_server(pb, "a") as port, adapter(backend={"port": port}) as node:
        channel, echo = stub(pb, node)
        with channel:
            for code in (0, 5, 5, 5, 14, 14):
                if code == 0:
                    echo.Unary(pb.pb2.Msg(text="ok"), timeout=30)
                    continue
                with pytest.raises(grpc.RpcError) as info:
                    echo.Unary(pb.pb2.Msg(code=code), timeout=30)
                assert info.value.code() == _code(code)
                assert info.value.details() == f"failing with {code} on purpose"
        stats = node.telemetry.targets["primary"]
        assert stats.by_grpc_code == {"OK": 1, "NOT_FOUND": 3, "UNAVAILABLE": 2}
        assert (stats.requests, stats.failed, node.telemetry.requests_failed) == (6, 5, 5)
        assert [s["status_code"] for s in node.telemetry.signals_json()] == [200, 404, 404, 404, 503, 503]
        text = node.telemetry.prometheus()
        assert 'baton_grpc_calls_total{code="NOT_FOUND",node="api",role="service",target="primary"} 3.0' in text


def test_the_deadline_reaches_the_backend(pb: Any) -> None:
    with grpc_server(pb, "a") as port, adapter(backend={"port": port}) as node:
        channel, echo = stub(pb, node)
        with channel:
            with_deadline = echo.Unary(pb.pb2.Msg(text="d"), timeout=30).remaining
            without = echo.Unary(pb.pb2.Msg(text="d")).remaining
        assert 0 < with_deadline <= 31  # the server saw the caller's grpc-timeout (rounded up on the wire)
        assert without > 1e9  # no grpc-timeout: grpcio reports an unbounded time


def test_a_client_cancellation_reaches_the_backend(pb: Any) -> None:
    cancelled = threading.Event()
    with grpc_server(pb, "a", cancelled) as port, adapter(backend={"port": port}) as node:
        channel, echo = stub(pb, node)
        with channel:
            call = echo.Hold(pb.pb2.Msg(text="h"), timeout=60)
            assert next(call).text == "a:held"
            call.cancel()
            assert cancelled.wait(30), "the backend never saw the cancellation"
        until(lambda: node.telemetry.targets["primary"].by_grpc_code == {"CANCELLED": 1})
        until(lambda: not node.pool.busy)


def test_no_reachable_backend_is_unavailable(pb: Any) -> None:
    with adapter(backend={"port": refused_port()}) as node:
        channel, echo = stub(pb, node)
        with channel:
            with pytest.raises(grpc.RpcError) as info:
                echo.Unary(pb.pb2.Msg(text="x"), timeout=30)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        until(lambda: node.telemetry.requests_failed == 1)


def test_a_tls_client_reaches_an_h2c_backend(pb: Any, tmp_path: Path) -> None:
    from _tls_support import TestCA

    ca = TestCA()
    cert, key = ca.issue().write(tmp_path, "api")
    with grpc_server(pb, "a") as port, adapter(backend={"port": port},
                                               tls={"cert_file": str(cert), "key_file": str(key)}) as node:
        credentials = grpc.ssl_channel_credentials(root_certificates=ca.pem)
        with grpc.secure_channel(f"127.0.0.1:{node.port}", credentials,
                                 options=[("grpc.ssl_target_name_override", "api.test")]) as channel:
            reply = pb.grpc.EchoStub(channel).Unary(pb.pb2.Msg(text="tls"), timeout=30)
        assert reply.text == "a:tls"


def test_a_swap_under_steady_calls_fails_none(pb: Any) -> None:
    from baton_adapter.routing import RoutingTable

    old_server, old = start_server(pb, "old")
    try:
        with grpc_server(pb, "new") as new, adapter(backend={"port": old}) as node:
            channel, echo = stub(pb, node)
            with channel, SteadyCalls(lambda: echo.Unary(pb.pb2.Msg(text="x"), timeout=30).text) as load:
                until(lambda: load.served.count("old:x") >= 50)
                table = RoutingTable.from_mapping({"strategy": "single", "targets": [
                    {"name": "primary", "host": "127.0.0.1", "port": new}]})

                async def swap_and_drain() -> dict[str, Any]:
                    node.set_routing(table)
                    return await node.drain(30, ("127.0.0.1", old))

                assert on_loop(node, swap_and_drain())["drained"]
                old_server.stop(None)  # killed the moment the drain returns
                until(lambda: load.served.count("new:x") >= 50)
            failed = load.failed
            assert failed == []
    finally:
        old_server.stop(None)


def test_calls_answered_before_the_client_ends_its_side_free_their_streams(pb: Any) -> None:
    msg = pb.pb2.Msg
    with grpc_server(pb, "a") as port, adapter(backend={"port": port}) as node:
        channel, echo = stub(pb, node)
        with channel:
            for _ in range(150):  # more than a backend's usual 100 concurrent streams
                ended = threading.Event()

                def requests() -> Iterator[Any]:
                    yield msg(code=7)
                    ended.wait(30)  # the client's side stays open until the answer came

                reply = echo.Client(requests(), timeout=30)
                ended.set()
                assert reply.text == "a:early"
        until(lambda: node.telemetry.targets["primary"].by_grpc_code == {"OK": 150})
        until(lambda: not node.pool.busy)


def test_a_canary_failing_on_grpc_status_codes_is_rolled_back(pb: Any) -> None:
    canary_mod = pytest.importorskip("baton.canary")
    totals = pytest.importorskip("tasks.canary")._totals
    with grpc_server(pb, "stable") as stable, grpc_server(pb, "canary", fail=13) as canary, adapter(routing={
        "strategy": "canary", "targets": [{"name": "stable", "host": "127.0.0.1", "port": stable, "weight": 75},
                                          {"name": "canary", "host": "127.0.0.1", "port": canary, "weight": 25}]},
    ) as node:
        channel, echo = stub(pb, node)
        with channel:
            for _ in range(200):
                try:
                    echo.Unary(pb.pb2.Msg(text="x"), timeout=30)
                except grpc.RpcError as exc:
                    assert exc.code() == grpc.StatusCode.INTERNAL
        metrics = node.telemetry.targets_json()  # what GET /routing's target_metrics carries
        seen = {name: canary_mod.TargetStats(**totals(metrics[name])) for name in ("stable", "canary")}
        assert seen["stable"].errors == 0 and seen["canary"].errors == seen["canary"].requests >= 20
        assert metrics["canary"]["grpc_status"] == {"INTERNAL": seen["canary"].requests}
        observation = canary_mod.Observation(canary_mod.Phase.PROGRESSING, 25, seen["canary"], seen["stable"])
        decision = canary_mod.decide(canary_mod.CanaryPolicy(), observation, now=60.0)
        assert decision.phase is canary_mod.Phase.FAILED and decision.weight == 0, decision.reason
        assert "canary error rate 100.0%" in decision.reason


def test_health_asks_grpc_health_v1_when_offered_else_connects(pb: Any) -> None:
    with grpc_server(pb, "s", health=1) as serving, grpc_server(pb, "n", health=2) as not_serving, \
            grpc_server(pb, "p") as plain, adapter(routing={"strategy": "weighted", "targets": [
                {"name": "serving", "host": "127.0.0.1", "port": serving, "weight": 40},
                {"name": "not_serving", "host": "127.0.0.1", "port": not_serving, "weight": 30},
                {"name": "plain", "host": "127.0.0.1", "port": plain, "weight": 20},
                {"name": "gone", "host": "127.0.0.1", "port": refused_port(), "weight": 10}]}) as node:
        health = on_loop(node, node.health())
    assert health["verdict"] == "degraded"
    details = dict(part.split(": ", 1) for part in health["detail"].split("; "))
    assert details["serving"] == f"grpc health check on 127.0.0.1:{serving} answered SERVING"
    assert details["not_serving"] == f"grpc health check on 127.0.0.1:{not_serving} answered NOT_SERVING"
    assert details["plain"] == f"127.0.0.1:{plain} offers no grpc.health.v1 and accepted the connection"
    assert details["gone"].startswith("grpc health check on 127.0.0.1:")


def test_shutdown_lets_the_calls_in_flight_finish(pb: Any) -> None:
    arrived, answer = GATES["slow"] = (threading.Event(), threading.Event())
    try:
        with grpc_server(pb, "a") as port, adapter(backend={"port": port}) as node:
            channel, echo = stub(pb, node)
            with channel:
                pending = echo.Unary.future(pb.pb2.Msg(text="slow"), timeout=30)
                assert arrived.wait(30)
                stopping = asyncio.run_coroutine_threadsafe(node.stop(grace_s=30), node.loop)
                until(lambda: node.closing)
                answer.set()
                assert pending.result(30).text == "a:slow"
                stopping.result(30)
            assert node.telemetry.targets["primary"].by_grpc_code == {"OK": 1}
    finally:
        answer.set()
        GATES.pop("slow", None)
