"""The warning handlers through their table, over the in-memory store: the warning list from
key-scrutiny entries in three key fields, transfer recommendations from serious conduct, and every
error code a conduct report is answered with. No Kafka, no PostgreSQL."""

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

from services.warning.handlers import WarningHandlers
from services.warning.memory import MemoryStore
from tests.support.events import company, record
from tests.support.subjects import wrong_check

CATALOG = Catalog.of(load_files([Path(__file__).resolve().parents[3] / "deploy" / "catalog"]))
NOW = datetime(2026, 6, 1, 4, 0, tzinfo=UTC)
DESIGNATION = "platform/designation"
SAT = "unit/110108-SAT"


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


@pytest.fixture
def warning(store: MemoryStore) -> Harness:
    handlers = WarningHandlers(
        StaticDeps.of("warning", CATALOG), threshold=3, due_working_days=5, store_for=lambda ctx: store
    )
    return Harness(handlers.bus(), "warning", NOW)


def key_scrutiny(subject: dict[str, Any], field: str) -> dict[str, Any]:
    return record(subject, list_="key_scrutiny", field=field, effective_from=date(2026, 1, 5), days=700)


async def designate(warning: Harness, rec: dict[str, Any]) -> None:
    await warning.send(T.DESIGNATION_CREATED, {"record": rec}, source=DESIGNATION, subject=rec["subject"]["id"])


def conduct(subject: dict[str, Any], field: str = "taxation", **extra: Any) -> dict[str, Any]:
    return {
        "subject": subject,
        "field": field,
        "serious": True,
        "occurred_on": "2026-05-20",
        "document_no": "TAX-2026-7",
        "description": "False invoices again.",
        **extra,
    }


async def test_three_key_fields_list_the_subject_and_fewer_clear_it(warning: Harness, store: MemoryStore) -> None:
    subject = company()
    entries = [key_scrutiny(subject, f) for f in ("taxation", "customs", "environment")]
    for rec in entries[:2]:
        await designate(warning, rec)
    assert warning.events(T.WARNING_LISTED) == []
    await designate(warning, entries[2])
    (listed,) = warning.events(T.WARNING_LISTED)
    assert sorted(listed["fields"]) == ["customs", "environment", "taxation"]
    assert store.warnings[subject["id"]].status == "listed"
    gone = {**entries[0], "status": "removed", "removal_reason": "revoked", "removed_at": NOW.isoformat()}
    await warning.send(T.DESIGNATION_REMOVED, {"record": gone, "reason": "revoked"}, source=DESIGNATION)
    (cleared,) = warning.events(T.WARNING_CLEARED)
    assert sorted(cleared["remaining_fields"]) == ["customs", "environment"]


async def test_serious_conduct_recommends_a_transfer_to_the_designating_unit(warning: Harness) -> None:
    subject = company()
    rec = key_scrutiny(subject, "taxation")
    await designate(warning, rec)
    report_id = await warning.accepted(T.CONDUCT_REPORT, conduct(subject), source=SAT)
    (recommended,) = warning.events(T.TRANSFER_RECOMMENDED)
    assert recommended["designation_id"] == rec["designation_id"]
    assert recommended["conduct_report_id"] == report_id
    assert recommended["unit"] == rec["unit"]
    (inbox,) = [p for p in warning.published if p.type == T.INBOX_TRANSFER]
    assert inbox.key == rec["unit"]
    # A second report while the recommendation is pending recommends nothing more.
    await warning.accepted(T.CONDUCT_REPORT, conduct(subject), source=SAT)
    assert len(warning.events(T.TRANSFER_RECOMMENDED)) == 1


async def test_conduct_that_is_not_serious_recommends_nothing(warning: Harness) -> None:
    subject = company()
    await designate(warning, key_scrutiny(subject, "taxation"))
    await warning.accepted(T.CONDUCT_REPORT, conduct(subject, serious=False), source=SAT)
    assert warning.events(T.TRANSFER_RECOMMENDED) == []


@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("unknown_unit", "unknown_unit"),
        ("unit_inactive", "unit_inactive"),
        ("no_such_field", "unknown_field"),
        ("field_of_another_unit", "field_not_authorised"),
        ("not_an_identifier", "invalid_identifier"),
        ("check_character", "invalid_checksum"),
    ],
)
async def test_every_error_code_a_conduct_report_is_answered_with(warning: Harness, case: str, code: str) -> None:
    subject = company()
    source, data = SAT, conduct(subject)
    match case:
        case "unknown_unit":
            source = "unit/999999-NONE"
        case "unit_inactive":
            source = "unit/100000-CFDA"
        case "no_such_field":
            data = conduct(subject, field="astrology")
        case "field_of_another_unit":
            data = conduct(subject, field="customs")
        case "not_an_identifier":
            data = conduct({**subject, "id": "NOT-A-CODE"})
        case "check_character":
            data = conduct({**subject, "id": wrong_check(subject["id"])})
    assert code in await warning.rejected(T.CONDUCT_REPORT, data, source=source)


async def test_a_conduct_report_under_an_id_that_names_one_already_is_duplicate_id(
    warning: Harness, store: MemoryStore
) -> None:
    """A conduct report's id names it (and the transfer it recommends derives from it): another
    source's report under that id (not a retry: requests are known by source and id) is
    `duplicate_id`, and recommends nothing."""
    subject = company()
    await designate(warning, key_scrutiny(subject, "taxation"))
    report_id = await warning.accepted(T.CONDUCT_REPORT, conduct(subject), source=SAT)
    assert len(warning.events(T.TRANSFER_RECOMMENDED)) == 1
    again = conduct(subject, document_no="TAX-2026-8")
    assert await warning.rejected(T.CONDUCT_REPORT, again, source="unit/110000-SAT", id=report_id) == ["duplicate_id"]
    assert len(warning.events(T.TRANSFER_RECOMMENDED)) == 1
    assert store.reports[report_id][6]["document_no"] == "TAX-2026-7"
