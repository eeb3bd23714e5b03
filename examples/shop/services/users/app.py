"""The shop's users service, for real: answers GET /users/{id} and /health as specs/users.yaml says.

It listens on $BATON_SERVICE_HOST:$BATON_SERVICE_PORT (loopback as a process, every interface in a container).
As a process: baton slot users "python services/users.py"; as an image: baton image build --node users --path
services/users (or register it and `baton deploy --provider docker --build`).
"""

import json
import os
import re
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

USERS = {42: {"id": 42, "email": "ada@example.com", "name": "Ada Lovelace", "phone": None}}


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
        match = re.fullmatch(r"/users/(\d+)", self.path)
        if match is None:
            return self._send(404, {"error": "not found", "code": 404})
        user_id = int(match.group(1))
        user = USERS.get(user_id) or {"id": user_id, "email": f"user{user_id}@example.com", "name": f"User {user_id}",
                                      "phone": None}
        return self._send(200, user)

    def log_message(self, fmt: str, *args: object) -> None:
        print("INFO " + fmt % args, flush=True)


ThreadingHTTPServer.daemon_threads = True
HOST = os.environ.get("BATON_SERVICE_HOST", "127.0.0.1")
ThreadingHTTPServer((HOST, int(os.environ["BATON_SERVICE_PORT"])), Handler).serve_forever()
