"""The cases handlers through their table, over the in-memory store: every request type accepted,
every error code the service answers, the events it publishes. No Kafka, no PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from credit_common.contracts import types as T
from credit_common.deps import StaticDeps
from credit_common.messaging.memory import Harness, Message
from credit_common.outcomes import Accepted, Rejected
from credit_common.reference.catalog import Catalog
from credit_common.reference.loader import load_files

from services.cases.handlers import CasesHandlers
from services.cases.memory import MemoryStore
from tests.support.events import company, record

CATALOG = Catalog.of(load_files([Path(__file__).resolve().parents[3] / "deploy" / "catalog"]))
NOW = datetime(2026, 6, 1, 4, 0, tzinfo=UTC)
DESIGNATION = "platform/designation"
OBJECTION = "platform/objection"
CUSTOMS = "unit/440000-GAC"  # implements tax-black-customs-inspection (customs)


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


@pytest.fixture
def cases(store: MemoryStore) -> Harness:
    handlers = CasesHandlers(StaticDeps.of("cases", CATALOG), store_for=lambda ctx: store)
    return Harness(handlers.bus(), "cases", NOW)


def black(**extra: Any) -> dict[str, Any]:
    return record(
        company(),
        list_="black",
        field="taxation",
        unit="110108-SAT",
        effective_from=date(2026, 1, 5),
        days=1000,
        **extra,
    )


def report(designation_id: str, measure: str = "tax-black-customs-inspection", **extra: Any) -> dict[str, Any]:
    return {
        "designation_id": designation_id,
        "measure": measure,
        "applied_on": "2026-03-01",
        "outcome": "Stricter inspection applied.",
        "description": "Imports held for inspection.",
        "typical": False,
        "media": [],
        **extra,
    }


def objection_opened(designation_id: str, objection_id: str) -> dict[str, Any]:
    return {
        "objection_id": objection_id,
        "designation_id": designation_id,
        "unit": "110108-SAT",
        "objector": {"kind": "subject", "id": "x", "name": "x"},
        "grounds": "Grounds.",
        "due_on": "2026-06-15",
    }


async def designated(cases: Harness, rec: dict[str, Any]) -> str:
    await cases.send(T.DESIGNATION_CREATED, {"record": rec}, source=DESIGNATION, subject=rec["subject"]["id"])
    return str(rec["designation_id"])


async def test_a_report_on_an_active_entry_is_recorded_and_published(cases: Harness, store: MemoryStore) -> None:
    rec = black()
    did = await designated(cases, rec)
    case_id = await cases.accepted(T.ENFORCEMENT_REPORT, report(did, typical=True), source=CUSTOMS)
    (published,) = cases.events(T.CASE_RECORDED)
    assert published["case_id"] == case_id
    assert published["designation_id"] == did
    assert published["measure_kind"] == "punishment"
    assert published["province"] == "440000"
    assert published["typical"] is True
    assert store.cases[case_id]["measure"] == "tax-black-customs-inspection"
    assert store.designations_made[(2026, "110000", "black")] == 1


async def test_a_repeated_designation_event_counts_once(cases: Harness, store: MemoryStore) -> None:
    rec = black()
    await designated(cases, rec)
    await designated(cases, rec)
    assert sum(store.designations_made.values()) == 1


@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("unknown_unit", "unknown_unit"),
        ("unit_inactive", "unit_inactive"),
        ("unknown_measure", "unknown_measure"),
        ("unknown_designation", "unknown_designation"),
        ("applied_before_listing", "designation_not_active_on_date"),
        ("applied_in_the_future", "designation_not_active_on_date"),
        ("red_measure_on_black", "measure_not_applicable"),
        ("not_implementing", "not_implementing_unit"),
        ("under_objection", "suspended_under_objection"),
    ],
)
async def test_every_error_code_the_service_answers(cases: Harness, case: str, code: str) -> None:
    did = await designated(cases, black())
    source, data = CUSTOMS, report(did)
    match case:
        case "unknown_unit":
            source = "unit/999999-NONE"
        case "unit_inactive":
            source = "unit/100000-CFDA"
        case "unknown_measure":
            data = report(did, measure="no-such-measure")
        case "unknown_designation":
            data = report("no-such-designation")
        case "applied_before_listing":
            data = report(did, applied_on="2025-12-01")
        case "applied_in_the_future":
            data = report(did, applied_on=(NOW.date() + timedelta(days=3)).isoformat())
        case "red_measure_on_black":
            data = report(did, measure="tax-red-fewer-customs-inspections")
        case "not_implementing":
            source = "unit/110108-SAT"
        case "under_objection":
            opened = objection_opened(did, "o-1")
            await cases.send(T.OBJECTION_OPENED, opened, source=OBJECTION)
    assert code in await cases.rejected(T.ENFORCEMENT_REPORT, data, source=source)
    assert cases.events(T.CASE_RECORDED) == []


async def test_a_resolved_objection_lifts_the_suspension(cases: Harness) -> None:
    did = await designated(cases, black())
    opened = objection_opened(did, "o-1")
    await cases.send(T.OBJECTION_OPENED, opened, source=OBJECTION)
    assert await cases.rejected(T.ENFORCEMENT_REPORT, report(did), source=CUSTOMS) == ["suspended_under_objection"]
    resolved = {
        "objection_id": "o-1",
        "designation_id": did,
        "unit": "110108-SAT",
        "outcome": "rejected",
        "reasoning": "Unfounded.",
        "decided_on": "2026-05-20",
    }
    await cases.send(T.OBJECTION_RESOLVED, resolved, source=OBJECTION)
    await cases.accepted(T.ENFORCEMENT_REPORT, report(did), source=CUSTOMS)


async def test_a_removed_entry_closes_its_objections(cases: Harness, store: MemoryStore) -> None:
    rec = black()
    did = await designated(cases, rec)
    opened = objection_opened(did, "o-2")
    await cases.send(T.OBJECTION_OPENED, opened, source=OBJECTION)
    gone = {**rec, "status": "removed", "removal_reason": "revoked", "removed_at": NOW.isoformat()}
    await cases.send(T.DESIGNATION_REMOVED, {"record": gone, "reason": "revoked"}, source=DESIGNATION)
    assert store.objections["o-2"][2] == "closed"
    assert store.objections["o-2"][5] == "entry_removed"


async def test_a_report_under_an_id_that_names_a_case_already_is_duplicate_id(
    cases: Harness, store: MemoryStore
) -> None:
    """A report's id is its case's. The bus tells a unit's retry by its inbox; what reaches the
    handler under an id that names a case (another source's request: requests are known by
    source and id) is `duplicate_id`, alone or in the same batch, and counts nothing."""
    did = await designated(cases, black())
    case_id = await cases.accepted(T.ENFORCEMENT_REPORT, report(did), source=CUSTOMS)
    assert await cases.rejected(T.ENFORCEMENT_REPORT, report(did), source=CUSTOMS, id=case_id) == ["duplicate_id"]
    shared = "0193a0b4-0000-7000-8000-00000000ca5e"
    one, two = await cases.batch(
        [
            Message(T.ENFORCEMENT_REPORT, report(did), source=CUSTOMS, id=shared),
            Message(T.ENFORCEMENT_REPORT, report(did), source=CUSTOMS, id=shared),
        ]
    )
    assert isinstance(one, Accepted)
    assert isinstance(two, Rejected)
    assert [e.code for e in two.errors] == ["duplicate_id"]
    assert len(cases.events(T.CASE_RECORDED)) == 2
    assert len(store.cases) == 2
