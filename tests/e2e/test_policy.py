"""The policy from start to end, with the five services as processes (ports 18301-18305), driven only
through the topics and HTTP endpoints of contracts.md, as departments' systems, the portal and a
downstream subscriber would:

designations by units of several levels and an association (over Kafka and over HTTP); a bad
request and a malformed message answered; a red entry superseded by a black one; the masked public
feed; three key-scrutiny fields put a subject on the warning list; a serious conduct report yields
a transfer recommendation and the transfer; an objection flags the entry, a punishment reported
meanwhile is refused, the objection is upheld and the entry removed everywhere; a restoration
approved; expiry via CREDIT_NOW; cases tallied into the indicators."""

from __future__ import annotations

import base64
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaProducer
from credit_common.clock import start_of_local_day
from credit_common.messaging import topics
from credit_common.messaging.connection import kafka_options
from credit_common.settings import Settings

from tests.support.collector import Collector
from tests.support.events import company, conforming, event, person, publish, today
from tests.support.kafka_admin import wait_caught_up
from tests.support.processes import ServiceProcess, deployment, new_instance
from tests.support.signing import SigningProducer, sign
from tests.support.tokens import auth_headers

pytestmark = pytest.mark.integration

PORTS = {"designation": 18301, "sharing": 18302, "warning": 18303, "objection": 18304, "cases": 18305}
TIME_TRAVELLER_PORT = 18311
INSTANCE = new_instance()  # this test's deployment of the five services
GROUPS = {name: deployment(INSTANCE).group_of(name) for name in PORTS}
INPUTS = {
    "designation": [topics.DESIGNATION_REQUESTS, topics.OBJECTION_EVENTS],
    "sharing": [topics.DESIGNATION_EVENTS, topics.OBJECTION_EVENTS, topics.WARNING_EVENTS],
    "warning": [topics.DESIGNATION_EVENTS, topics.CONDUCT_REPORTS],
    "objection": [topics.DESIGNATION_EVENTS, topics.OBJECTION_REQUESTS],
    "cases": [topics.DESIGNATION_EVENTS, topics.OBJECTION_EVENTS, topics.ENFORCEMENT_ACTIONS],
}
WATCHED = [
    topics.FEEDBACK,
    topics.DEADLETTER,
    topics.DESIGNATION_EVENTS,
    topics.OBJECTION_EVENTS,
    topics.WARNING_EVENTS,
    topics.CASES_EVENTS,
    topics.UNIT_INBOX,
    topics.LISTS_CHANGES,
    topics.LISTS_PUBLIC,
]


class Platform:
    """The five services, a department's producer and HTTP clients, and a subscriber to every
    topic the platform writes."""

    def __init__(self, stack: Settings, kafka: AIOKafkaProducer, seen: Collector) -> None:
        self.stack = stack
        self.kafka = kafka
        self.seen = seen
        self.http = {
            name: httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=auth_headers())
            for name, port in PORTS.items()
        }

    async def caught_up(self, *names: str) -> None:
        for name in names or tuple(INPUTS):
            await wait_caught_up(self.stack.kafka_bootstrap_servers, GROUPS[name], INPUTS[name], timeout=600)

    async def send(self, topic: str, ev: dict[str, Any]) -> dict[str, Any]:
        """Send a request; its one answer on the feedback topic."""
        await publish(self.kafka, ev, topic)
        return await self.seen.answer(ev["id"], timeout=60)

    async def accepted(self, topic: str, ev: dict[str, Any]) -> dict[str, Any]:
        answer = await self.send(topic, ev)
        assert answer["type"] == "credit.request.accepted", answer["data"]
        return answer

    async def rejected(self, topic: str, ev: dict[str, Any]) -> list[str]:
        answer = await self.send(topic, ev)
        assert answer["type"] == "credit.request.rejected", answer["data"]
        return [e["code"] for e in answer["data"]["errors"]]

    async def one(self, topic: str, type_: str, match: Any, timeout: float = 60.0) -> dict[str, Any]:
        (found,) = await self.seen.wait_for(topic, lambda e: e["type"] == type_ and match(e["data"]), timeout=timeout)
        return conforming(found)

    async def created(self, request_id: str) -> dict[str, Any]:
        ev = await self.one(
            topics.DESIGNATION_EVENTS,
            "credit.designation.created",
            lambda d: d["record"]["designation_id"] == request_id,
        )
        return dict(ev["data"]["record"])

    async def removed(self, designation_id: str) -> dict[str, Any]:
        return await self.one(
            topics.DESIGNATION_EVENTS,
            "credit.designation.removed",
            lambda d: d["record"]["designation_id"] == designation_id,
        )

    async def change(self, entry_id: str, type_: str, topic: str = topics.LISTS_CHANGES, **match: Any) -> dict:
        def hit(d: dict[str, Any]) -> bool:
            entry = d["entry"]
            return entry["entry_id"] == entry_id and all(
                (d.get(k) if k == "reason" else entry.get(k)) == v for k, v in match.items()
            )

        return await self.one(topic, type_, hit)

    async def get(self, service: str, path: str, **params: Any) -> Any:
        response = await self.http[service].get(path, params=params)
        assert response.status_code == 200, (service, path, response.text)
        return response.json()

    async def close(self) -> None:
        for c in self.http.values():
            await c.aclose()


