"""CloudEvents binary content mode on Kafka (the attributes in `ce_*` headers, the data as the
value, `content-type` as `datacontenttype`): the default of many producers, the official SDK's
among them. A binary-mode request is the structured envelope it stands for and meets the same
rules: envelope validation, hostile input, and the signature over the RFC 8785 form of that
envelope, exactly what a signer of the structured form signs. The records here are made by the
CloudEvents SDK, as a department's producer would make them."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any

import orjson
import pytest
from aiokafka import ConsumerRecord
from cloudevents.core.bindings import kafka as ce_kafka
from cloudevents.core.v1.event import CloudEvent as SdkEvent
from credit_common.clock import SHANGHAI, ManualClock
from credit_common.contracts.envelope import MAX_MESSAGE_BYTES
from credit_common.messaging import topics
from credit_common.messaging.parsing import Parsed, Parser
from credit_common.outcomes import request_key
from credit_common.security.signing import Signer, Verifier, canonical

REQUESTS = topics.DESIGNATION_REQUESTS
DESIGNATE = "credit.designation.designate"
NOW = datetime(2026, 12, 3, 17, 5, tzinfo=SHANGHAI)
SIGNER = Signer.generate("k-110108-SAT-1", "unit:110108-SAT")
KEYS = {SIGNER.kid: SIGNER.record(NOW - timedelta(days=30))}
POSITION = f"{REQUESTS}:2:7"

Headers = list[tuple[str, bytes]]


def envelope(**overrides: Any) -> dict[str, Any]:
    doc = {
        "specversion": "1.0",
        "id": "0193a0b4-0000-7000-8000-000000000001",
        "source": "unit/110108-SAT",
        "type": DESIGNATE,
        "time": "2026-12-03T17:00:00+08:00",
        "subject": "91110108MA01ABCD2X",
        "datacontenttype": "application/json",
        "data": {"note": "ok", "decision": {"decided_on": "2026-12-01"}},
    }
    doc.update(overrides)
    return {k: v for k, v in doc.items() if v is not None}


def sdk_binary(doc: dict[str, Any]) -> tuple[Headers, bytes]:
    """`doc` as the CloudEvents SDK writes it in Kafka binary mode."""
    attributes = {k: v for k, v in doc.items() if k != "data"}
    attributes["time"] = datetime.fromisoformat(attributes["time"])
    message = ce_kafka.to_binary_event(SdkEvent(attributes=attributes, data=doc.get("data")))
    return list(message.headers.items()), message.value


def record(headers: Headers, value: bytes | None, topic: str = REQUESTS) -> ConsumerRecord[bytes, bytes]:
    size = len(value) if value is not None else 0
    return ConsumerRecord(topic, 2, 7, 1_780_000_000_000, 0, b"k", value, None, 1, size, headers)


def parse(headers: Headers, value: bytes | None, topic: str = REQUESTS) -> Parsed:
    parser = Parser(
        handled=None,
        request_types=[DESIGNATE],
        request_topics=[REQUESTS],
        verifier=Verifier(KEYS.get),
        clock=ManualClock(NOW),
    )
    return parser.parse(record(headers, value, topic))


def replaced(headers: Headers, name: str, value: bytes | None) -> Headers:
    """`headers` with `name` set to `value` (None: left out)."""
    out = [(k, v) for k, v in headers if k != name]
    return out if value is None else [*out, (name, value)]


def test_a_signed_binary_mode_request_is_accepted_as_the_envelope_it_stands_for() -> None:
    signed = SIGNER.sign(envelope())
    headers, value = sdk_binary(signed)
    assert dict(headers)["ce_signature"] == signed["signature"].encode()  # as the SDK sent it
    p = parse(headers, value)
    assert p.incoming is not None, p.reject_errors or p.dead_reason
    assert p.reject_errors is None
    assert p.inbox_key == request_key(signed["source"], signed["id"])
    assert p.request_id == signed["id"]
    assert p.reject_to == "110108-SAT"
    event = p.incoming.event
    assert (event.source, event.type, event.subject) == ("unit/110108-SAT", DESIGNATE, "91110108MA01ABCD2X")
    assert (event.signaturekid, event.signature) == (SIGNER.kid, signed["signature"])
    assert event.data == signed["data"]
    assert p.incoming.at == NOW  # received now, whatever `time` claims
    # What the audit keeps is what a signer of the structured form signed.
    assert p.incoming.signed == canonical(signed)


def test_the_same_request_in_either_mode_has_one_digest() -> None:
    signed = SIGNER.sign(envelope())
    as_binary = parse(*sdk_binary(signed))
    as_structured = parse([("content-type", b"application/cloudevents+json")], orjson.dumps(signed))
    assert as_structured.incoming is not None
    assert as_binary.digest == as_structured.digest == hashlib.sha256(canonical(signed)).digest()


def test_a_binary_mode_request_whose_data_changed_after_signing_is_a_bad_signature() -> None:
    signed = SIGNER.sign(envelope())
    headers, _ = sdk_binary(signed)
    p = parse(headers, orjson.dumps({**signed["data"], "note": "changed"}))
    assert p.incoming is None
    assert p.reject_errors is not None
    assert [(e.code, e.field) for e in p.reject_errors] == [("bad_signature", "signature")]
    assert (p.reject_to, p.request_id, p.request_type) == ("110108-SAT", signed["id"], DESIGNATE)
    assert p.inbox_key == POSITION  # unproven: it must not use up the unit's request id


def test_a_binary_mode_request_whose_attribute_changed_after_signing_is_a_bad_signature() -> None:
    signed = SIGNER.sign(envelope())
    headers, value = sdk_binary(signed)
    p = parse(replaced(headers, "ce_subject", b"91110108MA01ABCD3Y"), value)
    assert p.reject_errors is not None
    assert p.reject_errors[0].code == "bad_signature"
    # `content-type` is `datacontenttype`: signed too.
    p = parse(replaced(headers, "content-type", b"application/vnd.other+json"), value)
    assert p.reject_errors is not None
    assert p.reject_errors[0].code == "bad_signature"


def test_an_unsigned_binary_mode_request_is_refused_unsigned() -> None:
    p = parse(*sdk_binary(envelope()))
    assert p.incoming is None
    assert p.reject_errors is not None
    assert [(e.code, e.field) for e in p.reject_errors] == [("unsigned", "signature")]
    assert p.reject_to == "110108-SAT"


def test_a_binary_mode_request_without_ce_id_is_answered_to_its_source_and_dead_lettered() -> None:
    headers, value = sdk_binary(SIGNER.sign(envelope()))
    p = parse(replaced(headers, "ce_id", None), value)
    assert p.incoming is None
    assert p.dead_reason is not None
    assert "id" in p.dead_reason
    assert p.reject_errors is not None
    assert p.reject_errors[0].code == "schema_violation"
    assert p.reject_to == "110108-SAT"
    assert p.request_id == POSITION  # no id to answer by: its position
    assert p.inbox_key == POSITION


def test_a_binary_mode_record_without_a_readable_source_is_only_dead_lettered() -> None:
    headers, value = sdk_binary(SIGNER.sign(envelope()))
    p = parse(replaced(replaced(headers, "ce_id", None), "ce_source", None), value)
    assert p.dead_reason is not None
    assert p.reject_errors is None
    assert p.incoming is None


@pytest.mark.parametrize(
    ("header", "value", "field"),
    [
        ("ce_subject", b"9111010\x01MA01ABCD2X", "subject"),
        ("ce_type", b"credit.designation.designate\n", "type"),
        ("ce_signaturekid", b"k-110108-SAT-1\x7f", "signaturekid"),
        ("ce_signature", b"\x00", "signature"),
        ("ce_correlationid", "c\u0085".encode(), "correlationid"),  # a C1 control
        ("ce_subject", b"\xff\xfe", "subject"),  # not UTF-8
        ("content-type", b"application/json\r", "datacontenttype"),
    ],
)
def test_a_control_character_or_bytes_not_utf8_in_a_header_are_refused(header: str, value: bytes, field: str) -> None:
    headers, data = sdk_binary(SIGNER.sign(envelope()))
    p = parse(replaced(headers, header, value), data)
    assert p.incoming is None
    assert p.dead_reason is not None
    assert p.reject_errors is not None
    assert [(e.code, e.field) for e in p.reject_errors] == [("schema_violation", field)]
    assert p.reject_to == "110108-SAT"
    assert p.request_id == "0193a0b4-0000-7000-8000-000000000001"
    assert p.inbox_key == POSITION


def test_a_nul_in_ce_id_is_dead_lettered_by_position_and_answered_without_echoing_it() -> None:
    headers, value = sdk_binary(SIGNER.sign(envelope()))
    p = parse(replaced(headers, "ce_id", b"abc\x00def"), value)
    assert p.reject_errors is not None
    assert (p.reject_errors[0].code, p.reject_errors[0].field) == ("schema_violation", "id")
    assert p.request_id == POSITION
    assert p.inbox_key == POSITION


def test_a_control_character_in_ce_source_leaves_nobody_to_answer() -> None:
    headers, value = sdk_binary(SIGNER.sign(envelope()))
    p = parse(replaced(headers, "ce_source", b"unit/110108-SAT\n"), value)
    assert p.dead_reason is not None
    assert p.reject_errors is None


def test_a_repeated_attribute_header_is_refused() -> None:
    headers, value = sdk_binary(SIGNER.sign(envelope()))
    p = parse([*headers, ("ce_subject", b"91110108MA01ABCD3Y")], value)
    assert p.reject_errors is not None
    assert (p.reject_errors[0].code, p.reject_errors[0].field) == ("schema_violation", "subject")


def test_a_nul_inside_binary_mode_data_is_refused_with_its_field() -> None:
    signed = SIGNER.sign(envelope(data={"subject": {"name": "Zhao\x00Lei"}}))
    p = parse(*sdk_binary(signed))
    assert p.reject_errors is not None
    assert (p.reject_errors[0].code, p.reject_errors[0].field) == ("schema_violation", "data.subject.name")
    assert p.inbox_key == POSITION


def test_binary_mode_data_that_is_not_json_is_answered_not_only_dead_lettered() -> None:
    headers, _ = sdk_binary(SIGNER.sign(envelope()))
    p = parse(headers, b"{not json")
    assert p.dead_reason is not None
    assert p.reject_errors is not None
    assert (p.reject_errors[0].code, p.reject_errors[0].field) == ("schema_violation", "data")
    assert p.reject_to == "110108-SAT"
    p = parse(replaced(headers, "content-type", b"application/xml"), b"<x/>")
    assert p.reject_errors is not None
    assert (p.reject_errors[0].code, p.reject_errors[0].field) == ("schema_violation", "datacontenttype")


def test_a_binary_mode_message_over_512_kib_is_refused_too_large() -> None:
    signed = SIGNER.sign(envelope(data={"note": "x" * MAX_MESSAGE_BYTES}))
    p = parse(*sdk_binary(signed))
    assert p.reject_errors is not None
    assert p.reject_errors[0].code == "too_large"
    assert p.reject_to == "110108-SAT"


def test_binary_mode_meets_the_platform_clock_too() -> None:
    ahead = (NOW + timedelta(minutes=6)).isoformat()
    p = parse(*sdk_binary(SIGNER.sign(envelope(time=ahead))))
    assert p.reject_errors is not None
    assert (p.reject_errors[0].code, p.reject_errors[0].field) == ("clock_skew", "time")


def test_without_datacontenttype_the_data_is_json_and_the_envelope_has_no_such_attribute() -> None:
    signed = SIGNER.sign(envelope(datacontenttype=None))
    headers, value = sdk_binary(signed)
    assert "content-type" not in dict(headers)
    p = parse(headers, value)
    assert p.incoming is not None, p.reject_errors
    assert p.incoming.signed == canonical(signed)


def test_an_event_format_content_type_keeps_a_record_structured_whatever_ce_headers_it_carries() -> None:
    signed = SIGNER.sign(envelope())
    headers = [("content-type", b"application/cloudevents+json; charset=UTF-8"), ("ce_id", b"other")]
    p = parse(headers, orjson.dumps(signed))
    assert p.incoming is not None
    assert p.incoming.event.id == signed["id"]


def test_a_binary_mode_platform_event_from_a_foreign_source_is_dead_lettered() -> None:
    doc = envelope(source="unit/110108-SAT", type="credit.designation.created")
    p = parse(*sdk_binary(doc), topic=topics.DESIGNATION_EVENTS)
    assert p.dead_reason is not None
    assert p.dead_reason.startswith("foreign_source")


def test_a_header_name_that_is_no_attribute_name_is_refused_without_echoing_it() -> None:
    headers, value = sdk_binary(SIGNER.sign(envelope()))
    p = parse([*headers, ("ce_x\x00y", b"1")], value)
    assert p.reject_errors is not None
    (error,) = p.reject_errors
    assert (error.code, error.field) == ("schema_violation", None)
    assert "\x00" not in error.message
    assert p.reject_to == "110108-SAT"
