"""Due process for one subject, end to end, with the designation and objection services as processes
(ports 18321-18322, an objection instance whose clock is ahead on 18323), driven only through the
contract's topics as the department and the portal would, and read back as the portal reads the
subject's notices (`credit.subject.notices.v1`):

the designation notice (list, unit, standard, period, rights); an objection filed by the subject;
left undecided past its due date, escalated to the parent unit; rejected there, and the subject
told; a restoration applied for and approved by the designating unit, the subject told; the entry
removed (`restored`) and the subject told of that too."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from credit_common.clock import start_of_local_day
from credit_common.contracts.registry import model_for
from credit_common.messaging import topics
from credit_common.messaging.connection import kafka_options
from credit_common.settings import Settings

from tests.support.collector import Collector
from tests.support.events import event, person, publish, today
from tests.support.kafka_admin import wait_caught_up
from tests.support.processes import ServiceProcess, deployment, new_instance
from tests.support.signing import SigningProducer

pytestmark = pytest.mark.integration

PORTS = {"designation": 18321, "objection": 18322}
AHEAD_PORT = 18323
INSTANCE = new_instance()
INPUTS = {
    "designation": [topics.DESIGNATION_REQUESTS, topics.OBJECTION_EVENTS],
    "objection": [topics.DESIGNATION_EVENTS, topics.OBJECTION_REQUESTS],
}
UNIT, PARENT = "110108-SAT", "110000-SAT"


class Portal:
    """A department's and the portal's producer, and what the platform sends back."""

    def __init__(self, stack: Settings, kafka: AIOKafkaProducer, seen: Collector) -> None:
        self.stack, self.kafka, self.seen = stack, kafka, seen

    async def accepted(self, topic: str, ev: dict[str, Any]) -> None:
        await publish(self.kafka, ev, topic)
        answer = await self.seen.answer(ev["id"], timeout=60)
        assert answer["type"] == "credit.request.accepted", answer["data"]

    async def notice(self, type_: str, subject_id: str, **match: Any) -> dict[str, Any]:
        """The one notice of `type_` to the subject that matches, checked against the contract."""

        def hit(e: dict[str, Any]) -> bool:
            data = e["data"]
            return e["type"] == type_ and e["_key"] == subject_id and all(data.get(k) == v for k, v in match.items())

        (found,) = await self.seen.wait_for(topics.SUBJECT_NOTICES, hit, timeout=60)
        model_for(type_).model_validate(found["data"])
        return dict(found["data"])

    async def event(self, topic: str, type_: str, **match: Any) -> dict[str, Any]:
        def hit(e: dict[str, Any]) -> bool:
            return e["type"] == type_ and all(e["data"].get(k) == v for k, v in match.items())

        (found,) = await self.seen.wait_for(topic, hit, timeout=60)
        return dict(found["data"])

    async def caught_up(self, name: str) -> None:
        group = deployment(INSTANCE).group_of(name)
        await wait_caught_up(self.stack.kafka_bootstrap_servers, group, INPUTS[name], timeout=600)


@pytest.fixture(scope="module")
async def portal(stack: Settings) -> AsyncIterator[Portal]:
    seen = Collector(
        stack.kafka_bootstrap_servers,
        [
            topics.FEEDBACK,
            topics.DESIGNATION_EVENTS,
            topics.OBJECTION_EVENTS,
            topics.UNIT_INBOX,
            topics.SUBJECT_NOTICES,
        ],
    )
    await seen.start()
    kafka = SigningProducer(**kafka_options(stack.kafka_bootstrap_servers), enable_idempotence=True)
    await kafka.start()
    services = [ServiceProcess(name, port, instance=INSTANCE) for name, port in PORTS.items()]
    p = Portal(stack, kafka, seen)
    try:
        for svc in services:
            await svc.start()
        for name in PORTS:
            await p.caught_up(name)
        yield p
    finally:
        for svc in services:
            await svc.stop()
            await svc.discard()
        await kafka.stop()
        await seen.stop()


def request(source: str, type_: str, subject_id: str, **data: Any) -> dict[str, Any]:
    return event(source, type_, data, subject=subject_id, at=datetime.now(UTC))


async def test_a_subject_is_told_each_step_from_designation_to_removal(portal: Portal) -> None:
    subject = person("Qian Lan")
    sid = subject["id"]
    start = today() - timedelta(days=400)  # taxation-black: restorable after 365 days on the list
    designate = request(
        f"unit/{UNIT}",
        "credit.designation.designate",
        sid,
        list="black",
        standard="taxation-black",
        subject=subject,
        decision={"document_no": f"DOC-{uuid.uuid4().hex[:8]}", "decided_on": start.isoformat(), "facts": "Tax owed."},
        effective_from=start.isoformat(),
    )
    await portal.accepted(topics.DESIGNATION_REQUESTS, designate)
    did = designate["id"]

    # 1. Told of the designation, unmasked (the portal is the subject's channel), with its rights.
    told = await portal.notice("credit.notice.designated", sid, designation_id=did)
    assert told["subject"] == subject
    assert (told["list"], told["unit"], told["standard"], told["effective_from"]) == (
        "black",
        UNIT,
        "taxation-black",
        start.isoformat(),
    )
    assert told["rights"] == {"objection": True, "restoration_from": (start + timedelta(days=365)).isoformat()}

    # 2. The subject objects through the portal; the unit lets the due date pass.
    await portal.caught_up("objection")
    filing = request(
        "portal",
        "credit.objection.file",
        sid,
        designation_id=did,
        objector={"kind": "subject", "id": sid, "name": subject["name"]},
        grounds="The tax was paid before the decision.",
        evidence=["RECEIPT-7"],
    )
    await portal.accepted(topics.OBJECTION_REQUESTS, filing)
    opened = await portal.event(topics.OBJECTION_EVENTS, "credit.objection.opened", objection_id=filing["id"])
    due = date.fromisoformat(opened["due_on"])

    # 3. Escalated to the parent unit once the due day is over (a process whose clock says so).
    clock = start_of_local_day(due + timedelta(days=1)) + timedelta(seconds=5)
    ahead = ServiceProcess("objection", AHEAD_PORT, {"CREDIT_NOW": clock.isoformat()}, instance=INSTANCE)
    await ahead.start()
    try:
        overdue = await portal.event(topics.OBJECTION_EVENTS, "credit.objection.overdue", objection_id=filing["id"])
    finally:
        await ahead.stop()
    assert (overdue["escalated_to"], overdue["due_on"]) == (PARENT, due.isoformat())

    # 4. The parent rejects it; the subject is told the outcome and the reasoning.
    decide = request(
        f"unit/{PARENT}",
        "credit.objection.decide",
        sid,
        objection_id=filing["id"],
        outcome="rejected",
        reasoning="The payment came after the decision.",
        decided_on=today().isoformat(),
    )
    await portal.accepted(topics.OBJECTION_REQUESTS, decide)
    decided = await portal.notice("credit.notice.objection_resolved", sid, id=filing["id"])
    assert (decided["outcome"], decided["reasoning"]) == ("rejected", "The payment came after the decision.")

    # 5. A restoration applied for and approved by the designating unit: told, and the entry goes.
    application = request(
        "portal",
        "credit.restoration.apply",
        sid,
        designation_id=did,
        applicant={"id": sid, "name": subject["name"]},
        measures=[
            {"kind": "obligation_performed", "detail": "Tax and fines paid.", "completed_on": today().isoformat()},
        ],
        evidence=["RECEIPT-8"],
    )
    await portal.accepted(topics.OBJECTION_REQUESTS, application)
    approve = request(
        f"unit/{UNIT}",
        "credit.restoration.decide",
        sid,
        application_id=application["id"],
        outcome="approved",
        reasoning="Obligations performed.",
        decided_on=today().isoformat(),
    )
    await portal.accepted(topics.OBJECTION_REQUESTS, approve)
    restored = await portal.notice("credit.notice.restoration_resolved", sid, id=application["id"])
    assert restored["outcome"] == "approved"
    removed = await portal.notice("credit.notice.removed", sid, designation_id=did)
    assert removed == {"subject": subject, "designation_id": did, "reason": "restored"}

    # Every notice to the subject came from the platform, keyed by the subject, the designation first.
    notices = portal.seen.where(topics.SUBJECT_NOTICES, lambda e: e["_key"] == sid)
    assert notices[0]["type"] == "credit.notice.designated"
    assert {n["type"] for n in notices} == {
        "credit.notice.designated",
        "credit.notice.objection_resolved",
        "credit.notice.restoration_resolved",
        "credit.notice.removed",
    }
    assert {n["source"] for n in notices} == {"platform/designation", "platform/objection"}
