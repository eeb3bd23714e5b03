"""SOAP awareness, pure: the action a request names, and whether a response body carries a ``soap:Fault``.

The action: SOAP 1.1 sends it in the ``SOAPAction`` header, quoted (``SOAPAction: "urn:x#Op"``); SOAP 1.2 in the
``action`` parameter of ``Content-Type: application/soap+xml; action="urn:x#Op"``. :func:`soap_action` reads
either, quotes stripped, and :func:`routing_headers` presents it as one unquoted ``SOAPAction`` header, so a
routing rule ``{"header": "SOAPAction", "value": "urn:x#Op"}`` matches both versions (on soap nodes).

The fault: :class:`FaultDetector` is fed a response body chunk by chunk as it passes (the body itself is never
held or changed). It reads markup tokens only (text, comments, CDATA and processing instructions are skipped,
so a Fault-looking string inside a text node or CDATA never counts), down to the first child element of the
envelope's ``Body``: a fault is that child being ``Fault`` in the envelope's namespace (SOAP 1.1
``http://schemas.xmlsoap.org/soap/envelope/`` or 1.2 ``http://www.w3.org/2003/05/soap-envelope``, any prefix).
Its code (1.1 ``faultcode``, 1.2 ``Code/Value``) is read when it comes within the budget. Bounds: at most
``MAX_HEAD`` bytes before the Body (room for a WS-Security header), ``MAX_BODY`` bytes after it, and a carry
of one incomplete tag of at most ``MAX_TOKEN`` bytes; past any of them the detector stops and says "no fault".
A gzip or deflate body is decoded on the fly, never beyond the same budget; other content codings (br, zstd)
are not scanned. Namespace declarations are collected from the tags read without scoping (a redeclared prefix
takes its last value), which is all the envelope's first levels need. UTF-16 bodies are not recognised.
Fast path: a first read that holds no ``Fault`` at all and ends with an ``</...Envelope>`` end tag (the usual
answer, whole in one read) is decided without tokenizing.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "MAX_BODY", "MAX_HEAD", "MAX_TOKEN", "SOAP11_NS", "SOAP12_NS", "FaultDetector", "SoapFault",
    "detector_for", "find_fault", "routing_headers", "soap_action",
]

SOAP11_NS = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12_NS = "http://www.w3.org/2003/05/soap-envelope"
_VERSIONS = {SOAP11_NS: "1.1", SOAP12_NS: "1.2"}
MAX_HEAD = 64 * 1024  # body bytes read looking for the Body's start tag
MAX_BODY = 4 * 1024  # bytes read after it for the first child and the fault code
MAX_TOKEN = 8 * 1024  # the longest incomplete tag carried from one chunk to the next
_MAX_DECLS = 64
_MAX_CODE = 256

_NAME = re.compile(rb"</?([^\s/>]+)")
_ATTR = re.compile(rb"""([^\s=/>]+)\s*=\s*(?:"([^"]*)"|'([^']*)')""")
_TAG_END = re.compile(rb"""(?:[^>"']|"[^"]*"|'[^']*')*>""")  # the rest of a tag, quoted '>' allowed
_ACTION = re.compile(r"""(?:^|;)\s*action\s*=\s*("(?:[^"\\]|\\.)*"|[^;\s]*)""", re.IGNORECASE)
_FAULT = re.compile(rb"Fault")  # a compiled search: ~6x faster than ``in`` on bytes here (CPython 3.11)
_XMLISH = (b"xml", b"multipart/related")  # text/xml, application/soap+xml, ...; MTOM's first part is the envelope


@dataclass(frozen=True, slots=True)
class SoapFault:
    """A ``soap:Fault`` found in a response: the SOAP version (``1.1``/``1.2``) and its code (may be empty)."""

    version: str
    code: str


# -- the action of a request --------------------------------------------------------------------------------

