"""The sharing handlers through their table, over the in-memory store: every list-relevant event
becomes the list changes the contract promises, on both feeds, numbered without a gap. No Kafka,
no PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from credit_common.contracts import types as T
from credit_common.contracts.events import ListChange
from credit_common.deps import StaticDeps
from credit_common.messaging import topics
from credit_common.messaging.memory import Harness, Published
from credit_common.reference.catalog import Catalog
from credit_common.reference.loader import load_files

from services.sharing.handlers import SharingHandlers
from services.sharing.memory import MemoryStore
from tests.support.events import company, person, record

CATALOG = Catalog.of(load_files([Path(__file__).resolve().parents[3] / "deploy" / "catalog"]))
NOW = datetime(2026, 6, 1, 4, 0, tzinfo=UTC)
DESIGNATION = "platform/designation"


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


@pytest.fixture
def sharing(store: MemoryStore) -> Iterator[Harness]:
    handlers = SharingHandlers(StaticDeps.of("sharing", CATALOG), store_for=lambda ctx: store)
    harness = Harness(handlers.bus(), "sharing", NOW)
    yield harness
    # Every change any test here published is the contract's model exactly as the model writes it
    # (the service builds them without validating again: the feeds' documents are held to it here).
    changes = [p for p in harness.published if p.topic in (topics.LISTS_CHANGES, topics.LISTS_PUBLIC)]
    for p in changes:
        assert ListChange.model_validate(p.data).model_dump(mode="json", exclude_none=True) == p.data, p.data


def on(sharing: Harness, topic: str) -> list[Published]:
    return [p for p in sharing.published if p.topic == topic]


async def created(sharing: Harness, rec: dict[str, Any]) -> None:
    await sharing.send(T.DESIGNATION_CREATED, {"record": rec}, source=DESIGNATION, subject=rec["subject"]["id"])


def black(subject: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return record(subject, list_="black", effective_from=date(2026, 1, 5), days=1000, **extra)


async def test_a_designation_is_added_updated_and_removed_on_both_feeds(sharing: Harness) -> None:
    rec = black(company())
    await created(sharing, rec)
    opened = {
        "objection_id": "o-1",
        "designation_id": rec["designation_id"],
        "unit": rec["unit"],
        "objector": {"kind": "subject", "id": rec["subject"]["id"], "name": "x"},
        "grounds": "Grounds.",
        "due_on": "2026-06-15",
    }
    await sharing.send(T.OBJECTION_OPENED, opened, source="platform/objection")
    gone = {**rec, "status": "removed", "removal_reason": "revoked", "removed_at": NOW.isoformat()}
    await sharing.send(T.DESIGNATION_REMOVED, {"record": gone, "reason": "revoked"}, source=DESIGNATION)
    internal = on(sharing, topics.LISTS_CHANGES)
    assert [p.type for p in internal] == [T.LIST_ENTRY_ADDED, T.LIST_ENTRY_UPDATED, T.LIST_ENTRY_REMOVED]
    assert [p.data["seq"] for p in internal] == [1, 2, 3]
    assert internal[1].data["entry"]["under_objection"] is True
    assert internal[2].data["reason"] == "revoked"
    public = on(sharing, topics.LISTS_PUBLIC)
    assert [p.data["seq"] for p in public] == [1, 2, 3]
    assert all("facts" not in p.data["entry"]["decision"] for p in public)


async def test_a_natural_person_is_masked_on_the_public_feed_only(sharing: Harness) -> None:
    subject = person()
    await created(sharing, black(subject))
    (internal,) = on(sharing, topics.LISTS_CHANGES)
    (public,) = on(sharing, topics.LISTS_PUBLIC)
    assert internal.data["entry"]["subject"]["id"] == subject["id"]
    masked = public.data["entry"]["subject"]["id"]
    assert masked == subject["id"][:6] + "*" * 8 + subject["id"][-4:]
    assert public.key == masked
    assert subject["id"] not in str(public)


async def test_an_entry_of_a_standard_that_is_not_public_stays_internal(sharing: Harness) -> None:
    await created(sharing, black(company(), public=False))
    assert len(on(sharing, topics.LISTS_CHANGES)) == 1
    assert on(sharing, topics.LISTS_PUBLIC) == []


async def test_a_redelivered_event_changes_nothing(sharing: Harness, store: MemoryStore) -> None:
    rec = black(company())
    await created(sharing, rec)
    await created(sharing, rec)  # a second created of the same record: nothing shows
    assert len(on(sharing, topics.LISTS_CHANGES)) == 1
    assert store.last_seq == 1


async def test_the_warning_list_has_an_entry_per_stay(sharing: Harness) -> None:
    subject = company()
    listed = {"subject": subject, "fields": ["customs", "environment", "taxation"], "designation_ids": ["a", "b", "c"]}
    await sharing.send(T.WARNING_LISTED, {**listed, "since": "2026-05-01"}, source="platform/warning")
    await sharing.send(
        T.WARNING_CLEARED, {"subject": subject, "remaining_fields": ["customs"]}, source="platform/warning"
    )
    changes = on(sharing, topics.LISTS_CHANGES)
    assert [(p.type, p.data["list"]) for p in changes] == [
        (T.LIST_ENTRY_ADDED, "warning"),
        (T.LIST_ENTRY_REMOVED, "warning"),
    ]
    assert changes[0].data["entry"]["entry_id"] == changes[1].data["entry"]["entry_id"]
