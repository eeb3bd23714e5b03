"""``python -m baton_adapter.healthcheck``: the container HEALTHCHECK.

Healthy when every node in ``$BATON_ADAPTER_CONFIG`` answers its management
``/health`` (with the node's bearer token when it has one). The verdict about
the *backend* is not the container's health: an adapter whose service is down
is still a working adapter. Standard library only.

With ``management_tls`` the probe speaks HTTPS to the container's own loopback port without checking the
certificate (it asks whether the adapter answers, not who it is), presenting the node's own certificate when
the port asks for client certificates (issue it for both server and client authentication then).
"""

from __future__ import annotations

import json
import os
import ssl
import sys
import urllib.error
import urllib.request

from .config import TlsConfig, load_config


def main() -> int:
    path = os.environ.get("BATON_ADAPTER_CONFIG", "/etc/baton/adapter.json")
    try:
        config = load_config(path)
    except Exception as exc:  # noqa: BLE001 - any config problem is an unhealthy container
        print(f"unhealthy: cannot read {path}: {exc}", file=sys.stderr)
        return 1
    for node in config.nodes:
        host = node.management_host if node.management_host not in ("0.0.0.0", "::", "") else "127.0.0.1"
        tls = node.management_tls
        scheme = "http" if tls is None else "https"
        request = urllib.request.Request(f"{scheme}://{host}:{node.management_port}/health")
        try:
            token = node.token()
        except LookupError as exc:
            print(f"unhealthy: node {node.name}: {exc}", file=sys.stderr)
            return 1
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            context = None if tls is None else _probe_context(tls)
            with urllib.request.urlopen(request, timeout=2, context=context) as response:  # noqa: S310 - own port
                json.loads(response.read())
        except (urllib.error.URLError, OSError, ValueError) as exc:
            print(f"unhealthy: node {node.name}: {exc}", file=sys.stderr)
            return 1
    return 0


def _probe_context(tls: TlsConfig) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if tls.client_auth != "none":
        context.load_cert_chain(tls.cert_file, tls.key_file)
    return context


if __name__ == "__main__":
    sys.exit(main())
