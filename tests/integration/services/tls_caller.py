"""A service for the TLS tests: GET /call calls its dependency (BATON_<DEP>_URL, https in a TLS circuit)
with nothing but the environment Baton gave it (Python's default TLS context reads SSL_CERT_FILE) and
answers what came back. Usage: python tls_caller.py DEP (listens on $BATON_SERVICE_PORT)."""

import json
import os
import ssl
import sys
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DEPENDENCY = sys.argv[1].upper()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802
        if self.path == "/call":
            url = os.environ[f"BATON_{DEPENDENCY}_URL"] + "/"
            try:
                with urllib.request.urlopen(url, timeout=10, context=ssl.create_default_context()) as answer:
                    result = {"url": url, "status": answer.status}
            except urllib.error.HTTPError as exc:
                result = {"url": url, "status": exc.code}
            except (urllib.error.URLError, OSError) as exc:
                result = {"url": url, "error": str(getattr(exc, "reason", exc))}
        else:
            result = {"ok": True}
        body = json.dumps(result).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


ThreadingHTTPServer(("127.0.0.1", int(os.environ["BATON_SERVICE_PORT"])), Handler).serve_forever()
