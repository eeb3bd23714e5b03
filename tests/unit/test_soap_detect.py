"""The soap:Fault detector (baton_adapter.soap): found at any chunk split, any prefix, both versions; never in
text, CDATA or a deeper element; bounded; gzip decoded; and the action of a request read from either version."""

from __future__ import annotations

import gzip
import zlib

import pytest

from baton_adapter.soap import (MAX_HEAD, FaultDetector, SoapFault, detector_for, find_fault, routing_headers,
                                soap_action)

FAULT_11 = (b'<?xml version="1.0"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Header>'
            b'<sec a="x>y">t</sec></s:Header><s:Body><s:Fault><faultcode>s:Server</faultcode>'
            b"<faultstring>boom</faultstring></s:Fault></s:Body></s:Envelope>")
FAULT_12 = (b'<env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope"><env:Body><env:Fault><env:Code>'
            b"<env:Value>env:Sender</env:Value></env:Code></env:Fault></env:Body></env:Envelope>")
DEFAULT_NS = (b'<Envelope xmlns="http://schemas.xmlsoap.org/soap/envelope/"><!-- <Body> --><Body>\n  <Fault>'
              b"<faultcode>Client</faultcode></Fault></Body></Envelope>")
ANSWER = (b'<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><Resp>'
          b"<t>&lt;soap:Fault&gt;</t><![CDATA[<soap:Fault>]]><soap:Fault/></Resp></soap:Body></soap:Envelope>")
WRONG_NS = (b'<soap:Envelope xmlns:soap="urn:not-soap"><soap:Body><soap:Fault><faultcode>x</faultcode>'
            b"</soap:Fault></soap:Body></soap:Envelope>")
FAULT_IN_HEADER = (b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Header><s:Fault/>'
                   b"</s:Header><s:Body><ok/></s:Body></s:Envelope>")

CASES = [
    (FAULT_11, SoapFault("1.1", "s:Server")),
    (FAULT_12, SoapFault("1.2", "env:Sender")),
    (DEFAULT_NS, SoapFault("1.1", "Client")),
    (ANSWER, None),
    (WRONG_NS, None),
    (FAULT_IN_HEADER, None),
    (b"not xml at all", None),
    (b'{"fault": "<soap:Fault>"}', None),
]


@pytest.mark.parametrize("body, expected", CASES)
def test_the_verdict_is_the_same_at_every_split_and_byte_by_byte(body: bytes, expected: SoapFault | None) -> None:
    assert find_fault(body) == expected
    for cut in range(len(body) + 1):
        detector = FaultDetector()
        detector.feed(body[:cut])
        detector.feed(body[cut:])
        assert detector.fault == expected, cut
    detector = FaultDetector()
    for i in range(len(body)):
        detector.feed(body[i:i + 1])
    assert detector.fault == expected


def test_a_fault_is_decided_early_and_later_bytes_cost_nothing() -> None:
    detector = FaultDetector()
    detector.feed(FAULT_11)
    assert detector.done and detector.fault == SoapFault("1.1", "s:Server")
    detector.feed(b"<more/>" * 1000)
    assert detector.fault == SoapFault("1.1", "s:Server")


def test_a_body_past_the_budget_is_no_fault() -> None:
    head = b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Header>'
    padding = b"<x>" + b"a" * (MAX_HEAD + 10) + b"</x>"
    body = head + padding + b"</s:Header><s:Body><s:Fault/></s:Body></s:Envelope>"
    assert find_fault(body) is None
    detector = FaultDetector()
    for i in range(0, len(body), 1000):
        detector.feed(body[i:i + 1000])
    assert detector.done and detector.fault is None


def test_deep_nesting_and_huge_tags_stop_the_detector_not_the_caller() -> None:
    deep = b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/">' + b"<a>" * 100_000
    assert find_fault(deep) is None
    huge_tag = b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" x="' + b"y" * 20_000
    detector = FaultDetector()
    detector.feed(huge_tag)
    assert detector.done and detector.fault is None
    assert find_fault(bytes(range(256)) * 100) is None


def test_gzip_and_deflate_bodies_are_decoded_within_the_budget() -> None:
    assert find_fault(gzip.compress(FAULT_11), "gzip") == SoapFault("1.1", "s:Server")
    assert find_fault(zlib.compress(FAULT_12), "deflate") == SoapFault("1.2", "env:Sender")
    packed = gzip.compress(FAULT_11)
    detector = FaultDetector("gzip")
    for i in range(len(packed)):
        detector.feed(packed[i:i + 1])
    assert detector.fault == SoapFault("1.1", "s:Server")
    assert find_fault(b"not gzip", "gzip") is None
    bomb = gzip.compress(b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><x>' + b" " * 50_000_000)
    detector = FaultDetector("gzip")
    detector.feed(bomb)
    assert detector.done and detector.fault is None


def test_which_responses_are_scanned() -> None:
    xml = [(b"Content-Type", b"text/xml; charset=utf-8")]
    assert detector_for(200, xml, b"POST") is not None
    assert detector_for(500, [(b"content-type", b"application/soap+xml")], b"POST") is not None
    assert detector_for(200, [], b"POST") is not None
    assert detector_for(200, [(b"Content-Type", b"application/json")], b"POST") is None
    assert detector_for(200, [*xml, (b"Content-Encoding", b"br")], b"POST") is None
    assert detector_for(200, xml, b"HEAD") is None
    assert detector_for(204, xml, b"POST") is None


@pytest.mark.parametrize("headers, action", [
    ([(b"SOAPAction", b'"urn:x#Op"')], "urn:x#Op"),
    ([(b"soapaction", b"urn:x#Op")], "urn:x#Op"),
    ([(b"SOAPAction", b'""')], ""),
    ([(b"Content-Type", b'application/soap+xml; charset=utf-8; action="urn:x#Op"')], "urn:x#Op"),
    ([(b"Content-Type", b"application/soap+xml;action=urn:x#Op;charset=utf-8")], "urn:x#Op"),
    ([(b"Content-Type", b"text/xml")], None),
    ([], None),
])
def test_the_action_of_either_version(headers: list, action: str | None) -> None:
    assert soap_action(headers) == action


def test_routing_headers_present_the_action_as_one_unquoted_soapaction() -> None:
    plain = [(b"Host", b"x")]
    assert routing_headers(plain) is plain
    v12 = [(b"Host", b"x"), (b"Content-Type", b'application/soap+xml; action="urn:x#B"')]
    assert routing_headers(v12) == [*v12, (b"SOAPAction", b"urn:x#B")]
    v11 = [(b"SOAPAction", b'"urn:x#A"'), (b"Cookie", b"a=b")]
    assert routing_headers(v11) == [(b"Cookie", b"a=b"), (b"SOAPAction", b"urn:x#A")]


def test_a_whole_answer_without_fault_is_decided_in_one_read() -> None:
    answer = (b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><AddResponse><r>'
              + b"4" * 1500 + b"</r></AddResponse></s:Body></s:Envelope>\r\n")
    detector = FaultDetector()
    detector.feed(answer)
    assert detector.done and detector.fault is None
    started = FaultDetector()
    started.feed(answer[:40])  # a first read that ends mid-envelope is tokenized, not guessed
    assert not started.done
