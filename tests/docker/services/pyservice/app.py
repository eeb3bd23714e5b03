"""A service for image tests: answers JSON on $BATON_SERVICE_PORT on all interfaces (inside a container)."""

import json
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import six  # from requirements.txt: proves the offline wheels were installed

VERSION = os.environ.get("SERVICE_VERSION", "img-v1")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def do_GET(self) -> None:  # noqa: N802
        body = json.dumps({"version": VERSION, "six": six.__version__, "path": self.path}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


ThreadingHTTPServer(("0.0.0.0", int(os.environ["BATON_SERVICE_PORT"])), Handler).serve_forever()
