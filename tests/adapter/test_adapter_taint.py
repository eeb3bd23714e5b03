"""Taint scanning in the adapter: canaries found in request and response heads and bodies as they stream,
in every encoding the values promise, split across chunks, gzip-compressed, and in seeded mock responses."""

from __future__ import annotations

import asyncio
import gzip
import json
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
from aiohttp import web
from yarl import URL

from baton_adapter.node import Node
from baton_adapter.taint.values import KINDS, canary_value

from _adapter_support import app_server, raw_exchange, read_chunked, read_head, run, running_node

# one fingerprint per kind and use; ssn fingerprints are below 10**8 (0x05f5e100)
FP = {
    kind: [f"{base + i:08x}" for i in range(40)]
    for kind, base in zip(KINDS, (0x0A1B2C00, 0x1C2D3E00, 0x00ABC000, 0x2E3F4000, 0x3F405000), strict=True)
}


def canaries(*kinds: str, count: int = 40) -> list[dict[str, str]]:
    return [{"fingerprint": fp, "kind": kind} for kind in kinds or KINDS for fp in FP[kind][:count]]


def value(kind: str, index: int) -> str:
    return canary_value(kind, FP[kind][index])


class Replies:
    """A backend answering each path with the headers and body chunks a test put there (chunked when several)."""

    def __init__(self) -> None:
        self.replies: dict[str, tuple[dict[str, str], list[bytes]]] = {}
        self.received: dict[str, bytes] = {}

    def set(self, path: str, body: bytes | list[bytes] = b"ok", headers: dict[str, str] | None = None) -> str:
        self.replies[path] = (headers or {}, body if isinstance(body, list) else [body])
        return path

    def app(self) -> web.Application:
        async def handler(request: web.Request) -> web.StreamResponse:
            self.received[request.path] = await request.read()
            headers, chunks = self.replies.get(request.path, ({}, [b"ok"]))
            if len(chunks) == 1:
                return web.Response(body=chunks[0], headers=headers)
            resp = web.StreamResponse(headers=headers)
            resp.enable_chunked_encoding()
            await resp.prepare(request)
            for chunk in chunks:
                await resp.write(chunk)  # aiohttp writes each as its own HTTP chunk
            await resp.write_eof()
            return resp

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handler)
        return app


@asynccontextmanager
async def scanning_node(replies: Replies, body: dict[str, Any] | None = None,
                        **fields: Any) -> AsyncIterator[tuple[Node, aiohttp.ClientSession, str]]:
    """A node proxying to ``replies``' backend with taint scanning on (``body``: the PUT /taint body)."""
    async with app_server(replies.app()) as port, running_node(backend={"port": port}, **fields) as node, \
            aiohttp.ClientSession() as client:
        manage = f"http://127.0.0.1:{node.management_port}"
        put = body or {"enabled": True, "generation": "g1", "canaries": canaries(), "seed": []}
        async with client.put(manage + "/taint", json=put) as resp:
            assert resp.status == 200, await resp.text()
        yield node, client, manage


async def sightings(client: aiohttp.ClientSession, manage: str) -> list[dict[str, Any]]:
    """Every sighting the node holds (paging through GET /taint)."""
    found: list[dict[str, Any]] = []
    since = 0
    while True:
        async with client.get(manage + "/taint", params={"since": str(since)}) as resp:
            data = await resp.json()
        if not data["sightings"]:
            return found
        found += data["sightings"]
        since = data["next"]


