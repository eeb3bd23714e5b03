"""gRPC calls nothing was sent for: routed again past a dead backend, held until a heal puts a backend in
(none lost), failed UNAVAILABLE once their hold ends, let go when the client cancels. Real grpcio clients and
servers through a grpc node on 127.0.0.1."""

from __future__ import annotations

from concurrent import futures
from typing import Any

import pytest

grpc = pytest.importorskip("grpc")

from _adapter_support import SteadyCalls, grpc_node as adapter, on_loop, refused_port, until  # noqa: E402
from test_adapter_grpc import grpc_server, pb, start_server, stub  # noqa: E402,F401  (pb: the fixture)


def _single(port: int) -> Any:
    from baton_adapter.routing import RoutingTable

    return RoutingTable.from_mapping({"strategy": "single", "targets": [
        {"name": "primary", "host": "127.0.0.1", "port": port}]})


def test_calls_routed_to_a_dead_backend_are_sent_to_the_live_one(pb: Any) -> None:
    with grpc_server(pb, "live") as live, adapter(routing={"strategy": "weighted", "targets": [
            {"name": "dead", "host": "127.0.0.1", "port": refused_port(), "weight": 50},
            {"name": "live", "host": "127.0.0.1", "port": live, "weight": 50}]}) as node:
        channel, echo = stub(pb, node)
        with channel:
            answers = [echo.Unary(pb.pb2.Msg(text=str(i)), timeout=30).text for i in range(60)]
        assert answers == [f"live:{i}" for i in range(60)]
        metrics = node.telemetry.targets_json()
        assert metrics["live"]["requests"] == 60 and metrics.get("dead", {}).get("requests", 0) == 0
        assert not node.pool.busy and not node.held


def test_calls_to_a_killed_backend_hold_until_the_heal_and_none_fails(pb: Any) -> None:
    server, old = start_server(pb, "old")
    with grpc_server(pb, "healed") as healed, adapter(backend={"port": old}, limits={"hold_s": 30}) as node:
        channel, echo = stub(pb, node)
        with channel:
            assert echo.Unary(pb.pb2.Msg(text="before"), timeout=30).text == "old:before"
            server.stop(None)  # the only backend dies between calls (nothing in flight on it)
            with futures.ThreadPoolExecutor(8) as pool:
                calls = [pool.submit(lambda i=i: echo.Unary(pb.pb2.Msg(text=str(i)), timeout=60).text)
                         for i in range(8)]
                until(lambda: len(node.held) == 8, 30)  # every call waits for a backend, none failed
                assert not any(c.done() for c in calls)
                on_loop(node, _heal(node, healed))  # what the custodian's heal does: a new backend in the table
                assert sorted(c.result(60) for c in calls) == sorted(f"healed:{i}" for i in range(8))
        assert not node.held and not node.pool.busy and node.telemetry.active_requests == 0
        assert node.telemetry.targets_json()["primary"]["grpc_status"] == {"OK": 9}


async def _heal(node: Any, port: int) -> None:
    node.set_routing(_single(port))


def test_a_held_call_fails_unavailable_once_its_hold_ends_and_at_once_without_one(pb: Any) -> None:
    dead = refused_port()
    with adapter(backend={"port": dead}, limits={"hold_s": 0.5}) as node:
        channel, echo = stub(pb, node)
        with channel, pytest.raises(grpc.RpcError) as failed:
            echo.Unary(pb.pb2.Msg(text="x"), timeout=30)
        assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "no backend took it within 0.5 s" in failed.value.details()
        assert not node.held and not node.pool.busy
    with adapter(backend={"port": dead}) as node:  # hold_s 0: the adapter's default outside Baton
        channel, echo = stub(pb, node)
        with channel, pytest.raises(grpc.RpcError) as failed:
            echo.Unary(pb.pb2.Msg(text="x"), timeout=30)
        assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "could not be reached" in failed.value.details() and "within" not in failed.value.details()


def test_a_held_call_the_client_gives_up_on_is_let_go(pb: Any) -> None:
    with adapter(backend={"port": refused_port()}, limits={"hold_s": 60}) as node:
        channel, echo = stub(pb, node)
        with channel:
            with pytest.raises(grpc.RpcError) as failed:
                echo.Unary(pb.pb2.Msg(text="x"), timeout=0.5)  # its deadline passes while it holds
            assert failed.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            until(lambda: not node.held and node.telemetry.active_requests == 0)
            future = echo.Unary.future(pb.pb2.Msg(text="y"), timeout=60)
            until(lambda: len(node.held) == 1)
            future.cancel()
            until(lambda: not node.held and node.telemetry.active_requests == 0)
        assert not node.pool.busy
        assert node.telemetry.targets_json()["primary"]["grpc_status"] == {"CANCELLED": 2}


def test_calls_keep_flowing_while_a_backend_dies_and_another_takes_over(pb: Any) -> None:
    """A steady load on one channel; the backend is stopped between its calls' sends: calls already on it may
    fail (a backend that received a call is never sent it twice), every other one is served."""
    server, old = start_server(pb, "old")
    with grpc_server(pb, "new") as new, adapter(backend={"port": old}, limits={"hold_s": 30}) as node:
        channel, echo = stub(pb, node)
        with channel, SteadyCalls(lambda: echo.Unary(pb.pb2.Msg(text="x"), timeout=60).text) as load:
            until(lambda: load.served.count("old:x") >= 50, 30)
            server.stop(None)
            on_loop(node, _heal(node, new))
            until(lambda: load.served.count("new:x") >= 50, 30)
        failed = load.failed
        assert len(failed) <= 4, failed  # at most the calls in flight on the stopped backend (one per worker)
        assert not node.held and not node.pool.busy
