"""What happens to designations after they are made, against the real service, broker and
database: the red/black exclusion, transfer, objections upheld, credit restoration, repealed
standards, removal, amendment, the HTTP ingress and the dead-letter topic."""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson
import pytest
from credit_common.contracts.envelope import CONTENT_TYPE, new_id
from credit_common.contracts.reference import StandardRecord
from credit_common.messaging import topics
from credit_common.reference.cli import publish_records
from credit_common.settings import Settings

from tests.support.processes import ServiceProcess
from tests.support.tokens import auth_headers

from .conftest import (
    INGRESSES,
    Departments,
    amend,
    company,
    designate,
    kinds,
    platform_event,
    post,
    remove,
    request,
    send,
    subject_of,
    today,
)

pytestmark = pytest.mark.integration

via_both = pytest.mark.parametrize("via", INGRESSES)
lists = pytest.mark.parametrize("list_", ["red", "black", "key_scrutiny"])
TAX_STANDARD = {"red": "taxation-red", "black": "taxation-black", "key_scrutiny": "taxation-key_scrutiny"}


def at(value: str) -> datetime:
    return datetime.fromisoformat(value)


def assert_removed(event: dict[str, Any], reason: str, related_id: str | None, caused_at: datetime | None) -> None:
    """A `credit.designation.removed` event: the reason, the cause, and the whole record after it,
    removed when the platform received its cause (a request's `time` is only its sender's claim:
    the receipt is that or a moment later; a platform event's time is the receipt already)."""
    data = event["data"]
    assert event["type"] == "credit.designation.removed"
    assert data["reason"] == reason
    assert data.get("related_id") == related_id
    record = data["record"]
    assert record["status"] == "removed"
    assert record["removal_reason"] == reason
    if caused_at is not None:
        assert timedelta(0) <= at(record["removed_at"]) - caused_at < timedelta(minutes=1)
        assert at(event["time"]) == at(record["removed_at"])


# ---------------------------------------------------------------------- red / black exclusion


@pytest.mark.parametrize("blocking", ["black", "key_scrutiny"])
@kinds()
async def test_red_refused_while_on_black_or_key_scrutiny(departments: Departments, blocking: str, kind: str) -> None:
    """A red designation is refused (`conflicts_with_black_list`) while the subject is on a black
    or key-scrutiny list, in any field; once that entry is gone, red is possible again."""
    subject = subject_of(kind)
    entry = await departments.designated(designate(blocking, TAX_STANDARD[blocking], subject))
    same_field = await departments.rejected(designate("red", "taxation-red", subject))
    assert same_field.fields == {("conflicts_with_black_list", "subject.id")}
    other_field = await departments.rejected(designate("red", "customs-red", subject, unit="100000-GAC"), "http")
    assert other_field.fields == {("conflicts_with_black_list", "subject.id")}

    await departments.accepted(remove(entry["designation_id"], subject=subject["id"]))
    await departments.designated(designate("red", "taxation-red", subject))


@pytest.mark.parametrize("new_list", ["black", "key_scrutiny"])
@kinds()
async def test_black_or_key_scrutiny_supersedes_red(departments: Departments, new_list: str, kind: str) -> None:
    """A black or key-scrutiny designation removes every active red entry of the subject with
    reason `superseded` and related_id = the new designation, after the new one is created."""
    subject = subject_of(kind)
    reds = [
        await departments.designated(designate("red", "taxation-red", subject)),
        await departments.designated(designate("red", "customs-red", subject, unit="100000-GAC")),
    ]
    event = designate(new_list, TAX_STANDARD[new_list], subject)
    new = await departments.designated(event)
    for red in reds:
        removed = await departments.event("credit.designation.removed", red["designation_id"])
        assert_removed(removed, "superseded", new["designation_id"], at(event["time"]))
        assert removed["data"]["record"] == {
            **red,
            "status": "removed",
            "removal_reason": "superseded",
            "removed_at": removed["data"]["record"]["removed_at"],
        }
        assert removed["causationid"] == event["id"]
        assert (await departments.record(red["designation_id"]))["status"] == "removed"
    # Same subject, same partition: the creation comes first, then the removals it caused.
    on_topic = departments.collector.where(topics.DESIGNATION_EVENTS, lambda e: e.get("causationid") == event["id"])
    assert [e["type"] for e in on_topic] == [
        "credit.designation.created",
        "credit.designation.removed",
        "credit.designation.removed",
    ]
    assert (await departments.record(new["designation_id"]))["status"] == "active"