@pytest.fixture(scope="module")
async def platform(stack: Settings) -> AsyncIterator[Platform]:
    seen = Collector(stack.kafka_bootstrap_servers, WATCHED)
    await seen.start()
    kafka = SigningProducer(**kafka_options(stack.kafka_bootstrap_servers), enable_idempotence=True)
    await kafka.start()
    services = [ServiceProcess(name, port, instance=INSTANCE) for name, port in PORTS.items()]
    p = Platform(stack, kafka, seen)
    try:
        for svc in services:
            await svc.start()
        await p.caught_up()  # start from services that have read everything already on the topics
        yield p
    finally:
        for svc in services:
            await svc.stop()
            await svc.discard()
        await p.close()
        await kafka.stop()
        await seen.stop()


def designate(
    unit: str,
    list_: str,
    standard: str,
    subject: dict[str, Any],
    *,
    days_ago: int = 0,
    effective_to: date | None = None,
    **data: Any,
) -> dict[str, Any]:
    start = today() - timedelta(days=days_ago)
    body: dict[str, Any] = {
        "list": list_,
        "standard": standard,
        "subject": subject,
        "decision": {
            "document_no": f"DOC-{uuid.uuid4().hex[:8]}",
            "decided_on": start.isoformat(),
            "facts": "Facts established by the investigation.",
        },
        "effective_from": start.isoformat(),
        **data,
    }
    if effective_to is not None:
        body["effective_to"] = effective_to.isoformat()
    return event(f"unit/{unit}", "credit.designation.designate", body, subject=subject["id"], at=datetime.now(UTC))


def enforcement(designation_id: str, unit: str, measure: str, subject: str, **data: Any) -> dict[str, Any]:
    body = {
        "designation_id": designation_id,
        "measure": measure,
        "applied_on": today().isoformat(),
        "outcome": "Applied as the memorandum provides.",
        "description": f"Measure {measure} applied.",
        "typical": False,
        "media": [],
        **data,
    }
    return event(f"unit/{unit}", "credit.enforcement.report", body, subject=subject)


