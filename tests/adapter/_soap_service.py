"""A tiny real SOAP service for the adapter tests (not a test module), described by tests/fixtures/soap/calc.wsdl.

``POST /calc`` answers one operation per SOAP action (1.1 ``SOAPAction`` header or 1.2 content-type ``action``), in
the request's SOAP version: ``Add`` (a + b), ``Echo`` (the text, prefixed with the service's name), ``Boom`` (a
Fault with HTTP 500), ``Quiet`` (a Fault with HTTP 200). With ``chunked`` every answer is streamed in two chunks cut
in the middle (inside ``<soap:Fault>`` for a Fault); with ``faulty`` Echo answers as Quiet does. ``GET /health`` answers ``ok``, or a Fault with HTTP 200 when
``health_fault``. Every call's action is appended to ``app[CALLS]``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from xml.etree import ElementTree
from xml.sax.saxutils import escape

from aiohttp import web

WSDL = Path(__file__).resolve().parents[1] / "fixtures" / "soap" / "calc.wsdl"
CALLS = web.AppKey("calls", list)
NS = {"1.1": "http://schemas.xmlsoap.org/soap/envelope/", "1.2": "http://www.w3.org/2003/05/soap-envelope"}
TYPES = {"1.1": "text/xml; charset=utf-8", "1.2": "application/soap+xml; charset=utf-8"}


def envelope(version: str, body: str) -> bytes:
    return (f'<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="{NS[version]}">'
            f"<soap:Body>{body}</soap:Body></soap:Envelope>").encode()


def fault(version: str, code: str, text: str) -> bytes:
    if version == "1.1":
        return envelope(version, f"<soap:Fault><faultcode>soap:{code}</faultcode><faultstring>{escape(text)}"
                                 "</faultstring></soap:Fault>")
    code = {"Server": "Receiver", "Client": "Sender"}.get(code, code)
    return envelope(version, f"<soap:Fault><soap:Code><soap:Value>soap:{code}</soap:Value></soap:Code><soap:Reason>"
                             f'<soap:Text xml:lang="en">{escape(text)}</soap:Text></soap:Reason></soap:Fault>')


def _action(request: web.Request) -> tuple[str, str]:
    content_type = request.headers.get("Content-Type", "")
    if content_type.startswith("application/soap+xml"):
        for param in content_type.split(";")[1:]:
            key, _, value = param.strip().partition("=")
            if key == "action":
                return "1.2", value.strip('"')
        return "1.2", ""
    return "1.1", request.headers.get("SOAPAction", "").strip().strip('"')


def soap_app(name: str = "svc", *, chunked: bool = False, health_fault: bool = False,
             faulty: bool = False) -> web.Application:
    async def calc(request: web.Request) -> web.StreamResponse:
        version, action = _action(request)
        request.app[CALLS].append(action)
        root = ElementTree.fromstring(await request.read())
        values = {el.tag.split("}")[-1]: el.text or "" for el in root.iter()}
        op = action.rpartition("#")[2]
        status = 200
        if op == "Add":
            body = envelope(version, f'<AddResponse xmlns="urn:calc"><result>{int(values["a"]) + int(values["b"])}'
                                     "</result></AddResponse>")
        elif op == "Echo" and not faulty:
            body = envelope(version, f'<EchoResponse xmlns="urn:calc"><text>{escape(name)}:{escape(values["text"])}'
                                     "</text></EchoResponse>")
        elif op in ("Boom", "Quiet", "Echo"):  # Echo: only when faulty
            status = 500 if op == "Boom" else 200
            body = fault(version, "Server", f"{op} failed on {name}")
        else:
            status, body = 500, fault(version, "Client", f"unknown action {action!r}")
        if not chunked:
            return web.Response(status=status, body=body, headers={"Content-Type": TYPES[version]})
        response = web.StreamResponse(status=status, headers={"Content-Type": TYPES[version]})
        response.enable_chunked_encoding()
        await response.prepare(request)
        cut = body.find(b"Fault>") + 3 if b"Fault>" in body else len(body) // 2  # "<soap:Fau" | "lt>..."
        await response.write(body[:cut])
        await asyncio.sleep(0.05)
        await response.write(body[cut:])
        await response.write_eof()
        return response

    async def health(request: web.Request) -> web.Response:
        if health_fault:
            return web.Response(body=fault("1.1", "Server", "database down"), content_type="text/xml")
        return web.Response(text="ok")

    app = web.Application()
    app[CALLS] = []
    app.router.add_post("/calc", calc)
    app.router.add_get("/health", health)
    return app
