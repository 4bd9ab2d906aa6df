"""The demo's deliberately broken messages: bytes that are no CloudEvent, or a request without a
field its type requires (answered with `schema_violation`). Neither changes the generator's model."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from credit_common.clock import SHANGHAI
from credit_common.contracts import types as ct
from credit_common.contracts.reference import UnitRecord
from credit_common.json import dumps
from credit_common.messaging import topics

from credit_demo import subjects
from credit_demo.model import Message

MALFORMED = "malformed"  # the kind of the deliberately broken messages (not JSON, or a field missing)
_CUT_TYPE = ct.DESIGNATION_DESIGNATE[:22].encode()  # a message cut off in the middle of its type


def message(
    rng: random.Random, units: Sequence[UnitRecord], now: datetime, uuid7: Callable[[datetime], str]
) -> Message:
    """One malformed message to some request topic, as some unit."""
    topic = rng.choice(
        [topics.DESIGNATION_REQUESTS, topics.OBJECTION_REQUESTS, topics.CONDUCT_REPORTS, topics.ENFORCEMENT_ACTIONS]
    )
    unit = rng.choice(units)
    key = subjects.new_uscc(rng, "91", "110105")
    eid = uuid7(now)
    if rng.random() < 0.5:
        value = rng.choice(
            (
                f'<?xml version="1.0"?><designate unit="{unit.code}"><subject>{key}</subject></designate>'.encode(),
                b'{"specversion": "1.0", "id": "' + eid.encode() + b'", "type": "' + _CUT_TYPE,
                bytes(rng.randrange(256) for _ in range(48)),
                "不是JSON：请求格式错误".encode("gbk"),
            )
        )
        return Message(MALFORMED, topic, key.encode(), value, eid)
    type_, data = _incomplete(rng, topic, key, now, uuid7)
    event = envelope(eid, type_, f"unit/{unit.code}", key, data, now)
    return Message(MALFORMED, topic, key.encode(), dumps(event), eid)


def _incomplete(
    rng: random.Random, topic: str, key: str, now: datetime, uuid7: Callable[[datetime], str]
) -> tuple[str, dict[str, Any]]:
    today = now.astimezone(SHANGHAI).date()
    subject = {"kind": "legal_person", "scheme": "uscc", "id": key, "name": "Beijing Example Trading Co., Ltd."}
    if topic == topics.DESIGNATION_REQUESTS:
        type_, missing = ct.DESIGNATION_DESIGNATE, rng.choice(("decision", "standard", "subject"))
        data: dict[str, Any] = {
            "list": "black",
            "standard": "taxation-black",
            "subject": subject,
            "decision": {"document_no": "DOC-1", "decided_on": today.isoformat(), "facts": "Facts."},
        }
    elif topic == topics.OBJECTION_REQUESTS:
        type_, missing = ct.OBJECTION_FILE, rng.choice(("grounds", "objector", "designation_id"))
        data = {
            "designation_id": uuid7(now),
            "objector": {"kind": "subject", "id": key, "name": subject["name"]},
            "grounds": "Wrong facts.",
            "evidence": [],
        }
    elif topic == topics.CONDUCT_REPORTS:
        type_, missing = ct.CONDUCT_REPORT, rng.choice(("field", "serious", "subject"))
        data = {
            "subject": subject,
            "field": "taxation",
            "serious": False,
            "occurred_on": today.isoformat(),
            "document_no": "CR-1",
            "description": "Conduct.",
        }
    else:
        type_, missing = ct.ENFORCEMENT_REPORT, rng.choice(("measure", "applied_on", "typical"))
        data = {
            "designation_id": uuid7(now),
            "measure": "tax-black-procurement-ban",
            "applied_on": today.isoformat(),
            "outcome": "Applied.",
            "description": "Applied.",
            "typical": False,
            "media": [],
        }
    del data[missing]
    return type_, data


def envelope(eid: str, type_: str, source: str, subject_id: str, data: Any, now: datetime) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": eid,
        "source": source,
        "type": type_,
        "time": now.astimezone(SHANGHAI).isoformat(timespec="milliseconds"),
        "subject": subject_id,
        "datacontenttype": "application/json",
        "data": data,
    }