@kinds()
async def test_a_burst_for_one_subject_is_judged_in_order(departments: Departments, kind: str) -> None:
    """Requests about one subject sent back to back (one partition, most likely one batch) are
    judged in order, each against the state the previous ones left."""
    subject = subject_of(kind)
    red = designate("red", "taxation-red", subject)
    black = designate("black", "taxation-black", subject)
    red_refused = designate("red", "customs-red", subject, unit="100000-GAC")
    revoke = remove(black["id"], subject=subject["id"])
    red_again = designate("red", "customs-red", subject, unit="100000-GAC")
    twice = designate("red", "customs-red", subject, unit="100000-GAC")
    burst = [red, black, red_refused, revoke, red_again, twice]
    for event in burst:
        await send(departments.kafka, event)
    answers = [await departments.collector.answer(e["id"]) for e in burst]
    outcomes = [(a["type"].rsplit(".", 1)[-1], [e["code"] for e in a["data"].get("errors", [])]) for a in answers]
    assert outcomes == [
        ("accepted", []),
        ("accepted", []),
        ("rejected", ["conflicts_with_black_list"]),
        ("accepted", []),
        ("accepted", []),
        ("rejected", ["already_designated"]),
    ]
    superseded = await departments.event("credit.designation.removed", red["id"])
    assert_removed(superseded, "superseded", black["id"], at(black["time"]))
    revoked = await departments.event("credit.designation.removed", black["id"])
    assert_removed(revoked, "revoked", None, at(revoke["time"]))
    assert (await departments.record(red_again["id"]))["status"] == "active"


# ---------------------------------------------------------------------- transfer


@kinds()
async def test_transfer_moves_key_scrutiny_to_black(departments: Departments, kind: str) -> None:
    """A black designation naming `transfer_from` removes that key-scrutiny entry (`transferred`,
    related_id = the black designation) in the same transaction as it is created."""
    subject = subject_of(kind)
    watched = await departments.designated(designate("key_scrutiny", "taxation-key_scrutiny", subject))
    event = designate("black", "taxation-black", subject, transfer_from=watched["designation_id"])
    black = await departments.designated(event)
    assert black["transfer_from"] == watched["designation_id"]
    # The answer was written with both changes: no waiting for the key-scrutiny entry.
    source = await departments.record(watched["designation_id"])
    assert source["status"] == "removed"
    assert source["removal_reason"] == "transferred"
    removed = await departments.event("credit.designation.removed", watched["designation_id"])
    assert_removed(removed, "transferred", black["designation_id"], at(event["time"]))
    assert (await departments.record(black["designation_id"]))["transfer_from"] == watched["designation_id"]


TRANSFER_REFUSALS = [
    "unknown",
    "another_subjects_entry",
    "not_key_scrutiny",
    "not_active",
    "new_designation_not_black",
]


@pytest.mark.parametrize("case", TRANSFER_REFUSALS)
@via_both
async def test_transfer_refused(departments: Departments, case: str, via: str) -> None:
    """transfer_from unknown (or another subject's) -> unknown_designation; not a key-scrutiny
    entry or a non-black designation -> list_mismatch; an entry already removed -> not_active.
    Nothing changes."""
    subject = subject_of("natural_person" if via == "http" else "legal_person")
    watched = await departments.designated(designate("key_scrutiny", "taxation-key_scrutiny", subject))
    source_id = watched["designation_id"]
    list_, standard, unit, expected = "black", "taxation-black", "100000-SAT", ("list_mismatch", "transfer_from")
    if case == "unknown":
        source_id, expected = new_id(), ("unknown_designation", "transfer_from")
    elif case == "another_subjects_entry":
        other = await departments.designated(designate("key_scrutiny", "taxation-key_scrutiny", company()))
        source_id, expected = other["designation_id"], ("unknown_designation", "transfer_from")
    elif case == "not_key_scrutiny":
        red_subject = subject_of("legal_person")
        red = await departments.designated(designate("red", "taxation-red", red_subject))
        subject, source_id = red_subject, red["designation_id"]
    elif case == "not_active":
        await departments.accepted(remove(source_id, subject=subject["id"]))
        expected = ("not_active", "transfer_from")
    else:
        list_, standard, unit = "key_scrutiny", "customs-key_scrutiny", "100000-GAC"
    answer = await departments.rejected(designate(list_, standard, subject, unit=unit, transfer_from=source_id), via)
    assert answer.fields == {expected}
    if case in ("another_subjects_entry", "not_key_scrutiny", "new_designation_not_black"):
        assert (await departments.record(source_id))["status"] == "active"


# ---------------------------------------------------------------------- objections


