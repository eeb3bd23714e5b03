"""The mock of a ``grpc`` node: the methods of a compiled descriptor set, answered with generated messages.

The contract is a FileDescriptorSet (``protoc --descriptor_set_out=api.protoset --include_imports api.proto``;
Baton's control plane compiles a node's ``.proto`` into one). A call is looked up by its ``:path``
(``/pkg.Service/Method``); its answers are messages of the method's output type whose values come from the same
seeded generator as the HTTP mocks' bodies (``baton_adapter.mock.MessageGenerator``: each message converted to
a JSON Schema, generated, read back with ``json_format.ParseDict``), serialized and framed. So
answers are deterministic for a node (its seed is derived from its name and the method), an ``email`` field
holds an address, a ``created_at`` field a timestamp, and canaries seeded through ``PUT /taint`` go in the
fields of their kind.

Besides the descriptor set's own methods, ``grpc.health.v1.Health/Check`` answers SERVING (and ``Watch`` sends
SERVING once and stays open), so health probes pass against a mocked node.

This module is pure apart from reading the file once; ``baton_adapter.grpc_mock_upstream`` carries the calls.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .grpc_call import frame

__all__ = ["DESCRIPTOR_SUFFIXES", "HEALTH_CHECK", "HEALTH_WATCH", "SERVER_STREAM_COUNT", "GrpcMock", "GrpcMockError",
           "Method"]

DESCRIPTOR_SUFFIXES = (".protoset", ".desc", ".pb", ".binpb")
HEALTH_CHECK = b"/grpc.health.v1.Health/Check"
HEALTH_WATCH = b"/grpc.health.v1.Health/Watch"
SERVING = b"\x08\x01"  # grpc.health.v1.HealthCheckResponse{status: SERVING}: field 1, varint 1
SERVER_STREAM_COUNT = 3  # the messages a server-streaming method answers
_CACHE_LIMIT = 1024
_MAX_FILE = 64 << 20


class GrpcMockError(Exception):
    """A descriptor set cannot be used; the message is one sentence naming the file."""


@dataclass(frozen=True)
class Method:
    """One method a mock answers."""

    path: bytes  # /pkg.Service/Method
    input: Any  # the request message class (None: any bytes, e.g. the built-in health methods)
    output: Any  # the response message class (None: the fixed answer ``fixed``)
    client_streaming: bool
    server_streaming: bool
    fixed: bytes = b""
    hold: bool = False  # after its answers the call stays open until the client ends it (Health/Watch)


_HEALTH = {
    HEALTH_CHECK: Method(HEALTH_CHECK, None, None, False, False, SERVING),
    HEALTH_WATCH: Method(HEALTH_WATCH, None, None, False, True, SERVING, hold=True),
}


class GrpcMock:
    """Answers the methods of one descriptor set for one node, deterministically for its seed."""

    def __init__(self, node: str, source: str, methods: Mapping[bytes, Method], seed: int | None = None) -> None:
        from .mock import MessageGenerator, derive_seed, node_seed

        self.node = node
        self.source = source
        self.seed = node_seed(node) if seed is None else seed
        self.methods = {**methods, **_HEALTH}  # the descriptor set's own health service answers SERVING too
        self._derive_seed = derive_seed
        self._messages = MessageGenerator(dict.fromkeys(m.output for m in methods.values() if m.output is not None))
        self._cache: dict[tuple[bytes, int], bytes] = {}

    @classmethod
    def from_descriptor_set(cls, path: str, node: str, seed: int | None = None) -> GrpcMock:
        """Load the FileDescriptorSet at ``path``; raise ``GrpcMockError`` (one sentence) when it is unusable."""
        try:
            with open(path, "rb") as file:
                data = file.read(_MAX_FILE + 1)
        except OSError as exc:
            raise GrpcMockError(f"descriptor set {path} cannot be read ({exc.strerror or exc})") from exc
        if len(data) > _MAX_FILE:
            raise GrpcMockError(f"descriptor set {path} is over {_MAX_FILE >> 20} MiB")
        return cls(node, path, _methods(data, path), seed)

    # -- answers ----------------------------------------------------------------------------------------

    def method(self, path: bytes) -> Method | None:
        return self.methods.get(path)

    def unknown(self, path: bytes) -> str:
        """The ``grpc-message`` of an UNIMPLEMENTED answer: the method, and what the descriptor set offers."""
        services = sorted({m.path.decode().split("/")[1] for m in self.methods.values() if m.path not in _HEALTH})
        offer = ", ".join(services[:5]) + (f" and {len(services) - 5} more" if len(services) > 5 else "")
        asked = path.decode("utf-8", "replace")
        return (f"the mock of {self.node} has no method {asked}; {Path(self.source).name} offers "
                + (f"the services {offer}" if services else "no service") + " (and grpc.health.v1.Health)")

    def answer(self, method: Method, index: int) -> bytes:
        """The ``index``-th answer of a call of ``method`` (0 for unary and client-streaming calls), framed."""
        if method.output is None:
            return frame(method.fixed)
        key = (method.path, index)
        cached = self._cache.get(key)
        if cached is None:
            seed = self._derive_seed(self.seed, method.path.decode(), index)
            cached = frame(self._messages.message(method.output, seed).SerializeToString())
            if len(self._cache) < _CACHE_LIMIT:
                self._cache[key] = cached
        return cached

    def check_request(self, method: Method, message: bytes) -> str | None:
        """Why ``message`` is no request of ``method`` (one sentence), or None when it parses."""
        if method.input is None:
            return None
        try:
            method.input.FromString(message)
        except Exception as exc:  # noqa: BLE001 - protobuf's DecodeError (and the upb backend's own errors)
            return f"the request is no {method.input.DESCRIPTOR.full_name} ({exc})"
        return None

    def seed_canaries(self, values: Mapping[str, Sequence[str]]) -> None:
        """Answer with these canary values (by kind) in the string fields of their kind; ``{}`` stops seeding."""
        self._messages.seed_canaries(values)
        self._cache.clear()


def _methods(data: bytes, path: str) -> dict[bytes, Method]:
    """The methods of every service of a serialized FileDescriptorSet, with their message classes."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    where = f"descriptor set {path}"
    try:
        files = list(descriptor_pb2.FileDescriptorSet.FromString(data).file)
    except Exception as exc:  # noqa: BLE001 - DecodeError, and the upb backend's own errors
        raise GrpcMockError(f"{where} is no FileDescriptorSet ({exc}); compile the .proto with "
                            "protoc --descriptor_set_out=FILE --include_imports") from exc
    if not files:
        raise GrpcMockError(f"{where} holds no file; compile the .proto with protoc --descriptor_set_out=FILE "
                            "--include_imports")
    pool = descriptor_pool.DescriptorPool()
    pending = files
    while pending:  # dependencies first, whatever order the set lists them in
        failed = []
        for proto in pending:
            try:
                pool.Add(proto)
            except Exception:  # noqa: BLE001 - a dependency not added yet (TypeError, KeyError by backend)
                failed.append(proto)
        if len(failed) == len(pending):
            missing = sorted({d for f in failed for d in f.dependency} - {f.name for f in files})
            reason = (f"imports {', '.join(missing)}, which it does not hold (compile with --include_imports)"
                      if missing else f"cannot add {failed[0].name}")
            raise GrpcMockError(f"{where} {reason}")
        pending = failed
    methods: dict[bytes, Method] = {}
    for proto in files:
        for service in proto.service:
            full = f"{proto.package}.{service.name}" if proto.package else service.name
            descriptor = pool.FindServiceByName(full)
            for m in descriptor.methods:
                key = f"/{full}/{m.name}".encode()
                methods[key] = Method(key, message_factory.GetMessageClass(m.input_type),
                                      message_factory.GetMessageClass(m.output_type),
                                      m.client_streaming, m.server_streaming)
    return methods
