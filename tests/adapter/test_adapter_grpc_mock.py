"""Mocked gRPC nodes: real grpcio clients against a grpc node answering from a compiled descriptor set.

The service is a small ``.proto`` compiled by ``grpc_tools.protoc`` into a tmp dir, once into Python stubs (the
clients) and once into a descriptor set (the node's contract). Nodes run on their own event loop in a thread
(``grpc_node``), or as adapter processes for the restart; everything listens on 127.0.0.1 at OS-chosen ports.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.resources
import json
import sys
import urllib.request
from concurrent import futures
from pathlib import Path
from typing import Any

import pytest

grpc = pytest.importorskip("grpc")
protoc = pytest.importorskip("grpc_tools.protoc")

from baton_adapter.taint.values import canary_value  # noqa: E402

from _adapter_support import grpc_node, run, running_node, start_adapter_process, until  # noqa: E402

PROTO = """
syntax = "proto3";
package batonmock;
import "google/protobuf/timestamp.proto";
enum Tier { TIER_UNSPECIFIED = 0; FREE = 1; PRO = 2; }
message Query { string id = 1; int32 n = 2; }
message Profile {
  string name = 1; string email = 2; int32 age = 3; repeated string tags = 4; Tier tier = 5;
  google.protobuf.Timestamp created_at = 6; map<string, int64> counters = 7; bool active = 8;
}
service Profiles {
  rpc Get(Query) returns (Profile);
  rpc Watch(Query) returns (stream Profile);
  rpc Upload(stream Query) returns (Profile);
  rpc Chat(stream Query) returns (stream Profile);
}
"""
GET = "/batonmock.Profiles/Get"


@pytest.fixture(scope="module")
def pb(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The compiled service: ``pb2`` and ``grpc`` modules, and ``protoset``, its descriptor set."""
    out = tmp_path_factory.mktemp("mockproto")
    (out / "batonmock.proto").write_text(PROTO)
    include = str(importlib.resources.files("grpc_tools") / "_proto")
    protoset = out / "batonmock.protoset"
    assert protoc.main(["protoc", f"-I{out}", f"-I{include}", f"--python_out={out}", f"--grpc_python_out={out}",
                        f"--descriptor_set_out={protoset}", "--include_imports", str(out / "batonmock.proto")]) == 0
    sys.path.insert(0, str(out))
    try:
        return type("pb", (), {"pb2": importlib.import_module("batonmock_pb2"),
                               "grpc": importlib.import_module("batonmock_pb2_grpc"), "protoset": str(protoset)})
    finally:
        sys.path.remove(str(out))


def mocked(pb: Any, **fields: Any) -> Any:
    """A grpc node whose only target is its mock, contracted to the test service's descriptor set."""
    return grpc_node(backend={"mock": True}, contract=pb.protoset, **fields)


def profiles(pb: Any, port: int) -> tuple[Any, Any]:
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    return channel, pb.grpc.ProfilesStub(channel)


def test_a_unary_call_answers_a_generated_message_counted_in_telemetry(pb: Any) -> None:
    with mocked(pb) as node:
        channel, stub = profiles(pb, node.port)
        with channel:
            reply = stub.Get(pb.pb2.Query(id="1"), timeout=30)
        assert reply.name and "@" in reply.email and reply.age > 0 and reply.created_at.seconds > 0
        assert len(reply.tags) >= 1
        stats = node.telemetry.targets["primary"]
        assert stats.by_grpc_code == {"OK": 1} and stats.failed == 0
        signal = node.telemetry.signals_json(1)[0]
        assert (signal["method"], signal["path"], signal["status_code"]) == ("GRPC", GET, 200)
        assert not node.pool.busy  # a mocked call holds no backend


def _get_from_a_process(pb: Any, tmp_path: Path, hash_seed: str) -> bytes:
    config = tmp_path / f"adapter-{hash_seed}.json"
    config.write_text(json.dumps({"nodes": [{"name": "profiles", "port": 0, "management_port": 0, "mode": "grpc",
                                             "backend": {"mock": True}, "contract": pb.protoset}]}))
    proc, ready = start_adapter_process(["--config", str(config)], {"PYTHONHASHSEED": hash_seed})
    try:
        channel, stub = profiles(pb, ready["nodes"][0]["port"])
        with channel:
            return stub.Get(pb.pb2.Query(id="1"), timeout=30).SerializeToString(deterministic=True)
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


def test_answers_are_the_same_across_adapter_restarts(pb: Any, tmp_path: Path) -> None:
    first = _get_from_a_process(pb, tmp_path, "1")
    second = _get_from_a_process(pb, tmp_path, "2")
    assert first == second and len(first) > 20


