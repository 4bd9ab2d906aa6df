"""The consumer's cheap pre-filter: designation events the warning service never needs are passed
over unparsed; anything else (its own inputs, and garbage, which must be dead-lettered) is not."""

from __future__ import annotations

from dataclasses import dataclass

from credit_common.messaging import topics

from services.warning.handlers import not_ours


@dataclass
class Record:
    topic: str
    value: bytes | None


def designation(list_: str, extra: str = "") -> bytes:
    return (
        b'{"specversion":"1.0","id":"x","source":"platform/designation","type":"credit.designation.created",'
        b'"data":{"record":{"list":"' + list_.encode() + b'"' + extra.encode() + b"}}}"
    )


def test_black_and_red_designation_events_are_passed_over() -> None:
    assert not_ours(Record(topics.DESIGNATION_EVENTS, designation("black")))
    assert not_ours(Record(topics.DESIGNATION_EVENTS, designation("red")))


def test_key_scrutiny_entries_and_transfers_are_read() -> None:
    assert not not_ours(Record(topics.DESIGNATION_EVENTS, designation("key_scrutiny")))
    assert not not_ours(Record(topics.DESIGNATION_EVENTS, designation("black", ',"transfer_from":"d1"')))


def test_garbage_and_other_topics_are_read() -> None:
    assert not not_ours(Record(topics.DESIGNATION_EVENTS, b'{"specversion": "1.0"}'))
    assert not not_ours(Record(topics.DESIGNATION_EVENTS, None))
    assert not not_ours(Record(topics.CONDUCT_REPORTS, designation("black")))
    assert not not_ours(Record(topics.REFERENCE, designation("black")))
