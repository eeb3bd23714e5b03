"""The SOAP mock: a soap node's contract operations answered as envelopes, chosen by SOAP action.

The contract is OpenAPI, as for every node; a SOAP operation is a ``post`` carrying ``x-soap-action``
(``urn:calc#Add``) and/or ``x-soap-operation`` (the local name of the Body's first child, ``Add``), whose 2xx
response has ``text/xml`` or ``application/soap+xml`` content, ideally with an ``example`` holding a whole
envelope::

    /calc:
      post:
        operationId: Add
        x-soap-action: "urn:calc#Add"
        x-soap-operation: Add
        responses:
          "200":
            content:
              text/xml:
                example: '<soap:Envelope xmlns:soap="...">...</soap:Envelope>'

A request (POST, any path) is answered by the operation its action names (the SOAP 1.1 ``SOAPAction`` header or
the SOAP 1.2 content type's ``action``); with no action (or an empty one), by the Body's first element. The answer
is the example of the request's SOAP version (else any example), as ``text/xml`` for SOAP 1.1 and
``application/soap+xml`` for 1.2; without an example, the response schema's generated value as XML inside an
envelope. Everything else is a Fault with HTTP 500: an unknown action or element, a body that is not a SOAP
envelope, malformed XML or a DTD (``Client``/``Sender``), an operation the mock cannot answer (``Server``/
``Receiver``). Pure: it reads the contract once and never does I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from xml.etree.ElementTree import ParseError, XMLPullParser
from xml.sax.saxutils import escape

from ..soap import SOAP11_NS, SOAP12_NS, soap_action
from ._bodies import is_xml, to_xml

__all__ = ["SoapAnswer", "SoapMock", "SoapOperation", "fault_envelope"]

_SOAP_TYPES = ("text/xml", "application/soap+xml")
_CONTENT_TYPE = {"1.1": "text/xml; charset=utf-8", "1.2": "application/soap+xml; charset=utf-8"}
_NS = {"1.1": SOAP11_NS, "1.2": SOAP12_NS}
_CODES = {("1.1", "client"): "soap:Client", ("1.1", "server"): "soap:Server",
          ("1.2", "client"): "soap:Sender", ("1.2", "server"): "soap:Receiver"}


@dataclass(frozen=True)
class SoapOperation:
    """One operation as the SOAP mock serves it."""

    name: str
    action: str | None
    element: str | None
    status: int
    examples: Mapping[str, str]  # media type (text/xml, application/soap+xml) -> a whole envelope
    schema: str | None = None  # the response schema's location, for a generated body
    root: str = "root"


@dataclass(frozen=True)
class SoapAnswer:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


def fault_envelope(version: str, kind: str, message: str) -> bytes:
    """A Fault envelope of SOAP ``version`` (1.1 or 1.2); ``kind`` is ``client`` or ``server``."""
    code, text = _CODES[(version, kind)], escape(message)
    if version == "1.1":
        fault = f"<soap:Fault><faultcode>{code}</faultcode><faultstring>{text}</faultstring></soap:Fault>"
    else:
        fault = (f"<soap:Fault><soap:Code><soap:Value>{code}</soap:Value></soap:Code><soap:Reason>"
                 f'<soap:Text xml:lang="en">{text}</soap:Text></soap:Reason></soap:Fault>')
    return _envelope(version, fault)


def _envelope(version: str, body: str) -> bytes:
    return (f'<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="{_NS[version]}">'
            f"<soap:Body>{body}</soap:Body></soap:Envelope>").encode("utf-8")


class SoapMock:
    """Answers SOAP requests from ``operations``; ``generate(schema_location, seed)`` makes a value for an
    operation without an example (None: such an operation answers a Server Fault)."""

    def __init__(self, operations: tuple[SoapOperation, ...],
                 generate: Callable[[str, int], Any] | None = None, seed: int = 0) -> None:
        self.operations = operations
        self._generate = generate
        self._seed = seed
        self._by_action = {op.action: op for op in operations if op.action}
        self._by_element = {op.element: op for op in operations if op.element}

    @classmethod
    def from_engine(cls, engine: Any) -> SoapMock:
        """The SOAP operations of a ``MockEngine``'s contract (none without one)."""
        contract = engine.contract
        if contract is None:
            return cls(())
        raw_paths = next(iter(contract.docs.values())).contents.get("paths") or {}
        operations = []
        for op in contract.operations:
            raw = (raw_paths.get(op.path) or {}).get(op.method) if op.method == "post" else None
            if isinstance(raw, Mapping):
                found = _operation(op, raw, engine)
                if found is not None:
                    operations.append(found)
        return cls(tuple(operations), engine.generate, engine.seed)

    def answer(self, headers: Mapping[str, str], body: bytes) -> SoapAnswer:
        """The answer to one SOAP request (``headers``: lower-case names)."""
        content_type = headers.get("content-type", "")
        version = "1.2" if content_type.split(";", 1)[0].strip().lower() == "application/soap+xml" else "1.1"
        action = soap_action([(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()])
        parsed = _read_envelope(body)
        if isinstance(parsed, str):
            return self._fault(version, "client", parsed)
        version, element = parsed
        if action:
            op = self._by_action.get(action)
            if op is None:
                known = ", ".join(sorted(self._by_action)) or "none"
                return self._fault(version, "client", f"the SOAP action {action!r} is not an operation of this "
                                                      f"service; known actions: {known}.")
        else:
            op = self._by_element.get(element) if element else None
            if op is None:
                known = ", ".join(sorted(self._by_element)) or "none"
                return self._fault(version, "client", f"no operation answers a Body of <{element or ''}> without a "
                                                      f"SOAP action; known elements: {known}.")
        return self._answer(op, version)

    def _answer(self, op: SoapOperation, version: str) -> SoapAnswer:
        wanted = "application/soap+xml" if version == "1.2" else "text/xml"
        example = op.examples.get(wanted) or next(iter(op.examples.values()), None)
        if example is not None:
            return SoapAnswer(op.status, [("content-type", _CONTENT_TYPE[version])], example.encode("utf-8"))
        if op.schema is None or self._generate is None:
            return self._fault(version, "server", f"the operation {op.name} documents neither an example envelope "
                                                  "nor a response schema; add an example to the contract.")
        try:
            value = self._generate(op.schema, self._seed)
            inner = to_xml(value, op.root).split("?>", 1)[1]
        except Exception as exc:  # noqa: BLE001 - a schema the generator cannot serve answers a Fault
            return self._fault(version, "server", f"the operation {op.name} has no example and its response "
                                                  f"schema could not be generated ({exc}); add an example.")
        return SoapAnswer(op.status, [("content-type", _CONTENT_TYPE[version])], _envelope(version, inner))

    def _fault(self, version: str, kind: str, message: str) -> SoapAnswer:
        return SoapAnswer(500, [("content-type", _CONTENT_TYPE[version])], fault_envelope(version, kind, message))


def _operation(op: Any, raw: Mapping[str, Any], engine: Any) -> SoapOperation | None:
    """The SOAP view of a contract's POST operation, or None when it names no action nor element."""
    action, element = raw.get("x-soap-action"), raw.get("x-soap-operation")
    if not isinstance(action, str) and not isinstance(element, str):
        return None
    responses = sorted((s, r) for s, r in op.responses.items() if s[:1] == "2" or s == "default")
    status, examples, schema, root = 200, {}, None, "root"
    for code, response in responses:
        soap = {m: media for m, media in response.content.items() if m in _SOAP_TYPES or is_xml(m)}
        if not soap:
            continue
        status = int(code) if code.isdigit() else 200
        for media_type, media in soap.items():
            values = [media.example] if isinstance(media.example, str) else []
            values += [v for v in media.examples.values() if isinstance(v, str)]
            if values:
                examples.setdefault(media_type.split(";", 1)[0].strip().lower(), values[0])
            if schema is None and media.schema is not None:
                schema = media.schema
                root = engine._xml_root(media.schema)  # noqa: SLF001 - the engine's own XML naming
        break
    return SoapOperation(op.operation_id or f"POST {op.path}", action if isinstance(action, str) else None,
                         element if isinstance(element, str) else None, status, examples, schema, root)


def _read_envelope(body: bytes) -> tuple[str, str | None] | str:
    """The SOAP version of a request envelope and the local name of its Body's first child (None: empty Body);
    or the sentence saying why the body is not one."""
    if not body.strip():
        return "expected a SOAP envelope in the request body, found an empty body."
    if b"<!DOCTYPE" in body or b"<!ENTITY" in body:
        return "expected a SOAP envelope, found a document type declaration (SOAP forbids DTDs)."
    parser = XMLPullParser(events=("start", "end"))
    depth, version, element, body_seen = 0, None, None, False
    try:
        parser.feed(body)
        parser.close()
        for event, elem in parser.read_events():
            ns, _, local = elem.tag[1:].partition("}") if elem.tag.startswith("{") else ("", "", elem.tag)
            if event == "end":
                depth -= 1
                elem.clear()
                continue
            if depth == 0:
                version = {SOAP11_NS: "1.1", SOAP12_NS: "1.2"}.get(ns)
                if local != "Envelope" or version is None:
                    return (f"expected a SOAP 1.1 or 1.2 Envelope as the root element, found <{local}> in "
                            f"namespace {ns or 'none'!r}.")
            elif depth == 1 and local == "Body" and ns == _NS[version or "1.1"]:
                body_seen = True
            elif depth == 2 and body_seen and element is None:
                element = local
            depth += 1
    except ParseError as exc:
        return f"expected a well-formed XML envelope, found malformed XML ({exc})."
    if version is None or not body_seen:
        return "expected an Envelope with a Body, found none."
    return version, element