def soap_action(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """The action a request names (SOAPAction header, else the ``action`` of an application/soap+xml type),
    quotes stripped; None when it names none."""
    action = None
    content_type = None
    for name, value in headers:
        lname = name.lower()
        if lname == b"soapaction":
            action = value
        elif lname == b"content-type":
            content_type = value
    if action is not None:
        return _unquote(action.decode("latin-1").strip())
    if content_type is not None:
        return content_type_action(content_type.decode("latin-1"))
    return None


def content_type_action(content_type: str) -> str | None:
    """The ``action`` parameter of a Content-Type value, unquoted; None when absent."""
    base, _, params = content_type.partition(";")
    if not params:
        return None
    m = _ACTION.search(";" + params)
    return _unquote(m.group(1)) if m is not None else None


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value


def routing_headers(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """``headers`` as routing rules see them on a soap node: the action as one unquoted ``SOAPAction`` header
    (from SOAPAction or the content type's ``action``); the same list when there is nothing to change."""
    action = soap_action(headers)
    if action is None:
        return headers
    encoded = action.encode("latin-1", "replace")
    kept = [(n, v) for n, v in headers if n.lower() != b"soapaction"]
    kept.append((b"SOAPAction", encoded))
    return kept


# -- faults in a response ------------------------------------------------------------------------------------

def detector_for(status: int, headers: Iterable[tuple[bytes, bytes]], method: bytes) -> FaultDetector | None:
    """A detector for a response with these ``headers``, or None when its body cannot hold an envelope (no body,
    a content type that is not XML, a content coding other than gzip/deflate)."""
    if method == b"HEAD" or status < 200 or status in (204, 304):
        return None
    coding = b""
    for name, value in headers:
        lname = name.lower()
        if lname == b"content-type":
            lowered = value.lower()
            if not any(kind in lowered for kind in _XMLISH):
                return None
        elif lname == b"content-encoding":
            coding = value.strip().lower()
    if coding in (b"", b"identity"):
        return FaultDetector()
    if coding in (b"gzip", b"x-gzip", b"deflate"):
        return FaultDetector(coding.decode())
    return None


def find_fault(body: bytes, content_encoding: str = "") -> SoapFault | None:
    """The fault in a whole body, if any (the same bounds as streaming)."""
    detector = FaultDetector(content_encoding)
    detector.feed(body)
    return detector.fault


def _whole(data: bytes) -> bool:
    """Whether ``data`` ends with an envelope's end tag (so no later byte can hold the Body's first child)."""
    tail = data[-128:].rstrip()
    if not tail.endswith(b"Envelope>"):
        return False
    lt = tail.rfind(b"<")
    return lt >= 0 and tail[lt + 1:lt + 2] == b"/"


class FaultDetector:
    """Fed a response body chunk by chunk; ``fault`` is the ``SoapFault`` found (None: none, or not yet);
    ``done`` once it has decided (then ``feed`` costs nothing)."""

    __slots__ = ("done", "fault", "_carry", "_skip", "_decls", "_depth", "_phase", "_budget", "_ns",
                 "_code", "_capture", "_inflate")

    def __init__(self, content_encoding: str = "") -> None:
        self.done = False
        self.fault: SoapFault | None = None
        self._carry = b""  # an incomplete token from the previous chunk
        self._skip: bytes | None = None  # inside a comment, CDATA or PI: the terminator looked for
        self._decls: dict[bytes, bytes] = {}  # prefix (b"" for the default) -> namespace
        self._depth = 0
        self._phase = 0  # 0: before the Envelope, 1: before the Body, 2: in the Body, 3: in the Fault
        self._budget = MAX_HEAD
        self._ns = b""  # the envelope's namespace
        self._code = b""
        self._capture = False
        coding = content_encoding.lower()
        self._inflate = (zlib.decompressobj(47) if coding in ("gzip", "x-gzip")
                         else zlib.decompressobj() if coding == "deflate" else None)

    def feed(self, data: bytes) -> None:
        if self.done or not data:
            return
        if self._inflate is not None:
            try:
                data = self._inflate.decompress(self._inflate.unconsumed_tail + data, self._budget)
            except zlib.error:
                self._stop()
                return
        if len(data) > self._budget:
            data = data[: self._budget]
        if self._phase == 0 and not self._carry and _whole(data) and _FAULT.search(data) is None:
            self._stop()  # the common answer, whole in one read and naming no Fault: nothing to tokenize
            return
        self._budget -= len(data)
        buf = self._carry + data if self._carry else data
        self._carry = b""
        self._scan(buf)
        if not self.done and self._budget <= 0:
            self._stop()

    def _scan(self, buf: bytes) -> None:
        pos, end = 0, len(buf)
        while pos < end and not self.done:
            if self._skip is not None:
                found = buf.find(self._skip, pos)
                if found < 0:
                    self._carry = buf[max(pos, end - len(self._skip) + 1):]
                    return
                pos = found + len(self._skip)
                self._skip = None
                continue
            lt = buf.find(b"<", pos)
            if self._capture:
                self._take_code(buf[pos:end if lt < 0 else lt])
                if lt >= 0:
                    self._stop()
                    return
            if lt < 0:
                return
            if lt + 1 >= end or (buf[lt + 1] == 0x21 and end - lt < 9):  # '<' or '<!...': a comment? CDATA?
                self._keep(buf[lt:])
                return
            if buf.startswith(b"<!--", lt):
                self._skip, pos = b"-->", lt + 4
            elif buf.startswith(b"<![CDATA[", lt):
                self._skip, pos = b"]]>", lt + 9
            elif buf.startswith(b"<?", lt):
                self._skip, pos = b"?>", lt + 2
            elif buf.startswith(b"<!", lt):  # a DOCTYPE: SOAP forbids one, so this is no envelope
                self._stop()
            else:
                m = _TAG_END.match(buf, lt + 1)
                if m is None:
                    self._keep(buf[lt:])
                    return
                pos = m.end()
                phase = self._phase
                self._tag(buf[lt:pos])
                if phase < 2 <= self._phase:  # the Body began: read at most MAX_BODY more bytes
                    rest = min(end - pos, MAX_BODY)
                    self._budget = MAX_BODY - rest
                    end = pos + rest
                    buf = buf[:end]

    def _keep(self, tail: bytes) -> None:
        if len(tail) > MAX_TOKEN:
            self._stop()
        else:
            self._carry = tail

    def _tag(self, tag: bytes) -> None:
        m = _NAME.match(tag)
        if m is None:
            return
        prefix, _, local = m.group(1).rpartition(b":")
        if tag[1:2] == b"/":
            self._depth -= 1
            if self._phase >= 2 and self._depth < 2:  # the Body (or the Fault's code) ended: nothing more to find
                self._stop()
            return
        for am in _ATTR.finditer(tag, m.end()):
            attr = am.group(1)
            if (attr == b"xmlns" or attr.startswith(b"xmlns:")) and len(self._decls) < _MAX_DECLS:
                self._decls[attr[6:]] = am.group(2) if am.group(2) is not None else am.group(3)
        depth = self._depth
        if not tag.endswith(b"/>"):
            self._depth += 1
        ns = self._decls.get(prefix)
        phase = self._phase
        if phase == 0:
            if local != b"Envelope" or ns is None or ns.decode("latin-1") not in _VERSIONS:
                self._stop()  # the root is not a SOAP envelope
                return
            self._ns, self._phase = ns, 1
        elif phase == 1:
            if depth == 1 and local == b"Body" and ns == self._ns:
                self._phase = 2
        elif phase == 2:
            if local != b"Fault" or ns != self._ns:
                self._stop()  # the Body's first child is an answer
                return
            self.fault = SoapFault(_VERSIONS[self._ns.decode("latin-1")], "")
            self._phase = 3
            if tag.endswith(b"/>"):
                self._stop()
        elif local == (b"faultcode" if self.fault is not None and self.fault.version == "1.1" else b"Value"):
            self._capture = not tag.endswith(b"/>")
            if not self._capture:
                self._stop()

    def _take_code(self, text: bytes) -> None:
        room = _MAX_CODE - len(self._code)
        if room > 0:
            self._code += text[:room]

    def _stop(self) -> None:
        self.done = True
        self._carry = b""
        self._inflate = None
        if self.fault is not None and self._code:
            code = self._code.decode("utf-8", "replace").strip()
            self.fault = SoapFault(self.fault.version, code)