async def test_the_policy_from_start_to_end(platform: Platform) -> None:
    p = platform
    year = today().year
    before = await p.get("cases", "/v1/indicators", year=year, province="440000")
    (gd_before,) = before["scopes"]

    # ---- 1. Designations by units of several levels and an association, over Kafka and HTTP.
    a, c, builder, someone = (
        company("Alpha Trading Co."),
        company("Gamma Foods Co."),
        company("Beta Build Co."),
        person(),
    )
    national = designate("100000-SAT", "black", "taxation-black", a, days_ago=400)  # national, restorable later
    await p.accepted(topics.DESIGNATION_REQUESTS, national)
    county = designate("110108-SAT", "black", "taxation-black", someone)
    response = await p.http["designation"].post("/v1/requests", json=sign(county))  # the HTTP ingress
    assert response.status_code == 202, response.text
    assert (await p.seen.answer(county["id"], timeout=60))["type"] == "credit.request.accepted"
    association = designate("100000-CCIA", "black", "construction-black", builder)
    await p.accepted(topics.DESIGNATION_REQUESTS, association)
    provincial_red = designate("110000-SAT", "red", "taxation-red", c)
    await p.accepted(topics.DESIGNATION_REQUESTS, provincial_red)
    records = {ev["id"]: await p.created(ev["id"]) for ev in (national, county, association, provincial_red)}
    assert records[association["id"]]["unit_level"] == "national"
    assert (await p.get("designation", f"/v1/requests/{county['id']}"))["status"] == "accepted"
    assert (await p.get("designation", f"/v1/designations/{national['id']}"))["status"] == "active"

    # ---- 2. A bad request and a malformed message, each answered.
    bad = designate("110108-SAT", "black", "no-such-standard", company())
    assert "unknown_standard" in await p.rejected(topics.DESIGNATION_REQUESTS, bad)
    key = f"e2e-garbage-{uuid.uuid4().hex}"
    await p.kafka.send_and_wait(topics.DESIGNATION_REQUESTS, b"{not json", key=key.encode())
    letter = await p.one(
        topics.DEADLETTER,
        "credit.deadletter.recorded",
        lambda d: d["service"] == "designation" and base64.b64decode(d.get("key_b64") or b"") == key.encode(),
    )
    assert letter["data"]["value_b64"]

    # ---- 3. A red entry superseded by a black one.
    black_c = designate("110108-SAT", "black", "taxation-black", c)
    await p.accepted(topics.DESIGNATION_REQUESTS, black_c)
    superseded = await p.removed(provincial_red["id"])
    assert superseded["data"]["reason"] == "superseded"
    await p.change(provincial_red["id"], "credit.list.entry_removed", reason="superseded")
    await p.change(black_c["id"], "credit.list.entry_added")
    await p.caught_up("sharing")
    lists = {e["list"] for e in (await p.get("sharing", f"/v1/subjects/{c['id']}"))["entries"]}
    assert lists == {"black"}

    # ---- 4. The public feed masks natural persons.
    public = await p.change(county["id"], "credit.list.entry_added", topic=topics.LISTS_PUBLIC)
    masked = someone["id"][:6] + "********" + someone["id"][-4:]
    assert public["data"]["entry"]["subject"]["id"] == masked
    assert someone["id"] not in orjson.dumps(public).decode()
    assert "facts" not in public["data"]["entry"]["decision"]

    # ---- 5. Key-scrutiny entries in three key fields put a subject on the warning list.
    d = company("Delta Chemicals Co.")
    ks = [
        designate("110108-SAT", "key_scrutiny", "taxation-key_scrutiny", d),
        designate("440100-MEE", "key_scrutiny", "environment-key_scrutiny", d),
        designate("310115-MEM", "key_scrutiny", "work_safety-key_scrutiny", d),
    ]
    for ev in ks:
        await p.accepted(topics.DESIGNATION_REQUESTS, ev)
    listed = await p.one(topics.WARNING_EVENTS, "credit.warning.listed", lambda x: x["subject"]["id"] == d["id"])
    assert sorted(listed["data"]["fields"]) == ["environment", "taxation", "work_safety"]
    await p.caught_up("warning", "sharing")
    assert (await p.get("warning", f"/v1/warnings/{d['id']}"))["subject"]["id"] == d["id"]

    # ---- 6. A serious conduct report: a transfer recommendation, then the transfer.
    report = event(
        "unit/110000-SAT",
        "credit.conduct.report",
        {
            "subject": d,
            "field": "taxation",
            "serious": True,
            "occurred_on": today().isoformat(),  # during the key scrutiny: the entries began today
            "document_no": f"CR-{uuid.uuid4().hex[:8]}",
            "description": "Issued false invoices while under key scrutiny.",
        },
        subject=d["id"],
    )
    await p.caught_up("warning")
    await p.accepted(topics.CONDUCT_REPORTS, report)
    recommended = await p.one(
        topics.WARNING_EVENTS, "credit.transfer.recommended", lambda x: x["subject"]["id"] == d["id"]
    )
    assert recommended["data"]["designation_id"] == ks[0]["id"]
    assert recommended["data"]["unit"] == "110108-SAT"
    inbox = await p.one(
        topics.UNIT_INBOX,
        "credit.inbox.transfer",
        lambda x: x["transfer"]["recommendation_id"] == recommended["data"]["recommendation_id"],
    )
    assert inbox["_key"] == "110108-SAT"
    transfer = designate("110108-SAT", "black", "taxation-black", d, transfer_from=ks[0]["id"])
    await p.accepted(topics.DESIGNATION_REQUESTS, transfer)
    assert (await p.removed(ks[0]["id"]))["data"]["reason"] == "transferred"
    cleared = await p.one(topics.WARNING_EVENTS, "credit.warning.cleared", lambda x: x["subject"]["id"] == d["id"])
    assert sorted(cleared["data"]["remaining_fields"]) == ["environment", "work_safety"]
    await p.caught_up("warning")
    closed = (await p.get("warning", "/v1/transfers", status="closed", subject=d["id"]))["transfers"]
    assert [t["recommendation_id"] for t in closed] == [recommended["data"]["recommendation_id"]]

    # ---- 7. An objection flags the entry; a punishment meanwhile is refused; upheld, removed everywhere.
    filing = event(
        "portal",
        "credit.objection.file",
        {
            "designation_id": county["id"],
            "objector": {"kind": "subject", "id": someone["id"], "name": someone["name"]},
            "grounds": "The tax was paid on time.",
            "evidence": ["RECEIPT-1"],
        },
        subject=someone["id"],
    )
    await p.accepted(topics.OBJECTION_REQUESTS, filing)
    opened = await p.one(
        topics.OBJECTION_EVENTS, "credit.objection.opened", lambda x: x["objection_id"] == filing["id"]
    )
    assert opened["data"]["unit"] == "110108-SAT"
    await p.change(county["id"], "credit.list.entry_updated", under_objection=True)
    await p.caught_up("cases")
    punish = enforcement(county["id"], "440000-GAC", "tax-black-customs-inspection", someone["id"])
    assert await p.rejected(topics.ENFORCEMENT_ACTIONS, punish) == ["suspended_under_objection"]
    decide = event(
        "unit/110108-SAT",
        "credit.objection.decide",
        {"objection_id": filing["id"], "outcome": "upheld", "reasoning": "Receipt verified.",
         "decided_on": today().isoformat()},
        subject=someone["id"],
    )  # fmt: skip
    await p.accepted(topics.OBJECTION_REQUESTS, decide)
    assert (await p.removed(county["id"]))["data"]["reason"] == "objection_upheld"
    await p.change(county["id"], "credit.list.entry_removed", reason="objection_upheld")
    await p.change(county["id"], "credit.list.entry_removed", topic=topics.LISTS_PUBLIC, reason="objection_upheld")
    await p.caught_up("sharing", "cases")
    assert (await p.get("sharing", f"/v1/subjects/{someone['id']}"))["entries"] == []
    assert (await p.get("objection", f"/v1/objections/{filing['id']}"))["outcome"] == "upheld"
    late = enforcement(county["id"], "440000-GAC", "tax-black-customs-inspection", someone["id"])
    assert await p.rejected(topics.ENFORCEMENT_ACTIONS, late) == ["designation_not_active_on_date"]

    # ---- 10 (before 8 takes the entry away). A case on the national entry, tallied into the indicators.
    case = enforcement(national["id"], "440000-GAC", "tax-black-customs-inspection", a["id"], media=[
        {"outlet": "Southern Daily", "level": "provincial", "url": "https://news.example.cn/e2e",
         "published_on": today().isoformat()}])  # fmt: skip
    await p.accepted(topics.ENFORCEMENT_ACTIONS, case)
    recorded = await p.one(topics.CASES_EVENTS, "credit.case.recorded", lambda x: x["case_id"] == case["id"])
    assert (recorded["data"]["province"], recorded["data"]["media_reported"]) == ("440000", True)
    after = await p.get("cases", "/v1/indicators", year=year, province="440000")
    (gd_after,) = after["scopes"]
    assert gd_after["cases"] == gd_before["cases"] + 1
    assert gd_after["media_reported_cases"] == gd_before["media_reported_cases"] + 1

    # ---- 8. A restoration approved (taxation-black: restorable after 365 days; the entry is 400 days old).
    application = event(
        "portal",
        "credit.restoration.apply",
        {
            "designation_id": national["id"],
            "applicant": {"id": a["id"], "name": a["name"]},
            "measures": [
                {"kind": "obligation_performed", "detail": "Paid the tax and the fines.", "completed_on": "2026-06-01"},
                {"kind": "restoration_training", "detail": "Credit restoration course.", "completed_on": "2026-06-10",
                 "hours": 6},
            ],
            "evidence": ["RECEIPT-2"],
        },
        subject=a["id"],
    )  # fmt: skip
    await p.accepted(topics.OBJECTION_REQUESTS, application)
    approve = event(
        "unit/100000-SAT",
        "credit.restoration.decide",
        {"application_id": application["id"], "outcome": "approved", "reasoning": "Obligations performed.",
         "decided_on": today().isoformat()},
        subject=a["id"],
    )  # fmt: skip
    await p.accepted(topics.OBJECTION_REQUESTS, approve)
    restored = await p.removed(national["id"])
    assert restored["data"]["reason"] == "restored"
    await p.change(national["id"], "credit.list.entry_removed", reason="restored")

    # ---- 9. Expiry by the platform clock (CREDIT_NOW): the entry leaves its list after its last day.
    short = designate("110108-SAT", "black", "taxation-black", company("Epsilon Co."), effective_to=today())
    await p.accepted(topics.DESIGNATION_REQUESTS, short)
    await p.created(short["id"])
    due = start_of_local_day(today() + timedelta(days=1))
    traveller = ServiceProcess(
        "designation",
        TIME_TRAVELLER_PORT,
        instance=INSTANCE,
        env={"CREDIT_NOW": (due + timedelta(seconds=5)).isoformat()},
    )
    await traveller.start()
    try:
        expired = await p.removed(short["id"])
    finally:
        await traveller.stop()
    assert expired["data"]["reason"] == "expired"
    await p.change(short["id"], "credit.list.entry_removed", reason="expired")

    # Everything published on the way was read by everyone downstream.
    await p.caught_up()