@lists
@kinds()
async def test_upheld_objection_removes_the_entry(
    departments: Departments, designation: ServiceProcess, list_: str, kind: str
) -> None:
    """`credit.objection.resolved` upheld removes the entry (`objection_upheld`, related_id = the
    objection, at the time of the outcome); rejected and partially upheld outcomes, published
    before it on the same partition, removed nothing."""
    subject = subject_of(kind)
    record = await departments.designated(designate(list_, TAX_STANDARD[list_], subject))
    designation_id = record["designation_id"]
    outcomes = {}
    for outcome in ("rejected", "partially_upheld", "upheld"):
        outcomes[outcome] = platform_event(
            "credit.objection.resolved",
            {
                "objection_id": new_id(),
                "designation_id": designation_id,
                "unit": record["unit"],
                "outcome": outcome,
                "reasoning": f"The unit decided: {outcome}.",
                "decided_on": today().isoformat(),
            },
            subject=subject["id"],
        )
        await departments.publish(topics.OBJECTION_EVENTS, outcomes[outcome])
    upheld = outcomes["upheld"]
    removed = await departments.event("credit.designation.removed", designation_id)
    assert_removed(removed, "objection_upheld", upheld["data"]["objection_id"], at(upheld["time"]))
    assert removed["causationid"] == upheld["id"]
    # An outcome for an entry already off its list changes nothing (and is no error).
    again = platform_event(
        "credit.objection.resolved", {**upheld["data"], "objection_id": new_id()}, subject=subject["id"]
    )
    await departments.publish(topics.OBJECTION_EVENTS, again)
    await designation.settled()  # it is consumed, and anything it caused is on the topics
    await departments.collector.settled(topics.DESIGNATION_EVENTS)
    assert len(departments.events_of(designation_id, "credit.designation.removed")) == 1
    assert (await departments.record(designation_id))["removal_reason"] == "objection_upheld"


# ---------------------------------------------------------------------- credit restoration


def restoration(
    record: dict[str, Any], outcome: str, *, causationid: str | None = None, decided_on: date | None = None
) -> dict[str, Any]:
    return platform_event(
        "credit.restoration.resolved",
        {
            "application_id": new_id(),
            "designation_id": record["designation_id"],
            "unit": record["unit"],
            "outcome": outcome,
            "reasoning": f"Restoration {outcome}.",
            "decided_on": (decided_on or today()).isoformat(),
        },
        subject=record["subject"]["id"],
        causationid=causationid,
    )


def listed_since(
    list_: str, standard: str, subject: dict[str, Any], *, unit: str, days_ago: int, days: int
) -> dict[str, Any]:
    """A designation whose effective period began `days_ago` days ago and lasts `days` days."""
    start = today() - timedelta(days=days_ago)
    return designate(
        list_,
        standard,
        subject,
        unit=unit,
        decided_on=start,
        effective_from=start.isoformat(),
        effective_to=(start + timedelta(days=days - 1)).isoformat(),
    )


RESTORABLE = {
    # taxation-black: restorable after 365 days on the list.
    "black_after_365_days": ("black", "taxation-black", "100000-SAT", 400, 1095),
    # market_regulation-key_scrutiny: restorable at once (min_days_before_restoration 0).
    "key_scrutiny_at_once": ("key_scrutiny", "market_regulation-key_scrutiny", "100000-SAMR", 0, 730),
    # taxation-key_scrutiny: restorable after 180 days; this one began exactly 180 days ago.
    "key_scrutiny_on_the_first_day": ("key_scrutiny", "taxation-key_scrutiny", "100000-SAT", 180, 365),
}


@pytest.mark.parametrize("case", list(RESTORABLE))
@kinds()
async def test_approved_restoration_removes_the_entry(departments: Departments, case: str, kind: str) -> None:
    """An approved restoration removes the entry (`restored`, related_id = the application) where
    the standard allows it and its minimum time has passed; a rejected one before it did nothing."""
    list_, standard, unit, days_ago, days = RESTORABLE[case]
    record = await departments.designated(
        listed_since(list_, standard, subject_of(kind), unit=unit, days_ago=days_ago, days=days)
    )
    refused = restoration(record, "rejected")
    approved = restoration(record, "approved")
    await departments.publish(topics.OBJECTION_EVENTS, refused)
    await departments.publish(topics.OBJECTION_EVENTS, approved)
    removed = await departments.event("credit.designation.removed", record["designation_id"])
    assert_removed(removed, "restored", approved["data"]["application_id"], at(approved["time"]))
    assert len(departments.events_of(record["designation_id"], "credit.designation.removed")) == 1


NOT_RESTORABLE = {
    # court_enforcement-black: restorable false (the court revokes instead), however long listed.
    "standard_not_restorable": ("black", "court_enforcement-black", "100000-SPC", 400, 730),
    # taxation-black: only after 365 days on the list; this one began today.
    "too_early": ("black", "taxation-black", "100000-SAT", 0, 1095),
    # taxation-key_scrutiny: only after 180 days; this one began 179 days ago.
    "one_day_too_early": ("key_scrutiny", "taxation-key_scrutiny", "100000-SAT", 179, 365),
}


