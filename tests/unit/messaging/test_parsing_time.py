"""The sender's clock never sets a legal date (contracts.md, Integrity rules): a request timed
more than five minutes ahead of the platform clock is refused `clock_skew`, a decision or
occurrence dated after the day of receipt `invalid_date`, and what is accepted happened at its
receipt (`Incoming.at`), whatever `time` it claims."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from aiokafka import ConsumerRecord
from credit_common.clock import SHANGHAI, ManualClock
from credit_common.messaging import topics
from credit_common.messaging.parsing import Parser
from credit_common.outcomes import derived_id, request_key

REQUESTS = topics.DESIGNATION_REQUESTS
REVOKE = "credit.designation.remove"
NOW = datetime(2026, 12, 3, 23, 30, tzinfo=SHANGHAI)  # late evening: a UTC date would be a day behind


def parse(time: datetime, source: str = "unit/110108-SAT", **data: Any) -> Any:
    doc = {
        "specversion": "1.0",
        "id": "0193a0b4-0000-7000-8000-000000000009",
        "source": source,
        "type": REVOKE,
        "time": time.isoformat(),
        "data": data,
    }
    value = orjson.dumps(doc)
    record = ConsumerRecord(REQUESTS, 0, 1, 0, 0, b"k", value, None, 1, len(value), ())
    parser = Parser(handled=None, request_types=[REVOKE], request_topics=[REQUESTS], clock=ManualClock(NOW))
    return parser.parse(record)


def test_a_request_timed_ahead_of_the_platform_clock_is_clock_skew() -> None:
    p = parse(NOW + timedelta(minutes=6))
    assert p.incoming is None
    assert p.reject_errors is not None
    assert (p.reject_errors[0].code, p.reject_errors[0].field) == ("clock_skew", "time")
    assert parse(NOW + timedelta(minutes=4)).incoming is not None  # within the five minutes


def test_a_backdated_request_happened_at_its_receipt() -> None:
    p = parse(NOW - timedelta(days=400), decision={"decided_on": "2025-01-01"})
    assert p.incoming is not None
    assert p.incoming.at == NOW
    assert p.incoming.event.time == NOW - timedelta(days=400)  # the claim, as signed


def test_a_legal_date_after_the_day_of_receipt_is_invalid_date() -> None:
    p = parse(NOW, decision={"document_no": "R-1", "decided_on": "2026-12-04"})
    assert p.reject_errors is not None
    assert (p.reject_errors[0].code, p.reject_errors[0].field) == ("invalid_date", "decision.decided_on")
    for field in ("occurred_on", "applied_on", "completed_on"):
        late = parse(NOW, **{field: "2026-12-05"})
        assert late.reject_errors is not None
        assert late.reject_errors[0].code == "invalid_date", field
    # The day of receipt in Shanghai is 3 December, though it is already 4 December nowhere yet.
    assert parse(NOW, decision={"decided_on": "2026-12-03"}).incoming is not None
    assert parse(NOW.astimezone(UTC), occurred_on="2026-12-03").incoming is not None


def test_a_platform_event_keeps_its_own_time() -> None:
    doc = {
        "specversion": "1.0",
        "id": "e-1",
        "source": "platform/designation",
        "type": "credit.designation.created",
        "time": (NOW - timedelta(days=3)).isoformat(),
        "data": {},
    }
    value = orjson.dumps(doc)
    record = ConsumerRecord(topics.DESIGNATION_EVENTS, 0, 1, 0, 0, b"k", value, None, 1, len(value), ())
    p = Parser(handled=None, clock=ManualClock(NOW)).parse(record)
    assert p.incoming is not None
    assert p.incoming.at == NOW - timedelta(days=3)


def test_a_request_is_known_by_its_source_and_id_and_a_platform_event_by_its_id() -> None:
    """contracts.md, Integrity rules: the idempotency key is (`source`, `id`). Two units' requests
    under one id are two requests: two inbox keys, and the ids of what each causes (its events,
    its answer) derive from its own key. A platform event's id is its key (one writer a topic)."""
    mine, theirs = parse(NOW), parse(NOW, source="unit/110000-SAT")
    assert mine.incoming is not None
    assert theirs.incoming is not None
    assert mine.inbox_key == request_key("unit/110108-SAT", "0193a0b4-0000-7000-8000-000000000009")
    assert theirs.inbox_key == request_key("unit/110000-SAT", "0193a0b4-0000-7000-8000-000000000009")
    assert mine.inbox_key != theirs.inbox_key
    assert mine.incoming.cause_key == mine.inbox_key
    assert theirs.incoming.cause_key == theirs.inbox_key
    # The separator cannot be forged: attributes hold no control characters.
    forged = parse(NOW, source="unit/110108-SAT\x1f0193a0b4")
    assert forged.incoming is None
    assert forged.dead_reason is not None
    event = {"specversion": "1.0", "id": "e-2", "source": "platform/designation", "type": "credit.designation.created"}
    value = orjson.dumps({**event, "time": NOW.isoformat(), "data": {}})
    record = ConsumerRecord(topics.DESIGNATION_EVENTS, 0, 1, 0, 0, b"k", value, None, 1, len(value), ())
    p = Parser(handled=None, clock=ManualClock(NOW)).parse(record)
    assert p.inbox_key == "e-2"
    assert p.incoming is not None
    assert p.incoming.cause_key == "e-2"
    assert derived_id(mine.inbox_key, "designation", "answer") != derived_id(theirs.inbox_key, "designation", "answer")


