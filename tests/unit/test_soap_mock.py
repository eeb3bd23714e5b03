"""The SOAP mock (baton_adapter.mock._soap), pure: operations chosen by action (either version) or Body element,
example envelopes answered in the request's version, generated bodies, and Client Faults for what it cannot take."""

from __future__ import annotations

from pathlib import Path

import pytest

from baton_adapter.mock import MockEngine, SoapMock
from baton_adapter.soap import SoapFault, find_fault

CONTRACT = Path(__file__).resolve().parents[1] / "fixtures" / "soap" / "calc_openapi.yaml"
V11 = "http://schemas.xmlsoap.org/soap/envelope/"
V12 = "http://www.w3.org/2003/05/soap-envelope"


def _request(element: str, ns: str = V11) -> bytes:
    return (f'<s:Envelope xmlns:s="{ns}"><s:Header/><s:Body><{element} xmlns="urn:calc"><a>1</a></{element}>'
            "</s:Body></s:Envelope>").encode()


@pytest.fixture(scope="module")
def mock() -> SoapMock:
    return SoapMock.from_engine(MockEngine.from_contract(str(CONTRACT), "calc"))


def test_the_contract_operations_are_read(mock: SoapMock) -> None:
    assert {op.name: (op.action, op.element) for op in mock.operations} == {
        "Add": ("urn:calc#Add", "Add"), "Echo": (None, "Echo"), "Boom": ("urn:calc#Boom", None),
        "Sum": ("urn:calc#Sum", None)}


def test_a_soap_11_action_answers_its_example_as_text_xml(mock: SoapMock) -> None:
    answer = mock.answer({"soapaction": '"urn:calc#Add"', "content-type": "text/xml"}, _request("Add"))
    assert answer.status == 200 and answer.headers == [("content-type", "text/xml; charset=utf-8")]
    assert b"<result>42</result>" in answer.body and find_fault(answer.body) is None


def test_a_soap_12_action_answers_the_12_example_as_soap_xml(mock: SoapMock) -> None:
    headers = {"content-type": 'application/soap+xml; charset=utf-8; action="urn:calc#Add"'}
    answer = mock.answer(headers, _request("Add", V12))
    assert answer.headers == [("content-type", "application/soap+xml; charset=utf-8")]
    assert b"<result>1242</result>" in answer.body


def test_without_an_action_the_body_element_chooses(mock: SoapMock) -> None:
    answer = mock.answer({"soapaction": '""', "content-type": "text/xml"}, _request("Echo"))
    assert answer.status == 200 and b"<text>mocked</text>" in answer.body


def test_an_example_fault_is_answered_as_written(mock: SoapMock) -> None:
    answer = mock.answer({"soapaction": "urn:calc#Boom"}, _request("Boom"))
    assert answer.status == 200 and find_fault(answer.body) == SoapFault("1.1", "soap:Server")


def test_no_example_generates_the_body_inside_an_envelope(mock: SoapMock) -> None:
    answer = mock.answer({"soapaction": "urn:calc#Sum"}, _request("Sum"))
    assert answer.status == 200, answer.body
    assert b"<soap:Body><SumResponse><total>" in answer.body and find_fault(answer.body) is None


def test_an_unknown_action_is_a_client_fault_naming_it_and_the_known_ones(mock: SoapMock) -> None:
    answer = mock.answer({"soapaction": '"urn:calc#Nope"'}, _request("Nope"))
    assert answer.status == 500 and find_fault(answer.body) == SoapFault("1.1", "soap:Client")
    assert b"urn:calc#Nope" in answer.body and b"urn:calc#Add, urn:calc#Boom, urn:calc#Sum" in answer.body
    v12 = mock.answer({"content-type": 'application/soap+xml; action="urn:x"'}, _request("X", V12))
    assert v12.status == 500 and find_fault(v12.body) == SoapFault("1.2", "soap:Sender")


@pytest.mark.parametrize("body, fragment", [
    (b"", b"empty body"),
    (b"not xml at all", b"malformed XML"),
    (b"<a><b></a>", b"malformed XML"),
    (b"\xff\xfe\x00<bad", b"malformed XML"),
    (b'<!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;</x>', b"document type"),
    (b"<Envelope><Body/></Envelope>", b"as the root element"),
    (f'<s:Envelope xmlns:s="{V11}"><s:Header/></s:Envelope>'.encode(), b"with a Body"),
])
def test_what_is_no_soap_request_is_a_client_fault(mock: SoapMock, body: bytes, fragment: bytes) -> None:
    answer = mock.answer({"soapaction": "urn:calc#Add"}, body)
    assert answer.status == 500 and find_fault(answer.body) == SoapFault("1.1", "soap:Client")
    assert fragment in answer.body


def test_deep_nesting_is_answered_not_crashed(mock: SoapMock) -> None:
    body = f'<s:Envelope xmlns:s="{V11}"><s:Body><Add>'.encode() + b"<a>" * 50_000 + b"</a>" * 50_000 + (
        b"</Add></s:Body></s:Envelope>")
    assert mock.answer({"soapaction": "urn:calc#Add"}, body).status == 200
