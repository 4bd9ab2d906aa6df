"""The full round trip with the designation and sharing services running as processes (ports 18124
and 18134), driven only through the topics as departments and the portal do: an objection flags
the entry on the list feed, upholding it removes the entry (`objection_upheld`) and the flag goes;
an approved restoration removes the entry (`restored`). The subject is told each step on
`credit.subject.notices.v1`: its designation with its rights, each decision, each removal."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from credit_common.messaging import topics
from credit_common.settings import Settings

from tests.support.collector import Collector
from tests.support.events import company, event, publish, today
from tests.support.kafka_admin import wait_caught_up
from tests.support.processes import ServiceProcess

from .conftest import (
    DESIGNATION_PORT,
    INSTANCE,
    SHARING_PORT,
    accepted,
    apply_restoration,
    caught_up,
    decide_objection,
    decide_restoration,
    file_objection,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def designation(stack: Settings) -> AsyncIterator[ServiceProcess]:
    svc = ServiceProcess("designation", DESIGNATION_PORT, instance=INSTANCE)
    await svc.start()
    yield svc
    await svc.stop()
    await svc.discard()


@pytest.fixture(scope="module")
async def sharing(stack: Settings) -> AsyncIterator[ServiceProcess]:
    svc = ServiceProcess("sharing", SHARING_PORT, instance=INSTANCE)
    await svc.start()
    # Start from a sharing service that has read every event so far (in a full run, the designation
    # tests leave a hundred thousand on the topic: a minute or more of projection).
    await wait_caught_up(
        stack.kafka_bootstrap_servers,
        svc.group(),
        [topics.DESIGNATION_EVENTS, topics.OBJECTION_EVENTS, topics.WARNING_EVENTS],
        timeout=600,
    )
    yield svc
    await svc.stop()
    await svc.discard()


def designate(list_: str, standard: str, subject: dict[str, Any], unit: str, days_ago: int) -> dict[str, Any]:
    start = today() - timedelta(days=days_ago)
    data = {
        "list": list_,
        "standard": standard,
        "subject": subject,
        "decision": {
            "document_no": f"DOC-{uuid.uuid4().hex[:8]}",
            "decided_on": start.isoformat(),
            "facts": "Facts established by the investigation.",
        },
        "effective_from": start.isoformat(),
    }
    return event(f"unit/{unit}", "credit.designation.designate", data, subject=subject["id"], at=datetime.now(UTC))


async def designated(kafka: AIOKafkaProducer, collector: Collector, stack: Settings, request: dict[str, Any]) -> dict:
    """Designate through the designation service; returns the record once the objection service has it."""
    await publish(kafka, request, topics.DESIGNATION_REQUESTS)
    answer = await collector.answer(request["id"], timeout=60)
    assert answer["type"] == "credit.request.accepted", answer["data"]
    (created,) = await collector.wait_for(
        topics.DESIGNATION_EVENTS,
        lambda e: e["type"] == "credit.designation.created" and e["data"]["record"]["designation_id"] == request["id"],
        timeout=60,
    )
    await caught_up(stack)
    return dict(created["data"]["record"])


async def notice(collector: Collector, type_: str, subject_id: str, **match: Any) -> dict[str, Any]:
    """The one notice of `type_` to the subject that matches, as the portal reads it."""

    def hit(e: dict[str, Any]) -> bool:
        return (
            e["type"] == type_ and e["subject"] == subject_id and all(e["data"].get(k) == v for k, v in match.items())
        )

    (found,) = await collector.wait_for(topics.SUBJECT_NOTICES, hit, timeout=60)
    assert found["source"] in ("platform/designation", "platform/objection")
    return dict(found["data"])


def changes(collector: Collector, entry_id: str) -> list[dict[str, Any]]:
    return collector.where(topics.LISTS_CHANGES, lambda e: e["data"]["entry"]["entry_id"] == entry_id)


async def wait_change(collector: Collector, entry_id: str, type_: str, timeout: float = 60.0, **match: Any) -> dict:
    def hit(e: dict[str, Any]) -> bool:
        entry = e["data"]["entry"]
        return (
            e["type"] == type_
            and entry["entry_id"] == entry_id
            and all((e["data"].get(k) if k == "reason" else entry.get(k)) == v for k, v in match.items())
        )

    found = await collector.wait_for(topics.LISTS_CHANGES, hit, timeout=timeout)
    return found[0]


async def test_objection_upheld_flags_then_removes_the_entry(
    designation: ServiceProcess,
    sharing: ServiceProcess,
    objection: ServiceProcess,
    stack: Settings,
    kafka: AIOKafkaProducer,
    collector: Collector,
) -> None:
    subject = company()
    rec = await designated(kafka, collector, stack, designate("black", "taxation-black", subject, "110108-SAT", 30))
    did = rec["designation_id"]
    await wait_change(collector, did, "credit.list.entry_added", under_objection=False)
    told = await notice(collector, "credit.notice.designated", subject["id"], designation_id=did)
    assert (told["list"], told["unit"], told["standard"]) == ("black", "110108-SAT", "taxation-black")
    assert told["subject"]["name"] == subject["name"]  # unmasked: the portal is the subject's channel
    assert told["rights"]["objection"] is True
    assert told["effective_to"] == rec["effective_to"]

    filing = file_objection(rec)
    await accepted(kafka, collector, filing)
    flagged = await wait_change(collector, did, "credit.list.entry_updated", under_objection=True)
    assert flagged["data"]["list"] == "black"

    await accepted(kafka, collector, decide_objection(filing["id"], "110108-SAT", "upheld", subject=subject["id"]))
    (gone,) = await collector.wait_for(
        topics.DESIGNATION_EVENTS,
        lambda e: e["type"] == "credit.designation.removed" and e["data"]["record"]["designation_id"] == did,
        timeout=60,
    )
    assert gone["data"]["reason"] == "objection_upheld"
    assert gone["data"]["related_id"] == filing["id"]
    removed = await wait_change(collector, did, "credit.list.entry_removed", reason="objection_upheld")
    decided = await notice(collector, "credit.notice.objection_resolved", subject["id"], id=filing["id"])
    assert decided["outcome"] == "upheld"
    await notice(collector, "credit.notice.removed", subject["id"], designation_id=did, reason="objection_upheld")
    # The flag is gone: the resolution took it off (as an update, or on the removal itself).
    assert removed["data"]["entry"]["under_objection"] is False, changes(collector, did)


async def test_restoration_approved_removes_the_entry(
    designation: ServiceProcess,
    sharing: ServiceProcess,
    objection: ServiceProcess,
    stack: Settings,
    kafka: AIOKafkaProducer,
    collector: Collector,
) -> None:
    """taxation-key_scrutiny allows restoration after 180 days; the entry is 200 days old."""
    subject = company()
    request = designate("key_scrutiny", "taxation-key_scrutiny", subject, "110108-SAT", 200)
    rec = await designated(kafka, collector, stack, request)
    did = rec["designation_id"]
    await wait_change(collector, did, "credit.list.entry_added")

    application = apply_restoration(rec)
    await accepted(kafka, collector, application)
    decision = decide_restoration(application["id"], "110108-SAT", subject=subject["id"])
    await accepted(kafka, collector, decision)
    (gone,) = await collector.wait_for(
        topics.DESIGNATION_EVENTS,
        lambda e: e["type"] == "credit.designation.removed" and e["data"]["record"]["designation_id"] == did,
        timeout=60,
    )
    assert gone["data"]["reason"] == "restored"
    assert gone["data"]["related_id"] == application["id"]
    await wait_change(collector, did, "credit.list.entry_removed", reason="restored")
    told = await notice(collector, "credit.notice.designated", subject["id"], designation_id=did)
    # taxation-key_scrutiny: restoration from 180 days on the list
    restorable = (date.fromisoformat(rec["effective_from"]) + timedelta(days=180)).isoformat()
    assert told["rights"] == {"objection": True, "restoration_from": restorable}
    decided = await notice(collector, "credit.notice.restoration_resolved", subject["id"], id=application["id"])
    assert decided["outcome"] == "approved"
    await notice(collector, "credit.notice.removed", subject["id"], designation_id=did, reason="restored")
    # Exactly one answer to the decision: the designation service had nothing to refuse.
    answers = collector.where(topics.FEEDBACK, lambda e: e["data"]["request_id"] == decision["id"])
    assert len(answers) == 1
