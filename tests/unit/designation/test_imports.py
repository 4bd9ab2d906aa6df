"""Historical import through the designation handlers, over the in-memory store: each entry judged
by the designation rules as of its own dates, ended entries kept as history, refusals listed by
`ref`, and the same entry imported twice being one entry. No Kafka, no PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from credit_common.clock import start_of_local_day
from credit_common.contracts import types as T
from credit_common.deps import StaticDeps
from credit_common.messaging.memory import Harness
from credit_common.messaging.unit_of_work import Context
from credit_common.outcomes import Accepted, Rejected
from credit_common.reference.catalog import Catalog
from credit_common.reference.loader import load_files

from services.designation.handlers import DesignationHandlers, flush_batch
from services.designation.imports import import_id
from services.designation.memory import MemoryStore
from tests.support.events import company, person

CATALOG = Catalog.of(load_files([Path(__file__).resolve().parents[3] / "deploy" / "catalog"]))
NOW = datetime(2026, 6, 1, 4, 0, tzinfo=UTC)  # 2026-06-01 in Shanghai
SAT = "unit/110108-SAT"
SAMR = "unit/100000-SAMR"


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


@pytest.fixture
def designation(store: MemoryStore) -> Harness:
    handlers = DesignationHandlers(StaticDeps.of("designation", CATALOG), store_for=lambda ctx: store)

    async def flush(ctx: Context) -> None:
        await flush_batch(ctx.conn, ctx, store)

    return Harness(handlers.bus(), "designation", NOW, flush=flush)


def entry(ref: str, **over: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "ref": ref,
        "list": "black",
        "standard": "taxation-black",
        "subject": company(),
        "decision": {"document_no": f"京税稽罚〔2025〕{ref}号", "decided_on": "2025-03-01", "facts": "False invoices."},
        "effective_from": "2025-03-01",
        "effective_to": "2028-02-28",
    }
    doc.update(over)
    return doc


def ended(ref: str, **over: Any) -> dict[str, Any]:
    then: dict[str, Any] = {
        "decision": {"document_no": f"旧-{ref}", "decided_on": "2019-04-01", "facts": "Tax evasion."},
        "effective_from": "2019-04-01",
        "effective_to": "2022-03-30",
    }
    return entry(ref, **(then | over))


async def send(designation: Harness, *entries: dict[str, Any], source: str = SAT) -> Accepted:
    outcome = await designation.send(T.DESIGNATION_IMPORT, {"entries": list(entries)}, source=source)
    assert isinstance(outcome, Accepted), outcome
    return outcome


def refusals(outcome: Accepted) -> dict[str, list[str]]:
    assert outcome.detail is not None
    return {r["ref"]: [e["code"] for e in r["errors"]] for r in outcome.detail["refused"]}


async def test_active_ended_and_removed_entries_are_imported_as_they_stand(
    designation: Harness, store: MemoryStore
) -> None:
    removed = entry("r-3", removed_on="2025-09-10", removal_reason="revoked")
    outcome = await send(designation, entry("a-1"), ended("e-2"), removed)
    assert outcome.detail == {"imported": 3, "refused": []}
    active = store.record(import_id("110108-SAT", "a-1"))
    assert active.status == "active"
    assert active.removed_at is None
    history = store.record(import_id("110108-SAT", "e-2"))
    assert (history.status, history.removal_reason) == ("removed", "expired")
    assert history.removed_at == start_of_local_day(history.effective_to.replace(day=31))  # 2022-03-31
    gone = store.record(import_id("110108-SAT", "r-3"))
    assert (gone.status, gone.removal_reason) == ("removed", "revoked")
    assert gone.removed_at == start_of_local_day(gone.effective_from.replace(month=9, day=10))
    # Every entry is announced once, as it stands (created): an ended one is history downstream.
    created = designation.events(T.DESIGNATION_CREATED)
    assert sorted(e["record"]["status"] for e in created) == ["active", "removed", "removed"]
    assert designation.events(T.DESIGNATION_REMOVED) == []


async def test_each_entry_is_refused_on_its_own_with_its_codes(designation: Harness, store: MemoryStore) -> None:
    subject = company()
    outcome = await send(
        designation,
        entry("ok", subject=subject),
        entry("same-standard", subject=subject),  # meets "ok", earlier in the message
        entry("future", decision={"document_no": "x", "decided_on": "2026-06-02", "facts": "f"}),
        entry("late-removal", removed_on="2026-07-01", removal_reason="revoked"),
        entry("removed-before-start", removed_on="2024-01-01", removal_reason="revoked"),
        entry("too-long", effective_to="2029-03-01"),
        entry("red-by-county", list="red", standard="taxation-red", effective_to="2026-02-28"),
        entry("bad-id", subject={**company(), "id": "91110000000000000X"}),
    )
    assert refusals(outcome) == {
        "same-standard": ["already_designated"],
        "future": ["invalid_date"],
        "late-removal": ["invalid_date"],
        "removed-before-start": ["invalid_period"],
        "too-long": ["period_too_long"],
        "red-by-county": ["level_too_low"],
        "bad-id": ["invalid_checksum"],
    }
    assert outcome.detail is not None
    assert outcome.detail["imported"] == 1
    assert len(store.designations) == 1


async def test_history_is_not_held_against_todays_lists_nor_a_standard_repealed_since(
    designation: Harness, store: MemoryStore
) -> None:
    subject = person()
    await send(designation, entry("now", subject=subject))
    # The same subject under the same standard years ago: history, no conflict.
    outcome = await send(designation, ended("then", subject=subject))
    assert refusals(outcome) == {}
    # Under the CFDA standard repealed in 2018, by the national market regulator: history.
    cfda = ended(
        "cfda",
        standard="food_drug-black-cfda",
        decision={"document_no": "食药监-1", "decided_on": "2016-05-01", "facts": "Fake drugs."},
        effective_from="2016-05-01",
        effective_to="2018-04-30",
    )
    outcome = await send(designation, cfda, source=SAMR)
    assert refusals(outcome) == {}
    assert store.record(import_id("100000-SAMR", "cfda")).status == "removed"
    # Still in force today under a repealed standard: refused as a designation would be.
    current = entry("cfda-now", standard="food_drug-black-cfda", effective_to="2027-01-01")
    assert refusals(await send(designation, current, source=SAMR)) == {"cfda-now": ["standard_not_in_force"]}


async def test_an_active_black_entry_supersedes_the_subjects_red_as_a_designation_does(
    designation: Harness, store: MemoryStore
) -> None:
    subject = company()
    red = entry(
        "red",
        list="red",
        standard="taxation-red",
        subject=subject,
        effective_from="2026-01-01",
        effective_to="2026-12-31",
    )
    await send(designation, red, source="unit/110000-SAT")
    await send(designation, entry("black", subject=subject))
    (removed,) = designation.events(T.DESIGNATION_REMOVED)
    assert removed["reason"] == "superseded"
    assert store.record(import_id("110000-SAT", "red")).status == "removed"


async def test_the_same_ref_imported_again_is_one_entry(designation: Harness, store: MemoryStore) -> None:
    first = await send(designation, entry("a-1"), entry("a-1"))
    assert refusals(first) == {"a-1": ["duplicate_id"]}
    again = await send(designation, entry("a-1"))
    assert refusals(again) == {"a-1": ["duplicate_id"]}
    assert len(store.designations) == 1
    # Another unit's ref of the same spelling is another entry.
    assert refusals(await send(designation, entry("a-1"), source="unit/110000-SAT")) == {}


async def test_an_unknown_unit_is_refused_for_the_whole_message(designation: Harness) -> None:
    outcome = await designation.send(T.DESIGNATION_IMPORT, {"entries": [entry("x")]}, source="unit/999999-NONE")
    assert isinstance(outcome, Rejected)
    assert [e.code for e in outcome.errors] == ["unknown_unit"]