def test_the_four_call_kinds(pb: Any) -> None:
    query = pb.pb2.Query
    with mocked(pb) as node:
        channel, stub = profiles(pb, node.port)
        with channel:
            streamed = list(stub.Watch(query(id="w"), timeout=30))
            uploaded = stub.Upload(iter([query(n=i) for i in range(10)]), timeout=30)
            chat = list(stub.Chat(iter([query(n=i) for i in range(20)]), timeout=30))
            empty_chat = list(stub.Chat(iter([]), timeout=30))
            again = list(stub.Watch(query(id="other"), timeout=30))
        assert len(streamed) == 3 and len({m.SerializeToString() for m in streamed}) == 3  # each its own seed
        assert again == streamed  # the i-th answer of a method, whatever the request
        assert uploaded.name and len(chat) == 20 and len({m.SerializeToString() for m in chat}) == 20
        assert empty_chat == []
        assert node.telemetry.targets["primary"].by_grpc_code == {"OK": 5}


def test_a_bidi_stream_larger_than_the_windows_keeps_flow_control(pb: Any) -> None:
    big = "x" * 4000
    with mocked(pb) as node:
        channel, stub = profiles(pb, node.port)
        with channel:
            replies = stub.Chat(iter([pb.pb2.Query(id=big, n=i) for i in range(1500)]), timeout=60)  # 6 MB in
            assert sum(1 for _ in replies) == 1500
        until(lambda: node.telemetry.targets["primary"].by_grpc_code == {"OK": 1})


def test_an_unknown_method_is_unimplemented_naming_what_the_set_offers(pb: Any) -> None:
    with mocked(pb) as node, grpc.insecure_channel(f"127.0.0.1:{node.port}") as channel:
        call = channel.unary_unary("/batonmock.Profiles/Delete", request_serializer=None, response_deserializer=None)
        with pytest.raises(grpc.RpcError) as info:
            call(b"", timeout=30)
        assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED
        assert info.value.details() == ("the mock of api has no method /batonmock.Profiles/Delete; batonmock.protoset"
                                        " offers the services batonmock.Profiles (and grpc.health.v1.Health)")
        until(lambda: node.telemetry.targets["primary"].by_grpc_code == {"UNIMPLEMENTED": 1})


def test_a_request_that_is_no_message_is_internal(pb: Any) -> None:
    with mocked(pb) as node, grpc.insecure_channel(f"127.0.0.1:{node.port}") as channel:
        call = channel.unary_unary(GET, request_serializer=None, response_deserializer=None)
        with pytest.raises(grpc.RpcError) as info:
            call(b"\xff\xff\xff", timeout=30)  # no Query: a truncated varint tag
        assert info.value.code() == grpc.StatusCode.INTERNAL
        assert info.value.details().startswith("the request is no batonmock.Query")


def test_health_check_answers_serving(pb: Any) -> None:
    with mocked(pb) as node, grpc.insecure_channel(f"127.0.0.1:{node.port}") as channel:
        check = channel.unary_unary("/grpc.health.v1.Health/Check", request_serializer=None,
                                    response_deserializer=None)
        assert check(b"", timeout=30) == b"\x08\x01"  # HealthCheckResponse{status: SERVING}


def test_seeded_canaries_reach_the_email_field(pb: Any) -> None:
    fingerprint = "0badcafe"
    spec = {"enabled": True, "generation": "g1", "canaries": [{"fingerprint": fingerprint, "kind": "email"}],
            "seed": [{"fingerprint": fingerprint, "kind": "email"}]}
    with mocked(pb) as node:
        channel, stub = profiles(pb, node.port)
        with channel:
            before = stub.Get(pb.pb2.Query(id="1"), timeout=30)
            request = urllib.request.Request(f"http://127.0.0.1:{node.management_port}/taint", method="PUT",
                                             data=json.dumps(spec).encode(), headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=30) as resp:
                assert json.load(resp)["seeded"] == 1
            seeded = stub.Get(pb.pb2.Query(id="1"), timeout=30)
            urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{node.management_port}/taint",
                                                          method="DELETE"), timeout=30).close()
            after = stub.Get(pb.pb2.Query(id="1"), timeout=30)
    assert seeded.email == canary_value("email", fingerprint) != before.email
    assert after == before


def test_a_node_without_a_descriptor_set_is_unavailable_saying_so(pb: Any) -> None:
    with grpc_node(backend={"mock": True}) as node:
        channel, stub = profiles(pb, node.port)
        with channel, pytest.raises(grpc.RpcError) as info:
            stub.Get(pb.pb2.Query(id="1"), timeout=30)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert info.value.details() == ("node api has no gRPC contract to mock; give it a .proto contract (Baton compiles"
                                    " it into a descriptor set) or a descriptor set (.protoset, .desc, .pb, .binpb).")