@pytest.mark.parametrize("case", list(NOT_RESTORABLE))
@kinds()
async def test_restoration_not_allowed(departments: Departments, case: str, kind: str) -> None:
    """Where the standard does not allow restoration, or too early, the entry stays and the
    deciding unit gets `credit.request.rejected` (`restoration_not_allowed`) on the feedback
    topic, keyed by that unit, answering its decide request (the event's causation id, else the
    application id)."""
    list_, standard, unit, days_ago, days = NOT_RESTORABLE[case]
    record = await departments.designated(
        listed_since(list_, standard, subject_of(kind), unit=unit, days_ago=days_ago, days=days)
    )
    decide_id = new_id() if kind == "legal_person" else None
    approved = restoration(record, "approved", causationid=decide_id)
    await departments.publish(topics.OBJECTION_EVENTS, approved)
    request_id = decide_id or approved["data"]["application_id"]
    answer = await departments.collector.answer(request_id)
    assert answer["type"] == "credit.request.rejected"
    assert answer["_key"] == unit
    assert answer["source"] == "platform/designation"
    assert answer["data"]["request_type"] == "credit.restoration.decide"
    assert [(e["code"], e["field"]) for e in answer["data"]["errors"]] == [("restoration_not_allowed", "outcome")]
    assert (await departments.record(record["designation_id"]))["status"] == "active"
    assert not departments.events_of(record["designation_id"], "credit.designation.removed")


# ---------------------------------------------------------------------- repealed standard


async def test_repealed_standard_removes_its_entries(departments: Departments, stack: Settings) -> None:
    """A test standard published in force, designated under, then republished `repealed` with a
    higher version: its active entries leave their list (`standard_repealed`); entries under
    other standards stay. The statutory ceiling (black: 1095 days) holds even where the standard
    allows more. The test standard is tombstoned afterwards."""
    code = f"test-{uuid.uuid4().hex[:12]}-black"
    standard = StandardRecord(
        code=code,
        field="taxation",
        list="black",
        title="Integration-test black-list standard",
        legal_basis="tests/integration/designation/test_flows.py",
        min_level="county",
        default_period_days=365,
        max_period_days=1500,
        restorable=False,
        public=True,
        status="in_force",
        version=1,
    )
    bootstrap = stack.kafka_bootstrap_servers
    await publish_records([standard], bootstrap, force=True)
    try:
        legal, natural = subject_of("legal_person"), subject_of("natural_person")
        # The service's catalogue follows the reference topic on its own: wait until it knows the standard.
        first = await _designate_once_known(departments, lambda: designate("black", code, legal, unit="110108-SAT"))
        assert first["standard"] == code
        assert first["standard_version"] == 1
        second = await departments.designated(designate("black", code, natural))
        kept = await departments.designated(designate("key_scrutiny", "taxation-key_scrutiny", legal))
        too_long = designate(
            "black",
            code,
            subject_of("legal_person"),
            decided_on=today(),
            effective_to=(today() + timedelta(days=1095)).isoformat(),  # 1096 days
        )
        assert (await departments.rejected(too_long)).fields == {("period_too_long", "effective_to")}

        await publish_records([standard.model_copy(update={"status": "repealed", "version": 2})], bootstrap, force=True)
        for entry in (first, second):
            removed = await departments.event("credit.designation.removed", entry["designation_id"])
            assert_removed(removed, "standard_repealed", None, None)
            assert (await departments.record(entry["designation_id"]))["removal_reason"] == "standard_repealed"
        assert (await departments.record(kept["designation_id"]))["status"] == "active"
    finally:
        await departments.kafka.send_and_wait(topics.REFERENCE, None, key=f"standard:{code}".encode())


async def _designate_once_known(
    departments: Departments, build: Callable[[], dict[str, Any]], timeout: float = 30.0
) -> dict[str, Any]:
    """Designate under a standard just published: until the service's catalogue has it, the
    request is refused `unknown_standard` (and nothing happens), so try again with a new request."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        event = build()
        answer = await departments.submit(event)
        if answer.status == "accepted":
            created = await departments.event("credit.designation.created", event["id"])
            record: dict[str, Any] = created["data"]["record"]
            return record
        assert answer.codes == {"unknown_standard"}, answer.errors
        assert asyncio.get_running_loop().time() < deadline, "the service never learnt the test standard"
        await asyncio.sleep(0.2)


# ---------------------------------------------------------------------- removal


@lists
@kinds()
@via_both
async def test_designating_unit_revokes(departments: Departments, list_: str, kind: str, via: str) -> None:
    """The designating unit removes its entry: accepted with result_id = the designation, and
    `credit.designation.removed` (`revoked`, no related_id) at the request's time."""
    subject = subject_of(kind)
    record = await departments.designated(designate(list_, TAX_STANDARD[list_], subject))
    event = remove(record["designation_id"], subject=subject["id"])
    assert await departments.accepted(event, via) == record["designation_id"]
    removed = await departments.event("credit.designation.removed", record["designation_id"])
    assert_removed(removed, "revoked", None, at(event["time"]))
    assert removed["data"]["record"] == {
        **record,
        "status": "removed",
        "removal_reason": "revoked",
        "removed_at": removed["data"]["record"]["removed_at"],
    }
    current = (await departments.http.get(f"/v1/designations/{record['designation_id']}")).json()
    (audit,) = current.pop("later_decisions")
    signed = current.pop("signatures")  # the designation's and the revocation's requests, as signed
    assert [s["request_id"] for s in signed] == [record["designation_id"], event["id"]]
    assert {s["principal"] for s in signed} == {"unit:100000-SAT"}
    assert current == removed["data"]["record"]
    assert (audit["request_id"], audit["kind"], audit["unit"]) == (event["id"], "revoke", "100000-SAT")
    assert audit["decision"] == event["data"]["decision"], "the revocation's decision is kept"


