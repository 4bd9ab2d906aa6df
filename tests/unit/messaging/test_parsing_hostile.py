"""Hostile input on Kafka (contracts.md, Integrity rules): what cannot be stored is refused at the
parser, answered where a unit can be read, and dead-lettered by position, never by an id that may
be what broke it. A NUL in an `id` once stopped the designation service for every partition."""

from __future__ import annotations

from typing import Any

import orjson
from aiokafka import ConsumerRecord
from credit_common.contracts.envelope import MAX_MESSAGE_BYTES, CloudEvent, unstorable
from credit_common.messaging import topics
from credit_common.messaging.parsing import Parser

REQUESTS = topics.DESIGNATION_REQUESTS
DESIGNATE = "credit.designation.designate"


def record(value: bytes, topic: str = REQUESTS, offset: int = 7) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(topic, 2, offset, 1_780_000_000_000, 0, b"k", value, None, 1, len(value), ())


def envelope(**overrides: Any) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": "0193a0b4-0000-7000-8000-000000000001",
        "source": "unit/110108-SAT",
        "type": DESIGNATE,
        "time": "2026-12-03T17:00:00+08:00",
        "data": {"note": "ok"},
        **overrides,
    }


def parser() -> Parser:
    return Parser(handled=None, request_types=[DESIGNATE], request_topics=[REQUESTS])


def test_a_nul_in_the_id_is_dead_lettered_by_position_and_answered_without_echoing_it() -> None:
    p = parser().parse(record(orjson.dumps(envelope(id="abc\x00def"))))
    assert p.incoming is None
    assert p.inbox_key == f"{REQUESTS}:2:7"
    assert p.dead_reason is not None
    assert p.reject_errors is not None
    assert p.reject_errors[0].code == "schema_violation"
    assert p.reject_to == "110108-SAT"
    assert p.request_id == f"{REQUESTS}:2:7"  # not the id: it cannot be stored


def test_any_control_character_in_an_envelope_attribute_is_refused() -> None:
    for field, value in [("id", "a\nb"), ("source", "unit/110108-SAT\r"), ("subject", "x\x1f"), ("type", "\x7f")]:
        p = parser().parse(record(orjson.dumps(envelope(**{field: value}))))
        assert p.incoming is None, field
        assert p.dead_reason, field


def test_a_nul_inside_the_data_is_refused_with_its_field_before_any_handler() -> None:
    p = parser().parse(record(orjson.dumps(envelope(data={"subject": {"name": "Zhao\x00Lei"}}))))
    assert p.incoming is None
    assert p.reject_errors is not None
    assert (p.reject_errors[0].code, p.reject_errors[0].field) == ("schema_violation", "data.subject.name")
    assert p.request_id == "0193a0b4-0000-7000-8000-000000000001"
    assert p.inbox_key == f"{REQUESTS}:2:7"


def test_an_escaped_backslash_before_u0000_is_not_a_nul() -> None:
    p = parser().parse(record(orjson.dumps(envelope(data={"note": "C:\\u0000dir"}))))
    assert p.incoming is not None


def test_a_message_over_512_kib_is_refused_too_large_and_answered() -> None:
    p = parser().parse(record(orjson.dumps(envelope(data={"note": "x" * MAX_MESSAGE_BYTES}))))
    assert p.incoming is None
    assert p.dead_reason
    assert p.reject_errors is not None
    assert p.reject_errors[0].code == "too_large"
    assert p.reject_to == "110108-SAT"


def test_a_platform_event_with_a_nul_is_dead_lettered_with_no_answer() -> None:
    doc = envelope(id="e\x00", source="platform/designation", type="credit.designation.created")
    p = parser().parse(record(orjson.dumps(doc), topic=topics.DESIGNATION_EVENTS))
    assert p.dead_reason is not None
    assert p.reject_errors is None
    assert p.inbox_key == f"{topics.DESIGNATION_EVENTS}:2:7"


def test_unstorable_finds_nuls_in_keys_lists_and_nesting() -> None:
    assert unstorable({"a": [1, {"b\x00": 2}]}) == "data.a.1.<key>"
    assert unstorable({"a": ["ok", "n\x00"]}) == "data.a.1"
    assert unstorable({"a": ["ok"]}) is None
    assert CloudEvent.model_validate(envelope()).id.startswith("0193")
