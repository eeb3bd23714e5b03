"""The mock engine: one per node, loaded once, answering requests synchronously from its contract."""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from ._bodies import encode_body, header_text, is_xml, xml_root_name
from ._contract import NO_EXAMPLE, Contract, Header, MediaType, Operation, Response, load_contract
from ._errors import MockError
from ._generate import Generator, derive_seed, node_seed
from ._request import RequestChecker, UnsupportedMediaType, is_json
from ._routing import Found, MethodNotAllowed, Router
from ._schemas import Problem, ValidatorFactory
from ._select import NoResponse, NotAcceptable, Prefer, answer_media_type, choose_media, choose_response, parse_prefer

__all__ = ["MockEngine", "MockRequest", "MockResponse"]

logger = logging.getLogger(__name__)

_JSON = "application/json"
_CACHE_LIMIT = 4096  # default answers kept; Prefer: code=<any> with a default response could grow it


@dataclass(frozen=True)
class MockRequest:
    """A request as the adapter saw it; header names are lower-case."""

    method: str
    path: str
    query: list[tuple[str, str]] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


@dataclass(frozen=True)
class MockResponse:
    """The mock's answer."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


def _json_response(status: int, payload: Any, extra: list[tuple[str, str]] | None = None) -> MockResponse:
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return MockResponse(status, [("content-type", _JSON), *(extra or [])], body)


def _problem(status: int, error: str, message: str, **more: Any) -> MockResponse:
    return _json_response(status, {"error": error, "message": message, **more})


class MockEngine:
    """Serves one node from its contract (or, without one, answers ``/`` and ``/health``).

    Build it with :meth:`from_contract`; then :meth:`handle` is synchronous and pure apart from its
    caches: routes, validators and request checkers are compiled at load, and default bodies are
    generated once and reused (``Prefer: dynamic=true`` generates fresh values for every request).
    """

    def __init__(
        self,
        node: str,
        contract: Contract | None,
        *,
        seed: int | None = None,
        validate_requests: bool = True,
        dynamic: bool = False,
    ) -> None:
        self.node = node
        self.contract = contract
        self.seed = node_seed(node) if seed is None else seed
        self.validate_requests = validate_requests
        self.dynamic = dynamic
        self._cache: dict[tuple[Any, ...], MockResponse] = {}
        self._fresh = itertools.count()
        if contract is None:
            return
        self._validators = ValidatorFactory(contract.dialect, contract.registry)
        self._generator = Generator(contract.dialect, contract.registry, self._is_valid)
        self._checkers = {
            id(op): RequestChecker(op, contract.registry, self._validators) for op in contract.operations
        }
        self._router = Router(
            contract.operations, lambda op, params: self._checkers[id(op)].path_fits(params), contract.servers
        )

    @classmethod
    def from_contract(
        cls,
        path: str | None,
        node: str,
        seed: int | None = None,
        *,
        validate_requests: bool = True,
        dynamic: bool = False,
    ) -> MockEngine:
        """Load the contract at ``path`` (``None`` or ``""``: a contract-less mock); raise ContractError if bad."""
        contract = load_contract(path) if path else None
        return cls(node, contract, seed=seed, validate_requests=validate_requests, dynamic=dynamic)

    @property
    def operations(self) -> tuple[Operation, ...]:
        """The documented operations (empty without a contract)."""
        return self.contract.operations if self.contract else ()

    def generate(self, location: str, seed: int, *, direction: str = "response", examples: bool = True) -> Any:
        """A value for the schema at ``location`` (exposed for slot-time probes)."""
        self._require_contract()
        return self._generator.generate(location, seed, direction=direction, examples=examples)

    def problems(
        self, location: str, value: Any, *, direction: str = "response", prefix: str = "body"
    ) -> list[Problem]:
        """Every problem with ``value`` against the schema at ``location`` (empty when it validates)."""
        self._require_contract()
        return self._validators(location, "request" if direction == "request" else "response").problems(value, prefix)

    def lint(self) -> list[str]:
        """Contract examples that do not validate against their own schemas, one sentence each.

        The mock serves media-type examples as written (as Prism does), so an invalid one reaches clients;
        this lists them so a contract check can say so before a circuit goes up.
        """
        if self.contract is None:
            return []
        found = []
        for op in self.contract.operations:
            where = f"{op.method.upper()} {op.path}"
            for status, response in op.responses.items():
                for media in response.content.values():
                    if media.schema is None:
                        continue
                    named = dict(media.examples)
                    if media.example is not NO_EXAMPLE:
                        named["example"] = media.example
                    for name, value in named.items():
                        for problem in self.problems(media.schema, value, prefix=name):
                            found.append(
                                f"{where} {status} {media.media_type}: example {problem.where} does not validate "
                                f"({problem.message}); fix the example or the schema."
                            )
            for param in op.parameters:
                if param.schema is not None and param.example is not NO_EXAMPLE:
                    for problem in self.problems(param.schema, param.example, direction="request", prefix=param.name):
                        found.append(
                            f"{where} {param.where} parameter {param.name}: example does not validate "
                            f"({problem.message}); fix the example or the schema."
                        )
        return found

    def seed_canaries(self, values: Mapping[str, Sequence[str]], *, direction: str = "response") -> None:
        """Answer with these canary values (by kind: email, name, ssn, card, phone) in the generated fields of
        their kind, and generate bodies rather than serve a media type's example; ``{}`` stops seeding.
        ``direction="request"`` puts them in generated requests instead (:func:`example_request`: the taint
        soak test's traffic)."""
        if self.contract is None:
            return
        self._generator.canaries = {kind: tuple(v) for kind, v in values.items() if v}
        self._generator.canary_direction = direction
        self._cache.clear()

    def seeded(self, direction: str) -> bool:
        """Whether canaries are seeded into generated values of ``direction`` (request or response)."""
        return bool(self._generator.canaries) and self._generator.canary_direction == direction

    def _is_valid(self, location: str, direction: str, value: Any) -> bool:
        return self._validators(location, "request" if direction == "request" else "response").is_valid(value)

    def _require_contract(self) -> None:
        if self.contract is None:
            raise MockError(f"The mock of {self.node} has no contract; set one to generate or validate values.")

    # -- handling ----------------------------------------------------------------------------------------

    def handle(self, request: MockRequest) -> MockResponse:
        """Answer one request; a fault inside the engine answers 500 with a JSON problem, never raises."""
        if "?" in request.path:
            path, _, raw_query = request.path.partition("?")
            query = request.query or parse_qsl(raw_query, keep_blank_values=True)
            request = MockRequest(request.method, path, query, request.headers, request.body)
        try:
            response = self._handle(request)
        except Exception as exc:  # the adapter must always get an answer
            logger.exception("mock %s failed on %s %s", self.node, request.method, request.path)
            return _problem(500, "mock_failed", f"The mock of {self.node} failed: {type(exc).__name__}: {exc}.")
        if request.method.upper() == "HEAD" and response.body:
            return MockResponse(response.status, response.headers, b"")
        return response

    def _handle(self, request: MockRequest) -> MockResponse:
        if self.contract is None:
            return self._contractless(request)
        found = self._router.match(request.method, request.path)
        if isinstance(found, MethodNotAllowed):
            allowed = ", ".join(found.allowed)
            message = f"{request.method.upper()} is not documented for {found.template}; use one of {allowed}."
            response = _problem(405, "method_not_allowed", message, allowed=list(found.allowed))
            return MockResponse(405, [*response.headers, ("allow", allowed)], response.body)
        if not isinstance(found, Found):
            return _problem(404, "not_found", f"No documented path matches {request.path}.", node=self.node)
        return self._answer(found, request)

    def _answer(self, found: Found, request: MockRequest) -> MockResponse:
        op = found.operation
        if self.validate_requests:
            checked = self._checkers[id(op)].check(found.params, request.query, request.headers, request.body)
            if isinstance(checked, UnsupportedMediaType):
                return _problem(
                    415,
                    "unsupported_media_type",
                    f"Expected a body of {', '.join(checked.documented)}, found {checked.found}.",
                )
            if checked:
                return _json_response(
                    422,
                    {
                        "error": "invalid_request",
                        "message": f"The request does not match {op.method.upper()} {op.path}.",
                        "problems": [p.to_json() for p in checked],
                    },
                )
        prefer = parse_prefer(request.headers.get("prefer"))
        chosen = choose_response(op, prefer.code)
        if isinstance(chosen, NoResponse):
            return _problem(
                500, "no_response_defined", f"{op.method.upper()} {op.path} documents no response for {chosen.code}."
            )
        status, response = chosen
        media = choose_media(response.content, request.headers.get("accept"))
        if isinstance(media, NotAcceptable):
            return _problem(
                406,
                "not_acceptable",
                f"Expected Accept to allow one of {', '.join(media.documented)}, found {media.accept}.",
            )
        dynamic = self.dynamic if prefer.dynamic is None else prefer.dynamic
        if dynamic:
            fresh = derive_seed(self.seed, "dynamic", next(self._fresh))
            return self._render(op, status, response, media, prefer, fresh, True)
        key = (id(op), status, id(response), media.media_type if media else None, prefer.example)
        cached = self._cache.get(key)
        if cached is None:
            seed = derive_seed(self.seed, op.method, op.path, response.status, media.media_type if media else "")
            cached = self._render(op, status, response, media, prefer, seed, False)
            documented = prefer.example is None or (media is not None and prefer.example in media.examples)
            if documented and len(self._cache) < _CACHE_LIMIT:
                self._cache[key] = cached
        return cached

    def _render(
        self,
        op: Operation,
        status: int,
        response: Response,
        media: MediaType | None,
        prefer: Prefer,
        seed: int,
        dynamic: bool,
    ) -> MockResponse:
        headers = [(h.name.lower(), self._header_value(h, seed, dynamic)) for h in response.headers]
        if media is None:
            return MockResponse(status, headers, b"")
        if prefer.example is not None:
            if prefer.example not in media.examples:
                names = ", ".join(media.examples) or "none"
                return _problem(
                    404,
                    "example_not_found",
                    f"Expected an example named {prefer.example!r} for {op.method.upper()} {op.path} "
                    f"{response.status} {media.media_type}, found {names}.",
                )
            value = media.examples[prefer.example]
        elif not dynamic and media.example is not NO_EXAMPLE and not self._seeded(media):
            value = media.example
        elif not dynamic and media.examples and not self._seeded(media):
            value = next(iter(media.examples.values()))
        elif media.schema is not None:
            value = self._generator.generate(media.schema, seed, examples=not dynamic)
        else:
            value = {} if is_json(media.media_type) else ""
        content_type = answer_media_type(media)
        root = self._xml_root(media.schema) if is_xml(content_type) and media.schema is not None else "root"
        body = encode_body(value, content_type, root)
        return MockResponse(status, [("content-type", content_type), *headers], body)

    def _seeded(self, media: MediaType) -> bool:
        """Whether seeded canaries should go in this body (generated from its schema, not its example)."""
        return self.seeded("response") and media.schema is not None

    def _xml_root(self, location: str) -> str:
        """The root element name for an XML body: the schema's (or its ``$ref`` target's) ``xml.name``."""
        assert self.contract is not None
        resolved = self.contract.registry.resolver().lookup(location)
        schema = resolved.contents
        if isinstance(schema, dict) and isinstance(schema.get("$ref"), str):
            target = resolved.resolver.lookup(schema["$ref"]).contents
            if isinstance(target, dict) and isinstance(target.get("xml"), dict) and "name" in target["xml"]:
                return xml_root_name(target)
        return xml_root_name(schema)

    def _header_value(self, header: Header, seed: int, dynamic: bool) -> str:
        if not dynamic and header.example is not NO_EXAMPLE:
            value = header.example
        elif header.schema is not None:
            header_seed = derive_seed(seed, "header", header.name)
            value = self._generator.generate(header.schema, header_seed, examples=not dynamic)
        else:
            value = "mock"
        return header_text(value)

    def _contractless(self, request: MockRequest) -> MockResponse:
        path = request.path.rstrip("/") or "/"
        if path == "/":
            response = _json_response(200, {"status": "mock", "node": self.node})
        elif path == "/health":
            response = _json_response(200, {"status": "ok", "node": self.node})
        else:
            message = f"No contract is set for {self.node}; only / and /health answer."
            return _problem(404, "not_found", message, node=self.node)
        return response