@kinds()
@via_both
async def test_parent_unit_revokes(departments: Departments, kind: str, via: str) -> None:
    """The designating unit's parent may revoke (Haidian District Tax Service -> Beijing)."""
    subject = subject_of(kind)
    record = await departments.designated(designate("black", "taxation-black", subject, unit="110108-SAT"))
    assert record["unit"] == "110108-SAT"
    assert record["unit_level"] == "county"
    assert record["region"] == "110108"
    event = remove(record["designation_id"], unit="110000-SAT", subject=subject["id"])
    await departments.accepted(event, via)
    removed = await departments.event("credit.designation.removed", record["designation_id"])
    assert_removed(removed, "revoked", None, at(event["time"]))


@pytest.mark.parametrize("other", ["440000-SAT", "100000-GAC", "440106-SAT"])
@via_both
async def test_another_unit_may_not_revoke(departments: Departments, other: str, via: str) -> None:
    """Another unit (another province's, another field's, another's child) is refused
    `not_designating_unit`; the entry stays active."""
    subject = subject_of("natural_person" if via == "http" else "legal_person")
    record = await departments.designated(designate("black", "taxation-black", subject, unit="110108-SAT"))
    answer = await departments.rejected(remove(record["designation_id"], unit=other, subject=subject["id"]), via)
    assert answer.fields == {("not_designating_unit", "source")}
    assert (await departments.record(record["designation_id"]))["status"] == "active"


@via_both
async def test_revoke_unknown_or_removed(departments: Departments, via: str) -> None:
    """An unknown id -> `unknown_designation`; an entry already removed -> `not_active`."""
    unknown = await departments.rejected(remove(new_id()), via)
    assert unknown.fields == {("unknown_designation", "designation_id")}
    subject = company()
    record = await departments.designated(designate("key_scrutiny", "taxation-key_scrutiny", subject))
    await departments.accepted(remove(record["designation_id"], subject=subject["id"]), via)
    again = await departments.rejected(remove(record["designation_id"], subject=subject["id"]), via)
    assert again.fields == {("not_active", "designation_id")}
    assert len(departments.events_of(record["designation_id"], "credit.designation.removed")) == 1


# ---------------------------------------------------------------------- amendment


@kinds()
@via_both
async def test_amend_facts_decision_and_period(departments: Departments, kind: str, via: str) -> None:
    """The designating unit corrects the facts, replaces the decision document and shortens the
    period; each is `credit.designation.amended` with the whole record, the changes and the reason."""
    subject = subject_of(kind)
    record = await departments.designated(designate("black", "taxation-black", subject, decided_on=today()))
    designation_id = record["designation_id"]

    async def amended(changes: dict[str, Any], reason: str) -> dict[str, Any]:
        event = amend(designation_id, changes, reason=reason, subject=subject["id"])
        assert await departments.accepted(event, via) == designation_id
        found = await departments.event(
            "credit.designation.amended", designation_id, lambda e: e["causationid"] == event["id"]
        )
        assert found["data"]["changes"] == changes
        assert found["data"]["reason"] == reason
        assert found["data"]["record"]["status"] == "active"
        assert await departments.record(designation_id) == found["data"]["record"]
        return dict(found["data"]["record"])

    after = await amended({"facts": "Corrected facts: the amount evaded was 1.2 million yuan."}, "Typo in the amount.")
    assert after == {
        **record,
        "decision": {**record["decision"], "facts": "Corrected facts: the amount evaded was 1.2 million yuan."},
    }

    decision = {
        "document_no": "SAT-2026-REISSUED-7",
        "decided_on": today().isoformat(),
        "legal_basis": "SAT Order No. 54 (2021), art. 5",
        "facts": "The reissued decision's facts.",
    }
    after = await amended({"decision": decision}, "The decision was reissued.")
    assert after == {**record, "decision": decision}

    shorter = (today() + timedelta(days=100)).isoformat()
    after = await amended({"effective_to": shorter}, "Period shortened on review.")
    assert after == {**record, "decision": decision, "effective_to": shorter}