def test_a_corrupt_descriptor_set_is_unavailable_with_one_sentence(pb: Any, tmp_path: Path,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    broken = tmp_path / "broken.protoset"
    broken.write_bytes(b"not a descriptor set")
    with grpc_node(backend={"mock": True}, contract=str(broken)) as node:
        channel, stub = profiles(pb, node.port)
        with channel:
            errors = []
            for _ in range(2):
                with pytest.raises(grpc.RpcError) as info:
                    stub.Get(pb.pb2.Query(id="1"), timeout=30)
                errors.append((info.value.code(), info.value.details()))
        assert node.telemetry.targets["primary"].by_grpc_code == {"UNAVAILABLE": 2}
    code, details = errors[0]
    assert errors[1] == errors[0] and code == grpc.StatusCode.UNAVAILABLE
    assert details.startswith(f"descriptor set {broken} is no FileDescriptorSet (")
    assert details.endswith("; compile the .proto with protoc --descriptor_set_out=FILE --include_imports.")
    logged = [r for r in caplog.records if "FileDescriptorSet" in r.getMessage()]
    assert len(logged) == 1  # once, however many calls


def _real_backend(pb: Any) -> tuple[Any, int]:
    class Profiles(pb.grpc.ProfilesServicer):  # type: ignore[misc, name-defined]
        def Get(self, request: Any, context: Any) -> Any:
            return pb.pb2.Profile(name="real")

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    pb.grpc.add_ProfilesServicer_to_server(Profiles(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, port


def test_a_weighted_split_between_a_backend_and_the_mock_applies_per_call(pb: Any) -> None:
    calls = 400
    server, port = _real_backend(pb)
    try:
        with grpc_node(contract=pb.protoset, routing={"strategy": "weighted", "targets": [
                {"name": "real", "host": "127.0.0.1", "port": port, "weight": 90},
                {"name": "mock", "mock": True, "weight": 10}]}) as node:
            channel, stub = profiles(pb, node.port)
            with channel:
                names = [stub.Get(pb.pb2.Query(id="x"), timeout=30).name for _ in range(calls)]
            mocked_calls = calls - names.count("real")
            # Binomial(400, 0.1): mean 40, sd 6; 5 sd either side (a one-connection split would give 0 or 400)
            assert 10 <= mocked_calls <= 70, mocked_calls
            targets = node.telemetry.targets
            assert targets["real"].by_grpc_code == {"OK": calls - mocked_calls}
            assert targets["mock"].by_grpc_code == {"OK": mocked_calls}
            until(lambda: not node.pool.busy)
    finally:
        server.stop(None)



def test_a_client_that_does_not_read_its_answers_is_slowed_down(pb: Any) -> None:
    """A bidi client whose receive window stays shut: once the answers waiting for it pass the mock's bound, the
    adapter stops giving the client's send window back, so the client ends up blocked."""
    from h2.config import H2Configuration
    from h2.connection import H2Connection
    from h2.events import WindowUpdated
    from h2.settings import SettingCodes

    from baton_adapter.grpc_call import frame

    async def main() -> tuple[int, int]:
        async with running_node(mode="grpc", backend={"mock": True}, contract=pb.protoset) as node:
            reader, writer = await asyncio.open_connection("127.0.0.1", node.port)
            conn = H2Connection(H2Configuration(client_side=True, header_encoding=None))
            conn.initiate_connection()
            conn.update_settings({SettingCodes.INITIAL_WINDOW_SIZE: 1000})  # and never acknowledged
            sid = conn.get_next_available_stream_id()
            conn.send_headers(sid, [(b":method", b"POST"), (b":scheme", b"http"), (b":path", b"/batonmock.Profiles/Chat"),
                                    (b":authority", b"mock"), (b"content-type", b"application/grpc"), (b"te", b"trailers")])
            message = frame(pb.pb2.Query(id="x" * 1000).SerializeToString())
            sent = 0
            updates = 0
            while True:
                while conn.local_flow_control_window(sid) >= len(message):
                    conn.send_data(sid, message)
                    sent += len(message)
                writer.write(conn.data_to_send())
                await writer.drain()
                try:
                    data = await asyncio.wait_for(reader.read(65536), 1.0)
                except TimeoutError:
                    break  # nothing more comes: the adapter keeps the window shut
                assert data, "the adapter closed the connection"
                updates += sum(isinstance(e, WindowUpdated) and e.stream_id == sid for e in conn.receive_data(data))
                assert sent < 8 << 20, "the adapter acknowledged everything a non-reading client sent"
            writer.close()
            return sent, updates

    sent, updates = run(main())
    assert updates > 0  # requests were read and acknowledged at first...
    assert (1 << 20) < sent < (3 << 20)  # ... then no more than the adapter's 1 MiB window past its 64 KiB bound
