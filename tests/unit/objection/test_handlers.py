"""The objection handlers through their table, over the in-memory store: objections and restoration
applications filed, routed to the designating unit and decided, and every error code the service
answers. No Kafka, no PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from credit_common.contracts import types as T
from credit_common.deps import StaticDeps
from credit_common.messaging.memory import Harness
from credit_common.reference.catalog import Catalog
from credit_common.reference.loader import load_files

from services.objection.handlers import ObjectionHandlers
from services.objection.memory import MemoryStore
from tests.support.events import company, record

CATALOG = Catalog.of(load_files([Path(__file__).resolve().parents[3] / "deploy" / "catalog"]))
NOW = datetime(2026, 6, 1, 4, 0, tzinfo=UTC)
DESIGNATION = "platform/designation"
SAT = "unit/110108-SAT"  # the designating unit of the entries below
PARENT = "unit/110000-SAT"
PORTAL = "portal"


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


@pytest.fixture
def objection(store: MemoryStore) -> Harness:
    handlers = ObjectionHandlers(StaticDeps.of("objection", CATALOG), store_for=lambda ctx: store)
    return Harness(handlers.bus(), "objection", NOW)


async def designated(
    objection: Harness, *, standard_field: str = "taxation", start: date = date(2025, 1, 6)
) -> dict[str, Any]:
    rec = record(company(), list_="black", field=standard_field, effective_from=start, days=1000)
    await objection.send(T.DESIGNATION_CREATED, {"record": rec}, source=DESIGNATION, subject=rec["subject"]["id"])
    return rec


def filing(rec: dict[str, Any], **objector: Any) -> dict[str, Any]:
    who = objector or {"kind": "subject", "id": rec["subject"]["id"], "name": rec["subject"]["name"]}
    return {"designation_id": rec["designation_id"], "objector": who, "grounds": "Not ours.", "evidence": ["E-1"]}


def decision(objection_id: str, outcome: str = "rejected") -> dict[str, Any]:
    return {"objection_id": objection_id, "outcome": outcome, "reasoning": "Examined.", "decided_on": "2026-05-30"}


def application(rec: dict[str, Any]) -> dict[str, Any]:
    return {
        "designation_id": rec["designation_id"],
        "applicant": {"id": rec["subject"]["id"], "name": rec["subject"]["name"]},
        "measures": [{"kind": "obligation_performed", "detail": "Taxes paid.", "completed_on": "2026-04-01"}],
        "evidence": ["receipt"],
    }


def restoration_decision(application_id: str, outcome: str = "approved") -> dict[str, Any]:
    return {"application_id": application_id, "outcome": outcome, "reasoning": "Done.", "decided_on": "2026-05-30"}


async def test_an_objection_is_routed_to_the_designating_unit_and_decided(objection: Harness) -> None:
    rec = await designated(objection)
    objection_id = await objection.accepted(T.OBJECTION_FILE, filing(rec), source=PORTAL)
    (opened,) = objection.events(T.OBJECTION_OPENED)
    assert opened["unit"] == rec["unit"]
    assert opened["objection_id"] == objection_id
    (inbox,) = [p for p in objection.published if p.type == T.INBOX_OBJECTION]
    assert inbox.key == rec["unit"]
    assert inbox.data["evidence"] == ["E-1"]
    await objection.accepted(T.OBJECTION_DECIDE, decision(objection_id, "upheld"), source=SAT)
    (resolved,) = objection.events(T.OBJECTION_RESOLVED)
    assert resolved["outcome"] == "upheld"
    assert resolved["decided_by"] == "110108-SAT"
    (told,) = [p for p in objection.published if p.type == T.NOTICE_OBJECTION_RESOLVED]
    assert (told.topic, told.key) == ("credit.subject.notices.v1", rec["subject"]["id"])
    assert told.data == {"subject": rec["subject"], "id": objection_id, "outcome": "upheld", "reasoning": "Examined."}


async def test_a_restoration_is_applied_for_and_approved(objection: Harness, store: MemoryStore) -> None:
    rec = await designated(objection)
    application_id = await objection.accepted(T.RESTORATION_APPLY, application(rec), source=PORTAL)
    (opened,) = objection.events(T.RESTORATION_OPENED)
    assert opened["application_id"] == application_id
    assert opened["due_on"] < opened["notify_by"]
    assert len(store.measures) == 1
    await objection.accepted(T.RESTORATION_DECIDE, restoration_decision(application_id), source=SAT)
    (resolved,) = objection.events(T.RESTORATION_RESOLVED)
    assert resolved["outcome"] == "approved"
    (told,) = objection.events(T.NOTICE_RESTORATION_RESOLVED)
    assert told == {"subject": rec["subject"], "id": application_id, "outcome": "approved", "reasoning": "Done."}


async def test_a_removed_entry_closes_what_waits_on_it(objection: Harness, store: MemoryStore) -> None:
    rec = await designated(objection)
    objection_id = await objection.accepted(T.OBJECTION_FILE, filing(rec), source=PORTAL)
    gone = {**rec, "status": "removed", "removal_reason": "revoked", "removed_at": NOW.isoformat()}
    await objection.send(T.DESIGNATION_REMOVED, {"record": gone, "reason": "revoked"}, source=DESIGNATION)
    assert store.objections[objection_id].status == "closed"
    assert await objection.rejected(T.OBJECTION_DECIDE, decision(objection_id), source=SAT) == ["not_active"]


@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("file_unknown_designation", "unknown_designation"),
        ("file_removed_entry", "not_active"),
        ("file_twice", "duplicate_objection"),
        ("file_as_unknown_unit", "unknown_unit"),
        ("file_as_inactive_unit", "unit_inactive"),
        ("file_for_another_subject", "not_subject"),
        ("decide_unknown", "unknown_objection"),
        ("decide_as_another_unit", "not_designating_unit"),
        ("apply_unknown_designation", "unknown_designation"),
        ("apply_not_restorable", "restoration_not_allowed"),
        ("apply_too_early", "restoration_too_early"),
        ("decide_unknown_application", "unknown_application"),
    ],
)
async def test_every_error_code_the_service_answers(objection: Harness, case: str, code: str) -> None:
    rec = await designated(objection)
    type_, data, source = T.OBJECTION_FILE, filing(rec), PORTAL
    match case:
        case "file_unknown_designation":
            data = {**filing(rec), "designation_id": "no-such-designation"}
        case "file_removed_entry":
            gone = {**rec, "status": "removed", "removal_reason": "revoked", "removed_at": NOW.isoformat()}
            await objection.send(T.DESIGNATION_REMOVED, {"record": gone, "reason": "revoked"}, source=DESIGNATION)
        case "file_twice":
            await objection.accepted(T.OBJECTION_FILE, filing(rec), source=PORTAL)
        case "file_as_unknown_unit":
            data, source = filing(rec, kind="unit", id="999999-NONE", name="Nobody"), "unit/999999-NONE"
        case "file_as_inactive_unit":
            data, source = filing(rec, kind="unit", id="100000-CFDA", name="CFDA"), "unit/100000-CFDA"
        case "file_for_another_subject":
            other = company()
            data = filing(rec, kind="subject", id=other["id"], name=other["name"])
        case "decide_unknown":
            type_, data, source = T.OBJECTION_DECIDE, decision("no-such-objection"), SAT
        case "decide_as_another_unit":
            objection_id = await objection.accepted(T.OBJECTION_FILE, filing(rec), source=PORTAL)
            type_, data, source = T.OBJECTION_DECIDE, decision(objection_id), "unit/110105-SAMR"
        case "apply_unknown_designation":
            type_, data = T.RESTORATION_APPLY, {**application(rec), "designation_id": "no-such-designation"}
        case "apply_not_restorable":
            court = await designated(objection, standard_field="court_enforcement")
            type_, data = T.RESTORATION_APPLY, application(court)
        case "apply_too_early":
            recent = await designated(objection, start=date(2026, 3, 2))
            type_, data = T.RESTORATION_APPLY, application(recent)
        case "decide_unknown_application":
            type_, data, source = T.RESTORATION_DECIDE, restoration_decision("no-such-application"), SAT
    assert code in await objection.rejected(type_, data, source=source)


async def test_an_escalated_objection_may_be_decided_by_the_parent(objection: Harness, store: MemoryStore) -> None:
    rec = await designated(objection)
    objection_id = await objection.accepted(T.OBJECTION_FILE, filing(rec), source=PORTAL)
    row = store.objections[objection_id]
    row.status, row.escalated_to = "overdue", "110000-SAT"  # as the overdue timer leaves it
    await objection.accepted(T.OBJECTION_DECIDE, decision(objection_id), source=PARENT)


async def test_after_a_rejection_the_same_objector_objects_again_only_with_new_evidence(objection: Harness) -> None:
    rec = await designated(objection)
    first = await objection.accepted(T.OBJECTION_FILE, filing(rec), source=PORTAL)
    await objection.accepted(T.OBJECTION_DECIDE, decision(first, "rejected"), source=SAT)
    opened = len(objection.events(T.OBJECTION_OPENED))
    assert await objection.rejected(T.OBJECTION_FILE, filing(rec), source=PORTAL) == ["duplicate_objection"]
    assert len(objection.events(T.OBJECTION_OPENED)) == opened  # refused: nothing suspended
    renewed = {**filing(rec), "evidence": ["E-1", "E-2 (new)"]}
    second = await objection.accepted(T.OBJECTION_FILE, renewed, source=PORTAL)
    assert second != first
    # A unit's objection is its own: the subject's rejection does not bar it.
    samr = filing(rec, kind="unit", id="110000-SAMR", name="AMR")
    await objection.accepted(T.OBJECTION_FILE, samr, source="unit/110000-SAMR")


async def test_an_objection_or_application_under_an_id_that_names_one_already_is_duplicate_id(
    objection: Harness, store: MemoryStore
) -> None:
    """The objection's and the application's ids are their requests' ids; a request from another
    source under an id that names one already (requests are known by source and id, so it is not
    a retry) is `duplicate_id`, and the first stays as it was."""
    rec = await designated(objection)
    objection_id = await objection.accepted(T.OBJECTION_FILE, filing(rec), source=PORTAL)
    by_unit = filing(rec, kind="unit", id="110000-SAT", name="Beijing Taxation")
    assert await objection.rejected(T.OBJECTION_FILE, by_unit, source=PARENT, id=objection_id) == ["duplicate_id"]
    assert len(objection.events(T.OBJECTION_OPENED)) == 1
    assert store.objections[objection_id].objector["kind"] == "subject"
    application_id = await objection.accepted(T.RESTORATION_APPLY, application(rec), source=PORTAL)
    assert await objection.rejected(T.RESTORATION_APPLY, application(rec), source=SAT, id=application_id) == [
        "duplicate_id"
    ]
    assert len(objection.events(T.RESTORATION_OPENED)) == 1