@via_both
async def test_amend_refused(departments: Departments, via: str) -> None:
    """effective_to may only move earlier (and not before effective_from): `invalid_period`;
    another unit -> `not_designating_unit`; unknown -> `unknown_designation`; removed -> `not_active`."""
    subject = subject_of("natural_person" if via == "http" else "legal_person")
    record = await departments.designated(
        designate("key_scrutiny", "taxation-key_scrutiny", subject, decided_on=today())
    )
    designation_id, end = record["designation_id"], date.fromisoformat(record["effective_to"])
    start = date.fromisoformat(record["effective_from"])
    for moved in (end + timedelta(days=1), end, start - timedelta(days=1)):
        answer = await departments.rejected(amend(designation_id, {"effective_to": moved.isoformat()}), via)
        assert answer.fields == {("invalid_period", "changes.effective_to")}, moved
    other = await departments.rejected(amend(designation_id, {"facts": "Not mine to change."}, unit="100000-GAC"), via)
    assert other.fields == {("not_designating_unit", "source")}
    unknown = await departments.rejected(amend(new_id(), {"facts": "No such entry."}), via)
    assert unknown.fields == {("unknown_designation", "designation_id")}
    assert (await departments.record(designation_id)) == record
    assert not departments.events_of(designation_id, "credit.designation.amended")

    await departments.accepted(remove(designation_id, subject=subject["id"]))
    removed = await departments.rejected(amend(designation_id, {"facts": "Too late."}), via)
    assert removed.fields == {("not_active", "designation_id")}


# ---------------------------------------------------------------------- HTTP


async def test_http_request_lifecycle(departments: Departments) -> None:
    """POST /v1/requests: 202 with the id; GET /v1/requests/{id} knows it at once (pending, or
    already answered) and then shows accepted with the result, or rejected with the errors;
    GET /v1/designations/{id} gives the record; unknown ids are 404 problems."""
    http = departments.http
    event = designate("black", "taxation-black", company())
    response = await post(http, event)
    assert response.status_code == 202, response.text
    assert response.json() == {
        "id": event["id"],
        "status": "pending",
        "topic": topics.DESIGNATION_REQUESTS,
        "links": {"self": f"/v1/requests/{event['id']}"},
    }
    first = await http.get(f"/v1/requests/{event['id']}")
    assert first.status_code == 200
    assert first.json()["status"] in ("pending", "accepted")
    status = await departments.poll_request(event["id"])
    assert status["status"] == "accepted"
    assert status["result_id"] == event["id"]
    assert status["errors"] == []
    assert status["type"] == "credit.designation.designate"
    assert status["unit"] == "100000-SAT"
    assert status["answered_by"] == "platform/designation"
    assert status["received_at"]
    assert status["answered_at"]
    record = await departments.record(event["id"])
    assert record["designation_id"] == event["id"]
    assert record["status"] == "active"

    bad = designate("black", "taxation-purple", company())
    assert (await post(http, bad)).status_code == 202
    status = await departments.poll_request(bad["id"])
    assert status["status"] == "rejected"
    assert status["result_id"] is None
    assert [(e["code"], e["field"]) for e in status["errors"]] == [("unknown_standard", "standard")]
    assert all(e["message"] for e in status["errors"])

    for path in (f"/v1/designations/{new_id()}", f"/v1/requests/{new_id()}", f"/v1/designations/{bad['id']}"):
        missing = await http.get(path)
        assert missing.status_code == 404, path
        assert missing.headers["content-type"].startswith("application/problem+json")
        assert missing.json()["status"] == 404
        assert missing.json()["title"]


MALFORMED = {
    "not_json": b"this is not JSON {",
    "not_an_object": b"[1, 2, 3]",
    "empty_object": b"{}",
    "not_a_cloudevent": orjson.dumps({"id": "x", "source": "unit/100000-SAT", "type": "credit.designation.designate"}),
    "unknown_type": orjson.dumps(request("credit.designation.erase", {"designation_id": "x"})),
    "event_not_request": orjson.dumps(request("credit.designation.created", {"record": {}})),
    "source_not_a_unit": orjson.dumps({**designate("black", "taxation-black", company()), "source": "somebody/else"}),
    # What PostgreSQL cannot store is refused at the door, not accepted and then never answered.
    "nul_in_the_id": orjson.dumps({**designate("black", "taxation-black", company()), "id": "x\x00y"}),
    "nul_in_the_data": orjson.dumps(designate("black", "taxation-black", company(name="Zhao\x00 Works"))),
    "control_in_the_source": orjson.dumps({**designate("black", "taxation-black", company()), "source": "unit/\n"}),
}


@pytest.mark.parametrize("case", list(MALFORMED))
async def test_http_malformed_body_is_a_400_problem(departments: Departments, case: str) -> None:
    """A body that is not JSON, not a CloudEvent, not a request type of the contract, or not from
    a unit: 400 application/problem+json with `schema_violation` errors; nothing is recorded."""
    body = MALFORMED[case]
    response = await departments.http.post("/v1/requests", content=body, headers={"content-type": CONTENT_TYPE})
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["status"] == 400
    assert problem["title"]
    assert problem["errors"]
    assert {e["code"] for e in problem["errors"]} == {"schema_violation"}
    doc = orjson.loads(body) if case != "not_json" else None
    if isinstance(doc, dict) and doc.get("id") and doc["id"].isprintable():
        assert (await departments.http.get(f"/v1/requests/{doc['id']}")).status_code == 404