def by_fingerprint(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        out.setdefault(row["fingerprint"], []).append(row)
    return out


def test_every_kind_is_found_in_request_and_response_bodies_and_headers() -> None:
    replies = Replies()

    async def main() -> None:
        async with scanning_node(replies) as (node, client, manage):
            base = f"http://127.0.0.1:{node.port}"
            for kind in KINDS:
                path = replies.set(f"/{kind}", json.dumps({"value": value(kind, 1)}).encode(),
                                   {"X-Out": value(kind, 3)})
                headers = {"X-In": value(kind, 2), "traceparent": f"00-{'ab' * 16}-{'cd' * 8}-01"}
                async with client.post(base + path, json={"value": value(kind, 0)}, headers=headers) as resp:
                    assert resp.status == 200
                    assert value(kind, 1) in await resp.text()  # forwarded untouched
            rows = by_fingerprint(await sightings(client, manage))
            for kind in KINDS:
                for index, (direction, part, header) in enumerate(
                        [("request", "body", ""), ("response", "body", ""), ("request", "header", "x-in"),
                         ("response", "header", "x-out")]):
                    [row] = rows[FP[kind][index]]
                    assert (row["direction"], row["part"], row["header"]) == (direction, part, header), (kind, row)
                    assert row["kind"] == kind and row["node"] == "api" and row["method"] == "POST"
                    assert row["path"] == f"/{kind}" and row["status"] == 200 and row["target"] == "primary"
                    assert row["trace_id"] == "ab" * 16
            assert len(rows) == 4 * len(KINDS)

    run(main())


def _encodings(kind: str, text: str) -> dict[str, bytes]:
    """``text`` the ways services re-encode data: JSON, forms, percent-encoding, case, other separators."""
    if kind == "card":
        changed = " ".join(text[i:i + 4] for i in range(0, 16, 4))
    else:
        changed = text.replace(*{"email": ("-", "_"), "name": ("_", "."), "ssn": ("-", " "), "phone": ("-", ".")}[kind])
    return {
        "json": json.dumps({"v": text, "list": [text]}, ensure_ascii=True).encode(),
        "form": urlencode({"v": text, "other": "x y"}).encode(),
        "percent": quote(text, safe="").encode(),
        "percent-all": "".join(c if c.isalnum() else f"%{ord(c):02X}" for c in text).encode(),
        "upper": text.upper().encode(),
        "lower": text.lower().encode(),
        "separators": changed.encode(),
    }


def test_each_encoding_of_each_kind_is_found() -> None:
    replies = Replies()

    async def main() -> None:
        async with scanning_node(replies) as (node, client, manage):
            base = f"http://127.0.0.1:{node.port}"
            expected = {}
            for kind in KINDS:
                names = list(_encodings(kind, value(kind, 0)))
                for index, name in enumerate(names):
                    body = _encodings(kind, value(kind, 10 + index))[name]
                    async with client.post(base + f"/{kind}/{name}", data=body) as resp:
                        assert resp.status == 200
                    expected[FP[kind][10 + index]] = (kind, name, body)
                # the request target: a percent-encoded query string
                query = quote(value(kind, 30), safe="")
                async with client.get(URL(f"{base}/{kind}/query?q={query}&x=1", encoded=True)) as resp:
                    assert resp.status == 200
                expected[FP[kind][30]] = (kind, "query", query.encode())
            rows = by_fingerprint(await sightings(client, manage))
            for fp, (kind, name, body) in expected.items():
                assert fp in rows, f"{kind} {name} not found in {body!r}"
                [row] = rows[fp]
                assert row["direction"] == "request" and row["kind"] == kind
                if name == "query":
                    assert (row["part"], row["header"], row["path"]) == ("header", ":path", f"/{kind}/query")
                else:
                    assert row["part"] == "body"
            assert len(rows) == len(expected)

    run(main())


def test_a_canary_split_across_two_chunks_is_found_once_each_way() -> None:
    replies = Replies()
    text = value("card", 5).encode()
    back = value("phone", 5).encode()

    async def main() -> None:
        path = replies.set("/split", [b'{"pan": "' + back[:7], back[7:] + b'", "again": "' + back + b'"}'])
        async with scanning_node(replies) as (node, client, manage):
            reader, writer = await asyncio.open_connection("127.0.0.1", node.port)
            body = [b'{"card": "' + text[:9], text[9:] + b'"}']  # the split falls inside the canary
            writer.write(b"POST %s HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n" % path.encode())
            for chunk in body:
                writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                await writer.drain()
            writer.write(b"0\r\n\r\n")
            status, headers, _ = await read_head(reader)
            assert status == 200 and headers.get("transfer-encoding") == "chunked"
            assert await read_chunked(reader) == b'{"pan": "' + back + b'", "again": "' + back + b'"}'
            writer.close()
            assert replies.received[path] == b"".join(body)
            rows = by_fingerprint(await sightings(client, manage))
            assert [(r["direction"], r["part"]) for r in rows[FP["card"][5]]] == [("request", "body")]
            assert [(r["direction"], r["part"]) for r in rows[FP["phone"][5]]] == [("response", "body")]

    run(main())


def test_gzip_and_deflate_responses_are_scanned_and_forwarded_untouched() -> None:
    replies = Replies()
    plain = json.dumps({"users": [{"email": value("email", 6)}, {"filler": "x" * 5000}]}).encode()
    packed = gzip.compress(plain)
    deflated = zlib.compress(json.dumps({"ssn": value("ssn", 6)}).encode())
    raw_deflate = zlib.compressobj(wbits=-15)
    raw = raw_deflate.compress(json.dumps({"name": value("name", 6)}).encode()) + raw_deflate.flush()

    async def main() -> None:
        half = len(packed) // 2
        replies.set("/gzip", [packed[:half], packed[half:]], {"Content-Encoding": "gzip"})
        replies.set("/deflate", deflated, {"Content-Encoding": "deflate"})
        replies.set("/raw", raw, {"Content-Encoding": "deflate"})
        replies.set("/br", b"canary-" + FP["email"][7].encode(), {"Content-Encoding": "br"})
        async with scanning_node(replies) as (node, client, manage):
            for path, sent in (("/gzip", packed), ("/deflate", deflated), ("/raw", raw)):
                status, headers, body = await raw_exchange(
                    node.port, b"GET %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n" % path.encode())
                assert status == 200 and headers["content-encoding"] in ("gzip", "deflate")
                assert body == sent  # the client gets the compressed bytes as the backend sent them
            await raw_exchange(node.port, b"GET /br HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            rows = by_fingerprint(await sightings(client, manage))
            for kind in ("email", "ssn", "name"):
                assert [(r["direction"], r["part"]) for r in rows[FP[kind][6]]] == [("response", "body")]
            assert FP["email"][7] not in rows  # br is not decoded here: that body is skipped, not read raw
            async with client.get(manage + "/taint") as resp:
                assert (await resp.json())["scanned"]["skipped"] == 1

    run(main())


def test_inactive_fingerprints_and_other_families_are_not_reported() -> None:
    replies = Replies()

    async def main() -> None:
        email_fp = FP["email"][0]  # active as an email canary
        body = " ".join([
            canary_value("email", "deadbeef"),  # canary-shaped, not active
            canary_value("card", "0badf00d"),
            canary_value("phone", email_fp),  # an active fingerprint in the wrong family
        ]).encode()
        async with scanning_node(replies, {"enabled": True, "generation": "g", "seed": [],
                                           "canaries": canaries("email", count=1)}) as (node, client, manage):
            async with client.post(f"http://127.0.0.1:{node.port}/x", data=body) as resp:
                assert resp.status == 200
            assert await sightings(client, manage) == []
            async with client.post(f"http://127.0.0.1:{node.port}/x", data=canary_value("email", email_fp)) as resp:
                assert resp.status == 200
            assert [r["fingerprint"] for r in await sightings(client, manage)] == [email_fp]

    run(main())


def test_a_soap_node_is_scanned_too() -> None:
    replies = Replies()
    envelope = (f'<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>'
                f'<GetUser><ssn>{value("ssn", 8)}</ssn></GetUser></soap:Body></soap:Envelope>').encode()

    async def main() -> None:
        replies.set("/soap", f"<user><phone>{value('phone', 8)}</phone></user>".encode(), {"Content-Type": "text/xml"})
        async with scanning_node(replies, mode="soap") as (node, client, manage):
            async with client.post(f"http://127.0.0.1:{node.port}/soap", data=envelope,
                                   headers={"Content-Type": "text/xml", "SOAPAction": "GetUser"}) as resp:
                assert resp.status == 200
            rows = by_fingerprint(await sightings(client, manage))
            assert rows[FP["ssn"][8]][0]["direction"] == "request"
            assert rows[FP["phone"][8]][0]["direction"] == "response"

    run(main())


CONTRACT = """
openapi: 3.0.3
info: {title: People, version: 1.0.0}
paths:
  /people/{id}:
    get:
      parameters:
        - {name: id, in: path, required: true, schema: {type: integer}}
      responses:
        "200":
          description: A person.
          headers:
            X-Contact: {schema: {type: string, format: email}}
          content:
            application/json:
              schema: {$ref: "#/components/schemas/Person"}
              example: {id: 1, email: ada@example.com, fullName: Ada, ssn: "123-45-6789", card_number: "1", phone: "1"}
components:
  schemas:
    Person:
      type: object
      required: [id, email, fullName, ssn, card_number, phone, short_email, role, tax, code]
      properties:
        id: {type: integer}
        email: {type: string, format: email}
        fullName: {type: string}
        ssn: {type: string}
        card_number: {type: string, pattern: "^[0-9]{16}$"}
        phone: {type: string, maxLength: 14}
        short_email: {type: string, maxLength: 10}
        role: {type: string, enum: [admin, user]}
        tax: {type: string, pattern: "^[0-9]{3}-[0-9]{2}-[0-9]{4}$"}
        code: {type: string}
"""


def test_a_mocked_node_with_seeds_answers_with_canaries_in_matching_fields(tmp_path: Path) -> None:
    contract = tmp_path / "people.yaml"
    contract.write_text(CONTRACT)

    async def main() -> None:
        async with running_node(backend={"mock": True}, contract=str(contract)) as node, \
                aiohttp.ClientSession() as client:
            manage = f"http://127.0.0.1:{node.management_port}"
            base = f"http://127.0.0.1:{node.port}"
            async with client.get(base + "/people/7") as resp:
                unseeded = await resp.json()
            assert unseeded["email"] == "ada@example.com"  # the contract's example, while nothing is seeded
            seeds = [{"fingerprint": FP[kind][9], "kind": kind} for kind in KINDS]
            body = {"enabled": True, "generation": "g1", "canaries": canaries(), "seed": seeds}
            async with client.put(manage + "/taint", json=body) as resp:
                assert await resp.json() == {"node": "api", "enabled": True, "generation": "g1",
                                             "canaries": 5 * 40, "seeded": 5}
            async with client.get(base + "/people/7") as resp:
                person = await resp.json()
                contact = resp.headers["X-Contact"]
            assert person["email"] == value("email", 9)
            assert person["fullName"] == value("name", 9)
            assert person["ssn"] == value("ssn", 9)
            assert person["tax"] == value("ssn", 9)  # the pattern of an SSN
            assert person["card_number"] == value("card", 9)  # 16 digits: the pattern admits it
            assert person["phone"] == value("phone", 9).replace("-", "")  # maxLength 14: without separators
            assert "canary" not in person["short_email"].lower()  # too long for maxLength 10
            assert person["role"] in ("admin", "user") and "canary" not in person["code"].lower()
            assert contact == value("email", 9)  # format email, in a header
            rows = by_fingerprint(await sightings(client, manage))
            for kind in KINDS:  # the mock's answer leaves the node: scanned as a response
                assert ("response", "body") in {(r["direction"], r["part"]) for r in rows[FP[kind][9]]}, kind
                assert all(r["target"] == "primary" and r["status"] == 200 for r in rows[FP[kind][9]])
            async with client.delete(manage + "/taint") as resp:
                assert await resp.json() == {"node": "api", "enabled": False}
            async with client.get(base + "/people/7") as resp:
                assert await resp.json() == unseeded  # seeds gone: the mock answers as before

    run(main())
