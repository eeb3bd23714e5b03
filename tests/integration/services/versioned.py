"""A tiny JSON service for integration tests: answers every GET with its version.

Usage: python versioned.py VERSION [fail|slow]  (listens on $BATON_SERVICE_PORT, HTTP/1.1 keep-alive)
  fail: every answer is a 500; slow: every answer takes 0.6 s; die: exits 4 s after starting
  (connections are refused from then on); once MARKER: serves the first time, and crashes at start
  whenever MARKER exists (a service that cannot be restarted); late MARKER: serves the first time, and
  takes a minute to start whenever MARKER exists (a restart that stays in flight).
"""

import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

VERSION = sys.argv[1] if len(sys.argv) > 1 else "v1"
MODE = sys.argv[2] if len(sys.argv) > 2 else ""


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in separate writes

    def do_GET(self) -> None:  # noqa: N802
        body = json.dumps({"version": VERSION, "node": os.environ.get("BATON_NODE_NAME"), "path": self.path}).encode()
        if MODE == "slow":
            time.sleep(0.6)
        self.send_response(500 if MODE == "fail" and self.path != "/health" else 200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


if MODE == "once":
    from pathlib import Path

    marker = Path(sys.argv[3])
    if marker.exists():
        print("ERROR cannot start: the marker says this service already ran", flush=True)
        sys.exit(3)
    marker.write_text("ran")

if MODE == "late":
    from pathlib import Path

    marker = Path(sys.argv[3])
    if marker.exists():
        time.sleep(60)
    marker.write_text("ran")

if MODE == "die":
    import threading

    threading.Timer(4.0, lambda: os._exit(0)).start()

ThreadingHTTPServer.daemon_threads = True
server = ThreadingHTTPServer(("127.0.0.1", int(os.environ["BATON_SERVICE_PORT"])), Handler)
print(f"INFO serving {VERSION} on {server.server_address[1]}", flush=True)
server.serve_forever()
