"""gRPC contracts: a grpc node's ``.proto``, compiled into the descriptor set its adapter mocks calls from.

A grpc node's ``contract:`` is a ``.proto`` file or a descriptor set compiled already (``.protoset``, ``.desc``,
``.pb``, ``.binpb``: what the adapter reads, ``baton_adapter.grpc_mock``). A ``.proto`` is compiled by the
``protoc`` grpcio-tools bundles, with the file's own directory and the well-known types (``google/protobuf/*``)
on the include path and every import included, into ``.baton/contracts/<node>.protoset``; it is compiled again
only when the ``.proto`` is newer than that file. The compiler runs in a child process, so its errors are read
(the first one becomes a one-sentence ``ConfigError``) and nothing of it stays in Baton's process.

``grpc_methods`` checks a contract when it is attached (``baton node add --mode grpc --contract``, ``baton
contract set``): compiled and loaded as the adapter loads it, it lists the methods the mock will answer.
"""

from __future__ import annotations

import importlib.resources
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

from baton.errors import ConfigError, ContractError

__all__ = ["PROTO_SUFFIX", "compile_proto", "grpc_methods"]

PROTO_SUFFIX = ".proto"
_TIMEOUT_S = 120


def compile_proto(proto: Path, target: Path, *, label: str = "") -> Path:
    """``target``, the descriptor set of ``proto`` (compiled unless ``target`` is newer); ``ConfigError`` naming
    the file (``label``, else its path) and protoc's first error when it does not compile."""
    proto = proto.resolve()
    label = label or str(proto)
    try:
        source_mtime = proto.stat().st_mtime
    except OSError as exc:
        raise ConfigError(f"contract {label} cannot be read ({exc.strerror or exc}); check the node's "
                          "contract path.") from None
    try:
        if target.stat().st_mtime >= source_mtime:
            return target
    except OSError:
        pass  # not compiled yet
    if importlib.util.find_spec("grpc_tools") is None:
        raise ConfigError(f"contract {label} is a .proto, which needs grpcio-tools to compile; install it "
                          "(pip install grpcio-tools) or give the node a compiled descriptor set.")
    include = importlib.resources.files("grpc_tools") / "_proto"
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    argv = [sys.executable, "-m", "grpc_tools.protoc", f"-I{proto.parent}", f"-I{include}",
            f"--descriptor_set_out={partial}", "--include_imports", str(proto)]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        partial.unlink(missing_ok=True)
        raise ConfigError(f"contract {label} did not compile within {_TIMEOUT_S} s; check its imports.") from None
    if done.returncode != 0:
        partial.unlink(missing_ok=True)
        raise ConfigError(f"contract {label} does not compile: {_first_error(done.stderr, proto)}; fix the .proto.")
    os.chmod(partial, 0o644)  # a container's adapter (another uid) reads it through the project's mount
    os.replace(partial, target)
    return target


def grpc_methods(contract: Path, *, label: str = "") -> list[str]:
    """The methods (``/pkg.Service/Method``) a grpc contract offers, a ``.proto`` compiled into a temporary
    directory first; ``ContractError`` (one sentence) when it does not compile or the descriptor set is unusable."""
    import tempfile

    from baton_adapter.grpc_mock import HEALTH_CHECK, HEALTH_WATCH, GrpcMock, GrpcMockError

    label = label or str(contract)
    with tempfile.TemporaryDirectory(prefix="baton-proto-") as tmp:
        compiled = contract
        try:
            if contract.suffix == PROTO_SUFFIX:
                compiled = compile_proto(contract, Path(tmp) / "contract.protoset", label=label)
            mock = GrpcMock.from_descriptor_set(str(compiled), "check")
        except ConfigError as exc:
            raise ContractError(str(exc)) from None
        except GrpcMockError as exc:
            raise ContractError(f"{str(exc).replace(str(compiled), label)}.") from None
    return sorted(p.decode() for p in mock.methods if p not in (HEALTH_CHECK, HEALTH_WATCH))


def _first_error(stderr: str, proto: Path) -> str:
    """protoc's first error line, its file named relative to the .proto's directory (as protoc prints it)."""
    for line in stderr.splitlines():
        line = line.strip()
        if line:
            return line.replace(str(proto.parent) + os.sep, "").rstrip(".")
    return "protoc failed without saying why"
