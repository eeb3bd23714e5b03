"""The shop's orders service, for real: answers the routes of specs/orders.yaml.

POST /orders looks the customer up at the users node ($BATON_USERS_URL) and charges the total at the payments
node ($BATON_PAYMENTS_URL), then answers the order (no customer data in it).

A planted leak for the taint soak test, **off by default**: run with ``--leak-pii`` and the charge's ``source`` is the
customer's email instead of an opaque reference, so personal data crosses the orders -> payments edge, which
carries FINANCIAL data only (baton.yaml), to a third party. `baton test --canary` finds it.

It listens on $BATON_SERVICE_HOST:$BATON_SERVICE_PORT. As a process: baton slot orders "python services/orders.py".
"""

import json
import os
import re
import ssl
import sys
import urllib.error
import urllib.request
import uuid
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LEAK = "--leak-pii" in sys.argv[1:]
ORDERS: dict[str, dict] = {}
_TLS = ssl.create_default_context(cafile=os.environ.get("BATON_CA_FILE") or None)


def _call(base: str, method: str, path: str, body: object = None) -> tuple[int, object]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base.rstrip("/") + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"} if data else {})
    try:
        with urllib.request.urlopen(request, timeout=10, context=_TLS if base.startswith("https") else None) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _send(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802
        if self.path == "/health":
            return self._send(200, {"ok": True})
        if self.path.split("?")[0] == "/orders":
            return self._send(200, list(ORDERS.values())[-20:])
        match = re.fullmatch(r"/orders/([0-9a-f-]{36})", self.path)
        if match and match.group(1) in ORDERS:
            return self._send(200, ORDERS[match.group(1)])
        return self._send(404, {"error": "not found"})

    def do_POST(self) -> None:  # noqa: N802
        if self.path != "/orders":
            return self._send(404, {"error": "not found"})
        try:
            order = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
            user_id, total = int(order["user_id"]), order["total"]
            amount, currency = int(total["amount"]), str(total["currency"])
        except (ValueError, KeyError, TypeError):
            return self._send(422, {"error": "expected {user_id, total: {amount, currency}}"})
        status, user = _call(os.environ["BATON_USERS_URL"], "GET", f"/users/{user_id}")
        if status != 200 or not isinstance(user, dict):
            return self._send(422, {"error": f"no user {user_id}"})
        order_id = str(uuid.uuid4())
        source = user.get("email") if LEAK else f"order-{order_id}"
        status, charge = _call(os.environ["BATON_PAYMENTS_URL"], "POST", "/charges",
                               {"amount": max(amount, 1), "currency": currency, "source": source})
        paid = status == 200 and isinstance(charge, dict) and charge.get("status") == "succeeded"
        record = {"id": order_id, "user_id": user_id, "total": {"amount": amount, "currency": currency},
                  "status": "paid" if paid else "pending",
                  "created_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
        ORDERS[order_id] = record
        return self._send(201, record)

    def log_message(self, fmt: str, *args: object) -> None:
        print("INFO " + fmt % args, flush=True)


ThreadingHTTPServer.daemon_threads = True
HOST = os.environ.get("BATON_SERVICE_HOST", "127.0.0.1")
ThreadingHTTPServer((HOST, int(os.environ["BATON_SERVICE_PORT"])), Handler).serve_forever()
