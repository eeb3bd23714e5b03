"""Contract mocks for Baton's adapter: serve a node from its OpenAPI or JSON Schema contract.

The public face is small::

    engine = MockEngine.from_contract("contracts/users.yaml", node="users")   # None: contract-less mock
    resp = engine.handle(MockRequest("GET", "/users/42", [], {"prefer": "code=404"}, b""))
    report = await validate_service("http://127.0.0.1:8002", "contracts/users.yaml")

- Contracts: OpenAPI 3.0/3.1 (YAML or JSON, local and cross-file ``$ref``) or a plain JSON Schema, which is
  served as ``GET /``. A bad contract raises :class:`ContractError` naming the file and the line.
- Answers: the lowest documented 2xx (else ``default``); ``Prefer: code=``, ``example=`` and ``dynamic=``
  as in Prism; examples first, otherwise generated values that validate; deterministic per node (the
  seed is derived from the node name) unless dynamic; JSON unless ``Accept`` asks for another documented
  media type. Unknown paths answer 404, undocumented methods 405, HEAD is served for every GET.
- Requests are validated (``validate_requests=False`` turns it off): problems answer 422 with a list.
- SOAP (soap nodes): :class:`SoapMock` answers POSTs by SOAP action from operations marked ``x-soap-action`` /
  ``x-soap-operation``, with their example envelopes (``_soap``).
- :func:`validate_service` probes a real service at slot time (GET/HEAD only unless ``unsafe_methods``)
  and returns a :class:`ValidationReport` (``ok``, ``mismatches``, ``rows()``, ``to_json()``).
- :class:`MessageGenerator` generates protobuf messages with the same generator (a grpc node's mock,
  ``baton_adapter.grpc_mock``; imported on first use, as it needs ``protobuf``); :func:`node_seed` and
  :func:`derive_seed` are the seeds every mock derives its values from.
"""

from ._engine import MockEngine, MockRequest, MockResponse
from ._errors import ContractError, MockError
from ._examples import ExampleRequest, example_request
from ._generate import derive_seed, node_seed
from ._soap import SoapAnswer, SoapMock, fault_envelope
from ._slot import Mismatch, ProbeResult, ValidationReport, validate_service

__all__ = [
    "ContractError",
    "ExampleRequest",
    "Mismatch",
    "MockEngine",
    "MockError",
    "MessageGenerator",
    "MockRequest",
    "MockResponse",
    "ProbeResult",
    "SoapAnswer",
    "SoapMock",
    "ValidationReport",
    "derive_seed",
    "example_request",
    "fault_envelope",
    "node_seed",
    "validate_service",
]


def __getattr__(name: str) -> object:
    if name == "MessageGenerator":  # protobuf only for a grpc node's mock
        from ._messages import MessageGenerator

        return MessageGenerator
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
