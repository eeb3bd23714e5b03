"""A tiny gRPC service for integration tests (grpcio), with the standard health service.

Usage: python grpc_echo.py VERSION [fail|notserving]  (listens on $BATON_SERVICE_PORT, h2c)
  Echo/Unary answers ``VERSION:text``; fail: every Unary call ends INTERNAL; notserving: grpc.health.v1 Check
  answers NOT_SERVING (the service is up but says it cannot serve).
The .proto is compiled with grpc_tools.protoc into a temporary directory at start.
"""

import os
import sys
import tempfile
from concurrent import futures
from pathlib import Path

import grpc
from grpc_tools import protoc

VERSION = sys.argv[1] if len(sys.argv) > 1 else "v1"
MODE = sys.argv[2] if len(sys.argv) > 2 else ""

PROTO = """
syntax = "proto3";
package batonit;
message Msg { string text = 1; }
service Echo { rpc Unary(Msg) returns (Msg); }
"""
HEALTH = """
syntax = "proto3";
package grpc.health.v1;
message HealthCheckRequest { string service = 1; }
message HealthCheckResponse {
  enum ServingStatus { UNKNOWN = 0; SERVING = 1; NOT_SERVING = 2; SERVICE_UNKNOWN = 3; }
  ServingStatus status = 1;
}
service Health { rpc Check(HealthCheckRequest) returns (HealthCheckResponse); }
"""


def compiled() -> Path:
    out = Path(tempfile.mkdtemp(prefix="grpc-echo-"))
    (out / "batonit.proto").write_text(PROTO)
    (out / "batonithealth.proto").write_text(HEALTH)
    if protoc.main(["protoc", f"-I{out}", f"--python_out={out}", f"--grpc_python_out={out}",
                    str(out / "batonit.proto"), str(out / "batonithealth.proto")]) != 0:
        raise SystemExit("protoc failed")
    sys.path.insert(0, str(out))
    return out


def main() -> None:
    compiled()
    import batonit_pb2
    import batonit_pb2_grpc
    import batonithealth_pb2
    import batonithealth_pb2_grpc

    class Echo(batonit_pb2_grpc.EchoServicer):
        def Unary(self, request, context):  # noqa: N802
            if MODE == "fail":
                context.abort(grpc.StatusCode.INTERNAL, f"{VERSION} fails every call")
            return batonit_pb2.Msg(text=f"{VERSION}:{request.text}")

    class Health(batonithealth_pb2_grpc.HealthServicer):
        def Check(self, request, context):  # noqa: N802
            status = batonithealth_pb2.HealthCheckResponse.NOT_SERVING if MODE == "notserving" else \
                batonithealth_pb2.HealthCheckResponse.SERVING
            return batonithealth_pb2.HealthCheckResponse(status=status)

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    batonit_pb2_grpc.add_EchoServicer_to_server(Echo(), server)
    batonithealth_pb2_grpc.add_HealthServicer_to_server(Health(), server)
    server.add_insecure_port(f"127.0.0.1:{os.environ['BATON_SERVICE_PORT']}")
    server.start()
    server.wait_for_termination()


if __name__ == "__main__":
    main()
