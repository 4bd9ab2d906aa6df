"""The HTTP binding's binary mode as POST /v1/requests reads it: `ce-` headers (case-insensitive,
percent-encoded, possibly double-quoted), the body as data, `Content-Type` as `datacontenttype`;
decoded once and then held to the same rules as an attribute of a structured envelope."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
import pytest
from cloudevents.core.bindings import http as ce_http
from cloudevents.core.v1.event import CloudEvent as SdkEvent
from credit_common.contracts import binary
from credit_common.security.signing import Signer, canonical

SIGNER = Signer.generate("k-110108-SAT-1", "unit:110108-SAT")


def envelope(**overrides: Any) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": "0193a0b4-0000-7000-8000-000000000001",
        "source": "unit/110108-SAT",
        "type": "credit.designation.designate",
        "time": "2026-12-03T17:00:00+08:00",
        "subject": "Zhao Lei & Sons “100%”",  # space, quotes, percent, non-ASCII: all percent-encoded
        "datacontenttype": "application/json; charset=utf-8",
        "data": {"note": "ok"},
        **overrides,
    }


def raw_headers(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    """Headers as an ASGI server hands them over: names in lower case, values as bytes."""
    return [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]


def sdk_http(doc: dict[str, Any]) -> tuple[list[tuple[bytes, bytes]], bytes]:
    attributes = {k: v for k, v in doc.items() if k != "data"}
    attributes["time"] = datetime.fromisoformat(attributes["time"])
    message = ce_http.to_binary_event(SdkEvent(attributes=attributes, data=doc.get("data")))
    return raw_headers(message.headers), message.body


def test_the_sdks_binary_request_rebuilds_the_envelope_it_signed() -> None:
    signed = SIGNER.sign(envelope())
    headers, body = sdk_http(signed)
    assert (b"ce-subject", b"Zhao%20Lei%20&%20Sons%20%E2%80%9C100%25%E2%80%9D") in headers
    assert binary.http_binary({k.decode(): v.decode() for k, v in headers})
    rebuilt = binary.from_http(headers, body)
    assert rebuilt.problem is None
    assert rebuilt.doc == signed
    assert canonical(rebuilt.doc) == canonical(signed)


def test_header_names_are_case_insensitive_and_quoted_values_are_unquoted_first() -> None:
    headers = raw_headers(
        {"CE-SpecVersion": "1.0", "Ce-Id": '"a\\"b%20c"', "ce-source": "unit/110108-SAT", "Content-Type": "text/json"}
    )
    rebuilt = binary.from_http(headers, b"")
    assert rebuilt.problem is None
    expected = {"specversion": "1.0", "id": 'a"b c', "source": "unit/110108-SAT", "datacontenttype": "text/json"}
    assert rebuilt.doc == expected


@pytest.mark.parametrize(
    ("value", "field"),
    [
        ("abc%00def", "id"),  # a NUL once decoded
        ("a%0Ab", "id"),
        ("a%C2%85b", "id"),  # a C1 control
        ("a%C0%A0b", "id"),  # an overlong encoding of a space: not UTF-8 (the binding: MUST be rejected)
        ("a%FFb", "id"),
    ],
)
def test_what_decodes_to_a_control_character_or_not_utf8_is_refused(value: str, field: str) -> None:
    headers = raw_headers({"ce-specversion": "1.0", "ce-id": value, "ce-source": "unit/110108-SAT"})
    rebuilt = binary.from_http(headers, orjson.dumps({"note": "ok"}))
    assert rebuilt.problem is not None
    assert (rebuilt.problem.code, rebuilt.problem.field) == ("schema_violation", field)
    assert rebuilt.doc["source"] == "unit/110108-SAT"  # still there to answer


def test_a_ce_datacontenttype_or_ce_data_header_is_refused() -> None:
    for name in ("ce-datacontenttype", "ce-data"):
        rebuilt = binary.from_http(raw_headers({"ce-specversion": "1.0", name: "application/json"}), b"{}")
        assert rebuilt.problem is not None, name
        assert rebuilt.problem.code == "schema_violation"


def test_a_structured_body_stays_structured() -> None:
    assert not binary.http_binary({"content-type": "application/cloudevents+json", "ce-id": "x"})
    assert not binary.http_binary({"content-type": "application/json"})  # no ce- header: as before
    assert binary.http_binary({"content-type": "application/json", "ce-specversion": "1.0"})
