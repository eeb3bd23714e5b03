"""A stand-in for the Cloud Run Admin API v2 (REST), for tests: the subset Baton's provider uses.

Services (create, get, list, patch, delete), revisions (list, get), long-running operations (get), and the
IAM policy methods, answered in proto3 JSON built from the real client's own message types. Each revision's
containers run as local Docker containers (the ingress container owns the network namespace, sidecars join
it, so a sidecar is on the ingress container's localhost), and each service's URL is a router on 127.0.0.1
that splits requests across revisions by the service's traffic percentages, so traffic really flows.

    python -m cloudrun_standin --port 0        # prints {"event": "ready", "port": P} on stdout

Test hooks under ``/standin/``: ``POST /standin/faults`` makes the next calls fail (see :mod:`.faults`),
``GET /standin/calls`` counts API calls by method.
"""

from .app import STANDIN_LABEL, build_app

__all__ = ["STANDIN_LABEL", "build_app"]