# ---------------------------------------------------------------------- dead letters


async def test_unparseable_message_is_dead_lettered_and_the_service_goes_on(departments: Departments) -> None:
    """Bytes that are not a CloudEvent land on credit.deadletter.v1 (raw key and value in base64,
    where they were, why), keyed by the original key; the next request on the same partition is
    answered as usual."""
    subject = company()
    key = subject["id"].encode()
    raw = b"\x00\xffnot a CloudEvent " + uuid.uuid4().bytes
    sent = await departments.kafka.send_and_wait(topics.DESIGNATION_REQUESTS, raw, key=key)
    value_b64 = base64.b64encode(raw).decode()
    (dead,) = await departments.collector.wait_for(topics.DEADLETTER, lambda e: e["data"].get("value_b64") == value_b64)
    assert dead["type"] == "credit.deadletter.recorded"
    assert dead["source"] == "platform/designation"
    assert dead["_key"] == subject["id"]
    data = dead["data"]
    assert data["service"] == "designation"
    assert data["topic"] == topics.DESIGNATION_REQUESTS
    assert (data["partition"], data["offset"]) == (sent.partition, sent.offset)
    assert data["key_b64"] == base64.b64encode(key).decode()
    assert data["error"].startswith("not JSON")

    after = designate("black", "taxation-black", subject)
    record = await departments.designated(after)
    assert record["subject"]["id"] == subject["id"]


async def test_empty_value_is_dead_lettered(departments: Departments) -> None:
    """A null value (a tombstone) on the requests topic is dead-lettered with its key."""
    key = f"tombstone-{uuid.uuid4().hex}".encode()
    sent = await departments.kafka.send_and_wait(topics.DESIGNATION_REQUESTS, None, key=key)
    key_b64 = base64.b64encode(key).decode()
    (dead,) = await departments.collector.wait_for(topics.DEADLETTER, lambda e: e["data"].get("key_b64") == key_b64)
    assert dead["data"].get("value_b64") is None
    assert (dead["data"]["partition"], dead["data"]["offset"]) == (sent.partition, sent.offset)
    assert dead["data"]["error"].startswith("empty value")


async def test_json_that_is_no_cloudevent_is_dead_lettered_and_answered(departments: Departments) -> None:
    """JSON that is not a CloudEvent but names its unit: dead-lettered, and the unit is answered
    `schema_violation` under the id it gave."""
    rid = new_id()
    doc = {"id": rid, "source": "unit/440000-SAT", "type": "credit.designation.designate", "data": {}}
    raw = orjson.dumps(doc)
    await departments.kafka.send_and_wait(topics.DESIGNATION_REQUESTS, raw, key=rid.encode())
    value_b64 = base64.b64encode(raw).decode()
    (dead,) = await departments.collector.wait_for(topics.DEADLETTER, lambda e: e["data"].get("value_b64") == value_b64)
    assert dead["data"]["error"].startswith("not a CloudEvent")
    answer = await departments.collector.answer(rid)
    assert answer["type"] == "credit.request.rejected"
    assert answer["_key"] == "440000-SAT"
    assert [e["code"] for e in answer["data"]["errors"]] == ["schema_violation"]


# ---------------------------------------------------------------------- idempotency


async def test_a_repeat_is_a_retry_and_another_body_under_the_same_id_is_a_duplicate_id(
    departments: Departments,
) -> None:
    """The same request again changes nothing and is not answered again; another request under an
    id already used is answered `duplicate_id` (it once got no answer at all), and the first
    request's answer, ledger row and designation stay as they were (contracts.md, Integrity rules)."""
    subject = company("Repeat Trading Co., Ltd.")
    event = designate("black", "taxation-black", subject)
    record = await departments.designated(event)
    await send(departments.kafka, event)  # a retry: the very same request
    other = {**event, "data": {**event["data"], "subject": {**subject, "name": "Another Name Co., Ltd."}}}
    await send(departments.kafka, other)  # same id, another body (same subject: same partition)

    def ours(e: dict[str, Any]) -> bool:
        return e["data"].get("request_id") == event["id"]

    conflict = (await departments.collector.wait_for(topics.FEEDBACK, ours, count=2))[1]
    assert conflict["type"] == "credit.request.rejected"
    assert conflict["data"]["errors"][0]["code"] == "duplicate_id"
    assert conflict["_key"] == "100000-SAT"
    await departments.collector.settled(topics.FEEDBACK)
    assert len(departments.collector.where(topics.FEEDBACK, ours)) == 2, "the retry was answered again"
    status = await departments.poll_request(event["id"])
    assert status["status"] == "accepted"
    assert (await departments.record(event["id"]))["subject"] == record["subject"]
    assert len(departments.events_of(event["id"], "credit.designation.created")) == 1
    await send(departments.kafka, other)  # sent again, the duplicate is answered again (once)
    again = (await departments.collector.wait_for(topics.FEEDBACK, ours, count=3))[2]
    assert again["data"]["errors"][0]["code"] == "duplicate_id"
    assert again["id"] != conflict["id"]


