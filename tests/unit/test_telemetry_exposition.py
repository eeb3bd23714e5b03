"""One exposition of the whole circuit from each adapter's ``/metrics/prometheus``: families merged by name with
one HELP and one TYPE, every sample keeping (or given) its node label, a counter written with ``_total`` also
when the adapter's TYPE line named it without, conflicts and unparsable texts left out with a note; and
``promtool check metrics`` (Debian's prometheus package) accepts the result."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
from prometheus_client.parser import text_string_to_metric_families

from baton.telemetry.exposition import merge_expositions

# the adapter's exposition as the issue found it: TYPE lines naming counters without their _total samples
OLD_STYLE = """\
# HELP baton_requests_total Client requests finished, by target and status class.
# TYPE baton_requests_total counter
baton_requests_total{node="gateway",role="ingress",target="primary",status_class="2xx"} 7
# HELP baton_requests_failed Client requests that ended in a 5xx or a connection error.
# TYPE baton_requests_failed counter
baton_requests_failed_total{node="gateway",role="ingress"} 1
# HELP baton_latency_seconds Client request latency through the adapter.
# TYPE baton_latency_seconds histogram
baton_latency_seconds_bucket{node="gateway",role="ingress",target="primary",le="0.1"} 6
baton_latency_seconds_bucket{node="gateway",role="ingress",target="primary",le="+Inf"} 7
baton_latency_seconds_sum{node="gateway",role="ingress",target="primary"} 0.31
baton_latency_seconds_count{node="gateway",role="ingress",target="primary"} 7
# HELP baton_bytes_sent Response body bytes sent to clients.
# TYPE baton_bytes_sent counter
baton_bytes_sent_total{node="gateway",role="ingress"} 2048
"""

# a valid one, as prometheus_client writes it; its samples carry no node label
NEW_STYLE = """\
# HELP baton_requests_total Client requests finished, by target and status class.
# TYPE baton_requests_total counter
baton_requests_total{role="internal",status_class="5xx",target="stable"} 3.0
# HELP baton_requests_failed_total Client requests that ended in a 5xx or a connection error.
# TYPE baton_requests_failed_total counter
baton_requests_failed_total{role="internal"} 3.0
# HELP baton_active_connections Open client connections on the data port.
# TYPE baton_active_connections gauge
baton_active_connections{role="internal"} 2.0
"""

CONFLICT = """\
# HELP baton_active_connections Something else.
# TYPE baton_active_connections counter
baton_active_connections_total{node="odd"} 1
"""


def _families(text: str) -> dict:
    return {f.name: f for f in text_string_to_metric_families(text)}


def test_families_merge_by_name_with_node_labels_and_one_help_and_type_each() -> None:
    merged = merge_expositions({"gateway": OLD_STYLE, "api": NEW_STYLE})
    assert merged.notes == []
    lines = merged.text.splitlines()
    for family in ("baton_requests_total", "baton_requests_failed_total", "baton_bytes_sent_total",
                   "baton_latency_seconds", "baton_active_connections"):
        assert lines.count(next(line for line in lines if line.startswith(f"# TYPE {family} "))) == 1
        assert sum(1 for line in lines if line.startswith(f"# HELP {family} ")) == 1
    families = _families(merged.text)
    requests = families["baton_requests"]
    assert requests.type == "counter"
    assert {(s.labels["node"], s.value) for s in requests.samples} == {("gateway", 7.0), ("api", 3.0)}
    failed = families["baton_requests_failed"]
    assert failed.type == "counter" and {s.labels["node"] for s in failed.samples} == {"gateway", "api"}
    assert "# TYPE baton_requests_failed_total counter" in lines
    assert families["baton_bytes_sent"].samples[0].name == "baton_bytes_sent_total"
    assert [s.labels["node"] for s in families["baton_active_connections"].samples] == ["api"]
    assert merged.families == 5 and merged.samples == 2 + 2 + 4 + 1 + 1


def test_conflicting_types_and_unparsable_texts_are_left_out_with_a_note() -> None:
    merged = merge_expositions({"api": NEW_STYLE, "odd": CONFLICT, "broken": "baton_x{node=\"a\" 1\n"})
    assert len(merged.notes) == 2
    assert "odd declares baton_active_connections a counter, another node a gauge" in merged.notes[0]
    assert "the exposition of broken does not parse" in merged.notes[1]
    assert [s.labels["node"] for s in _families(merged.text)["baton_active_connections"].samples] == ["api"]


def test_the_same_sample_twice_is_written_once() -> None:
    merged = merge_expositions({"gateway": OLD_STYLE, "again": OLD_STYLE})
    assert merged.text.count('baton_bytes_sent_total{node="gateway",role="ingress"} 2048.0') == 1


def test_nothing_to_merge_is_an_empty_exposition() -> None:
    assert merge_expositions({}).text == "" and merge_expositions({"a": ""}).families == 0


def test_promtool_accepts_the_merged_exposition_of_real_adapter_telemetry() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        if os.environ.get("BATON_REQUIRE_PROMETHEUS") or os.environ.get("BATON_REQUIRE_PROMTOOL"):
            pytest.fail("BATON_REQUIRE_PROMETHEUS is set but promtool is not installed (Debian: prometheus)")
        pytest.skip("promtool is not installed (Debian's prometheus package); .ci/run installs it")
    from baton_adapter.telemetry import NodeTelemetry

    nodes = {}
    for name, role, status in (("gateway", "ingress", 200), ("api", "internal", 503)):
        telemetry = NodeTelemetry(name, role)
        for i in range(20):
            telemetry.record("stable", b"GET", b"/x", status if i % 3 else 200, 0.001 * i, 10, 100, "t")
            telemetry.attempt("stable", status)
        nodes[name] = telemetry.prometheus({"stable": "closed"})
    merged = merge_expositions({**nodes, "old": OLD_STYLE.replace("gateway", "old"), "new": NEW_STYLE})
    assert merged.notes == []
    check = subprocess.run([promtool, "check", "metrics"], input=merged.text, capture_output=True, text=True,
                           timeout=30)
    assert check.returncode == 0, check.stdout + check.stderr
    assert (check.stdout + check.stderr).strip() == ""