def test_every_request_refused_under_its_id_keeps_a_digest_for_duplicate_id() -> None:
    """Found by the chaos fuzz: a request refused for its data (or its type) was kept in the inbox
    under its id without a digest, so another body under that id was dropped in silence as a
    retry, and a repeat that was itself refused so was never told `duplicate_id`."""
    from credit_common.contracts.registry import model_for

    def parse_with(doc_type: str, data: Any) -> Any:
        doc = {
            "specversion": "1.0",
            "id": "0193a0b4-0000-7000-8000-00000000000a",
            "source": "unit/110108-SAT",
            "type": doc_type,
            "time": NOW.isoformat(),
            "data": data,
        }
        value = orjson.dumps(doc)
        record = ConsumerRecord(REQUESTS, 0, 1, 0, 0, b"k", value, None, 1, len(value), ())
        parser = Parser(
            handled=None, request_types=[REVOKE], request_topics=[REQUESTS], clock=ManualClock(NOW), model_for=model_for
        )
        return parser.parse(record)

    bad_data = parse_with(REVOKE, {"designation_id": 7})
    assert bad_data.reject_errors is not None
    assert bad_data.inbox_key == request_key("unit/110108-SAT", "0193a0b4-0000-7000-8000-00000000000a")
    assert bad_data.digest is not None
    other_body = parse_with(REVOKE, {"designation_id": 8})
    assert other_body.digest not in (None, bad_data.digest)
    wrong_type = parse_with("credit.designation.destroy", {})
    assert wrong_type.reject_errors is not None
    assert wrong_type.digest is not None


def test_a_request_may_not_claim_an_id_the_platform_derives() -> None:
    """contracts.md, Integrity rules: ids the platform derives cannot be claimed by a sender's
    event. A request under the derived id of an event to come (an objection's resolution, which
    the designation service consumes beside its requests) would have had that event dropped as
    its repeat. Refused by position, so the claim uses up nothing."""
    claimed = derived_id("0193a0b4-0000-7000-8000-000000000001", "objection", "credit.objection.resolved")
    for spelling in (claimed, claimed.upper(), "{" + claimed + "}"):
        doc = {
            "specversion": "1.0",
            "id": spelling,
            "source": "unit/110108-SAT",
            "type": REVOKE,
            "time": NOW.isoformat(),
            "data": {},
        }
        value = orjson.dumps(doc)
        record = ConsumerRecord(REQUESTS, 0, 7, 0, 0, b"k", value, None, 1, len(value), ())
        parser = Parser(handled=None, request_types=[REVOKE], request_topics=[REQUESTS], clock=ManualClock(NOW))
        p = parser.parse(record)
        assert p.incoming is None, spelling
        assert p.reject_errors is not None
        assert (p.reject_errors[0].code, p.reject_errors[0].field) == ("schema_violation", "id")
        assert p.inbox_key == f"{REQUESTS}:0:7"
    assert parse(NOW).incoming is not None  # a UUIDv7, as producers should use
