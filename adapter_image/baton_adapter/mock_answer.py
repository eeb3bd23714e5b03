"""An exchange answered by its node's in-process mock (the contract mock standing in for a backend): the
answer is computed whole, scanned for taint like a backend's, framed and written in one go."""

from __future__ import annotations

import json
from typing import Any

from .headers import build_response_head

__all__ = ["answer_from_mock", "NO_BODY_STATUS"]

NO_BODY_STATUS = frozenset({204, 304})


def answer_from_mock(ex: Any) -> None:
    """Answer ``ex`` (an ``exchange.Exchange`` whose request body is complete) from its node's mock."""
    node = ex.node
    name = ex.target.name if ex.target is not None else "mock"
    try:
        status, reason, headers, body = node.mock_answer(ex.method, ex.url, ex.headers, b"".join(ex.body))
    except Exception as exc:  # a broken contract must not take the node down
        node.log.exception("mock for node %s failed", node.name)
        status, reason, headers, body = 500, b"Internal Server Error", [], json.dumps(
            {"error": f"mock failed: {exc}"}).encode()
    ex.body = []
    node.telemetry.attempt(name, status)
    ex.mock_answered(status, headers, body)
    ex.status = status
    no_body = ex.method == b"HEAD" or status in NO_BODY_STATUS
    if ex.scan is not None:  # the mock's answer leaves the node like a backend's
        ex.scan.response_head(status, headers, name, ex.trace_id)
        if not no_body:
            ex.scan.response_body(body)
    framing = b"Content-Length: %d\r\n" % len(body) if status not in NO_BODY_STATUS else b""
    if ex.down.closing:
        ex.keep_alive = False
    head = build_response_head(status, reason, headers, framing, ex.keep_alive)
    ex.down.transport.write(head if no_body else head + body)
    ex.response_started = True
    ex.bytes_out = 0 if no_body else len(body)
    ex.finish(status)
