"""The designation handlers through their table, over the in-memory store: designate, revoke and
amend accepted with their events, removals caused by other services' events, and every error code
the service answers. No Kafka, no PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from credit_common.contracts import types as T
from credit_common.contracts.registry import model_for
from credit_common.deps import StaticDeps
from credit_common.messaging.memory import Harness, Message
from credit_common.messaging.unit_of_work import Context
from credit_common.outcomes import Accepted, Rejected
from credit_common.reference.catalog import Catalog
from credit_common.reference.loader import load_files

from services.designation.handlers import DesignationHandlers, flush_batch
from services.designation.memory import MemoryStore
from tests.support.events import company
from tests.support.subjects import wrong_check

CATALOG = Catalog.of(load_files([Path(__file__).resolve().parents[3] / "deploy" / "catalog"]))
NOW = datetime(2026, 6, 1, 4, 0, tzinfo=UTC)
SAT = "unit/110108-SAT"  # county tax service: taxation
PROVINCIAL_SAT = "unit/110000-SAT"


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


@pytest.fixture
def designation(store: MemoryStore) -> Harness:
    handlers = DesignationHandlers(StaticDeps.of("designation", CATALOG), store_for=lambda ctx: store)

    async def flush(ctx: Context) -> None:
        await flush_batch(ctx.conn, ctx, store)

    return Harness(handlers.bus(), "designation", NOW, flush=flush)


def designate(list_: str = "black", standard: str = "taxation-black", **extra: Any) -> dict[str, Any]:
    return {
        "list": list_,
        "standard": standard,
        "subject": extra.pop("subject", None) or company(),
        "decision": {"document_no": "京税稽罚〔2026〕7号", "decided_on": "2026-05-20", "facts": "False invoices."},
        **extra,
    }


def revoke(designation_id: str) -> dict[str, Any]:
    return {
        "designation_id": designation_id,
        "reason": "revoked",
        "decision": {"document_no": "撤-1", "decided_on": "2026-05-30", "facts": "Decision annulled."},
    }


def amend(designation_id: str, **changes: Any) -> dict[str, Any]:
    return {"designation_id": designation_id, "changes": changes or {"facts": "Corrected."}, "reason": "Typo."}


async def test_designate_revoke_and_amend_are_accepted_with_their_events(
    designation: Harness, store: MemoryStore
) -> None:
    first = await designation.accepted(T.DESIGNATION_DESIGNATE, designate(), source=SAT)
    (created,) = designation.events(T.DESIGNATION_CREATED)
    assert created["record"]["designation_id"] == first
    assert created["record"]["unit"] == "110108-SAT"
    assert store.record(first).status == "active"
    await designation.accepted(T.DESIGNATION_AMEND, amend(first), source=SAT)
    (amended,) = designation.events(T.DESIGNATION_AMENDED)
    assert amended["record"]["decision"]["facts"] == "Corrected."
    await designation.accepted(T.DESIGNATION_REMOVE, revoke(first), source=SAT)
    (removed,) = designation.events(T.DESIGNATION_REMOVED)
    assert removed["reason"] == "revoked"
    assert store.record(first).status == "removed"
    assert {a[2] for a in store.audit} == {"revoke", "amend"}


async def test_the_subject_is_told_of_its_designation_its_rights_and_every_removal(
    designation: Harness, store: MemoryStore
) -> None:
    subject = company()
    red = await designation.accepted(
        T.DESIGNATION_DESIGNATE, designate("red", "taxation-red", subject=subject), source=PROVINCIAL_SAT
    )
    black = await designation.accepted(
        T.DESIGNATION_DESIGNATE, designate(subject=subject, effective_from="2026-06-01"), source=SAT
    )
    told = [p for p in designation.published if p.topic == "credit.subject.notices.v1"]
    assert {p.key for p in told} == {subject["id"]}
    first, second = designation.events(T.NOTICE_DESIGNATED)
    assert (first["designation_id"], first["list"], first["unit"]) == (red, "red", "110000-SAT")
    assert first["rights"] == {"objection": True, "restoration_from": None}  # a red entry: nothing to restore
    assert (second["designation_id"], second["standard"], second["subject"]) == (black, "taxation-black", subject)
    assert second["effective_from"] == "2026-06-01"
    assert second["effective_to"] == store.record(black).effective_to.isoformat()
    # taxation-black: restorable after 365 days on the list
    assert second["rights"] == {"objection": True, "restoration_from": "2027-06-01"}
    (superseded,) = designation.events(T.NOTICE_REMOVED)
    assert superseded == {"subject": subject, "designation_id": red, "reason": "superseded"}
    await designation.accepted(T.DESIGNATION_REMOVE, revoke(black), source=SAT)
    assert [n["reason"] for n in designation.events(T.NOTICE_REMOVED)] == ["superseded", "revoked"]
    for notice in told + [p for p in designation.published if p.topic == "credit.subject.notices.v1"][len(told) :]:
        model_for(notice.type).model_validate(notice.data)  # each as the contract gives it


async def test_a_black_designation_supersedes_the_red_entry(designation: Harness, store: MemoryStore) -> None:
    subject = company()
    red = await designation.accepted(
        T.DESIGNATION_DESIGNATE, designate("red", "taxation-red", subject=subject), source=PROVINCIAL_SAT
    )
    await designation.accepted(T.DESIGNATION_DESIGNATE, designate(subject=subject), source=SAT)
    (removed,) = designation.events(T.DESIGNATION_REMOVED)
    assert removed["record"]["designation_id"] == red
    assert removed["reason"] == "superseded"


async def test_an_upheld_objection_and_an_approved_restoration_remove_the_entry(
    designation: Harness, store: MemoryStore
) -> None:
    upheld = await designation.accepted(T.DESIGNATION_DESIGNATE, designate(), source=SAT)
    resolved = {
        "objection_id": "o-1",
        "designation_id": upheld,
        "unit": "110108-SAT",
        "outcome": "upheld",
        "reasoning": "Founded.",
        "decided_on": "2026-05-30",
    }
    await designation.send(T.OBJECTION_RESOLVED, resolved, source="platform/objection")
    assert store.record(upheld).removal_reason == "objection_upheld"

    old = designate(effective_from="2025-01-06")
    old["decision"]["decided_on"] = "2025-01-02"
    restored = await designation.accepted(
        T.DESIGNATION_DESIGNATE, old, source=SAT, time=datetime(2025, 1, 6, tzinfo=UTC)
    )
    approved = {
        "application_id": "a-1",
        "designation_id": restored,
        "unit": "110108-SAT",
        "outcome": "approved",
        "reasoning": "Taxes paid.",
        "decided_on": "2026-05-30",
    }
    await designation.send(T.RESTORATION_RESOLVED, approved, source="platform/objection")
    assert store.record(restored).removal_reason == "restored"


async def test_a_restoration_the_standard_does_not_allow_yet_is_answered_to_the_deciding_unit(
    designation: Harness, store: MemoryStore
) -> None:
    recent = await designation.accepted(T.DESIGNATION_DESIGNATE, designate(), source=SAT)
    approved = {
        "application_id": "a-2",
        "designation_id": recent,
        "unit": "110108-SAT",
        "outcome": "approved",
        "reasoning": "Taxes paid.",
        "decided_on": "2026-05-30",
    }
    await designation.send(T.RESTORATION_RESOLVED, approved, source="platform/objection", causationid="decide-1")
    (rejected,) = designation.events(T.REQUEST_REJECTED)
    assert rejected["request_id"] == "decide-1"
    assert [e["code"] for e in rejected["errors"]] == ["restoration_not_allowed"]
    assert store.record(recent).status == "active"


@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("unknown_unit", "unknown_unit"),
        ("unit_inactive", "unit_inactive"),
        ("unknown_standard", "unknown_standard"),
        ("standard_not_in_force", "standard_not_in_force"),
        ("list_mismatch", "list_mismatch"),
        ("field_not_authorised", "field_not_authorised"),
        ("level_too_low", "level_too_low"),
        ("invalid_identifier", "invalid_identifier"),
        ("invalid_checksum", "invalid_checksum"),
        ("invalid_period", "invalid_period"),
        ("period_too_long", "period_too_long"),
        ("already_designated", "already_designated"),
        ("conflicts_with_black_list", "conflicts_with_black_list"),
        ("unknown_designation", "unknown_designation"),
        ("not_designating_unit", "not_designating_unit"),
        ("not_active", "not_active"),
    ],
)
async def test_every_error_code_the_service_answers(designation: Harness, case: str, code: str) -> None:
    type_, data, source = T.DESIGNATION_DESIGNATE, designate(), SAT
    match case:
        case "unknown_unit":
            source = "unit/999999-NONE"
        case "unit_inactive":
            source = "unit/100000-CFDA"
        case "unknown_standard":
            data = designate(standard="no-such-standard")
        case "standard_not_in_force":
            data = designate("red", "e_commerce-red")
        case "list_mismatch":
            data = designate("red", "taxation-black")
        case "field_not_authorised":
            data = designate("black", "customs-black")
        case "level_too_low":
            data = designate("red", "taxation-red")
        case "invalid_identifier":
            data = designate(subject={**company(), "id": "NOT-A-CODE"})
        case "invalid_checksum":
            subject = company()
            data = designate(subject={**subject, "id": wrong_check(subject["id"])})
        case "invalid_period":
            data = designate(effective_from="2026-06-01", effective_to="2026-05-01")
        case "period_too_long":
            data = designate(
                effective_from="2026-06-01", effective_to=(date(2026, 6, 1) + timedelta(days=4000)).isoformat()
            )
        case "already_designated":
            subject = company()
            await designation.accepted(T.DESIGNATION_DESIGNATE, designate(subject=subject), source=SAT)
            data = designate(subject=subject)
        case "conflicts_with_black_list":
            subject = company()
            await designation.accepted(T.DESIGNATION_DESIGNATE, designate(subject=subject), source=SAT)
            data, source = designate("red", "taxation-red", subject=subject), PROVINCIAL_SAT
        case "unknown_designation":
            type_, data = T.DESIGNATION_REMOVE, revoke("no-such-designation")
        case "not_designating_unit":
            first = await designation.accepted(T.DESIGNATION_DESIGNATE, designate(), source=SAT)
            type_, data, source = T.DESIGNATION_REMOVE, revoke(first), "unit/440106-SAT"
        case "not_active":
            first = await designation.accepted(T.DESIGNATION_DESIGNATE, designate(), source=SAT)
            await designation.accepted(T.DESIGNATION_REMOVE, revoke(first), source=SAT)
            type_, data = T.DESIGNATION_AMEND, amend(first)
    assert code in await designation.rejected(type_, data, source=source)


async def test_a_designation_under_an_id_that_names_one_already_is_duplicate_id(
    designation: Harness, store: MemoryStore
) -> None:
    """Requests are known by (source, id) (contracts.md, Integrity rules), so another unit's
    designation under an id the bus has not seen from it reaches the rules; the contract makes
    the request's id the designation's, and one that names a designation already is
    `duplicate_id`, alone or in the same batch. Nothing is made for it."""
    first = await designation.accepted(T.DESIGNATION_DESIGNATE, designate(), source=SAT)
    again = designate(subject=company("Another Co."))
    assert await designation.rejected(T.DESIGNATION_DESIGNATE, again, source=PROVINCIAL_SAT, id=first) == [
        "duplicate_id"
    ]
    assert len(designation.events(T.DESIGNATION_CREATED)) == 1
    assert store.record(first).unit == "110108-SAT"
    shared = "0193a0b4-0000-7000-8000-00000000d1d1"
    one, two = await designation.batch(
        [
            Message(T.DESIGNATION_DESIGNATE, designate(), source=SAT, id=shared),
            Message(T.DESIGNATION_DESIGNATE, designate(), source=PROVINCIAL_SAT, id=shared),
        ]
    )
    assert isinstance(one, Accepted)
    assert isinstance(two, Rejected)
    assert [e.code for e in two.errors] == ["duplicate_id"]
    assert store.record(shared).unit == "110108-SAT"