async def test_two_units_requests_under_one_id_are_two_requests(departments: Departments) -> None:
    """A request is known by (source, id) (contracts.md, Integrity rules): another unit's request
    under an id already used is its own request, answered on its merits, not `duplicate_id`
    (it was before). Where the contract makes the request's id the designation's, an id that
    names a designation already is `duplicate_id`. The ledger answers each unit its own."""
    a, b, c = "100000-SAT", "110000-SAT", "440000-SAT"
    first = designate("black", "taxation-black", company("Shared Id Alpha Co."), unit=a)
    await departments.designated(first)
    shared = first["id"]
    own = designate("black", "taxation-black", company("Shared Id Beta Co."), unit=b)
    await departments.designated(own)
    revoke = {**remove(own["id"], unit=b, subject=own["subject"]), "id": shared}  # B's request, A's id
    await send(departments.kafka, revoke)
    taken = {**designate("black", "taxation-black", company("Shared Id Gamma Co."), unit=c), "id": shared}
    await send(departments.kafka, taken)

    def answer_to(unit: str) -> Callable[[dict[str, Any]], bool]:
        return lambda e: e["data"].get("request_id") == shared and e["_key"] == unit

    (by_b,) = await departments.collector.wait_for(topics.FEEDBACK, answer_to(b))
    assert by_b["type"] == "credit.request.accepted", by_b["data"]
    assert by_b["data"]["result_id"] == own["id"]
    (by_c,) = await departments.collector.wait_for(topics.FEEDBACK, answer_to(c))
    assert [(e["code"], e["field"]) for e in by_c["data"]["errors"]] == [("duplicate_id", "id")]
    assert (await departments.record(own["id"]))["status"] == "removed"
    assert (await departments.record(shared))["status"] == "active"
    assert (await departments.record(shared))["subject"]["name"] == "Shared Id Alpha Co."
    await send(departments.kafka, first)  # A's retry: still a retry, not answered again
    await departments.collector.settled(topics.FEEDBACK)
    for unit in (a, b, c):
        assert len(departments.collector.where(topics.FEEDBACK, answer_to(unit))) == 1, unit

    http = departments.http  # the operator: names the unit when several used the id
    assert (await http.get(f"/v1/requests/{shared}")).status_code == 409
    for unit, status in ((a, "accepted"), (b, "accepted"), (c, "rejected")):
        mine = (await http.get(f"/v1/requests/{shared}", headers=auth_headers(f"unit:{unit}", ""))).json()
        assert (mine["unit"], mine["status"]) == (unit, status), mine
        theirs = (await http.get(f"/v1/requests/{shared}", params={"unit": unit})).json()
        assert theirs == mine
    assert (await http.get(f"/v1/requests/{shared}", headers=auth_headers("unit:110108-SAT", ""))).status_code == 404


# ---------------------------------------------------------------------- the platform's clock


async def test_a_backdated_request_happens_at_its_receipt_and_one_from_the_future_is_clock_skew(
    departments: Departments,
) -> None:
    """A request timed a year ago was taken at its word: `created_at`, `removed_at` and what
    `known_at` answers were the sender's to choose. Now they are the platform's receipt."""
    a_year_ago = datetime.now(UTC) - timedelta(days=365)
    event = designate("black", "taxation-black", company())
    event["time"] = a_year_ago.isoformat()
    await departments.designated(event)
    created = await departments.event("credit.designation.created", event["id"])
    assert abs(at(created["time"]) - datetime.now(UTC)) < timedelta(minutes=1), "timed by the sender's claim"
    revoke = remove(event["id"], subject=event["subject"])
    revoke["time"] = a_year_ago.isoformat()
    assert (await departments.submit(revoke)).status == "accepted"
    removed = await departments.event("credit.designation.removed", event["id"])
    assert abs(at(removed["data"]["record"]["removed_at"]) - datetime.now(UTC)) < timedelta(minutes=1)

    ahead = designate("black", "taxation-black", company())
    ahead["time"] = (datetime.now(UTC) + timedelta(minutes=10)).isoformat()
    assert (await departments.rejected(ahead)).fields == {("clock_skew", "time")}
    tomorrow = designate("black", "taxation-black", company(), decided_on=date.today() + timedelta(days=2))
    assert (await departments.rejected(tomorrow)).fields == {("invalid_date", "decision.decided_on")}
