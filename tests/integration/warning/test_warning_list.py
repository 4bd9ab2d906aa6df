"""The Big Data Warning List through the real broker and database: designation events in, warning
events out (ids derived from the causing event, times from it), and the HTTP reads."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from credit_common.outcomes import derived_id
from credit_common.settings import Settings

from tests.support.collector import Collector
from tests.support.events import company, created, person, publish, removed
from tests.support.processes import ServiceProcess

from .conftest import (
    ScratchFields,
    amended,
    caught_up,
    new_field_code,
    record,
    wait_warning_events,
    warning_events,
)

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def assert_platform_event(ev: dict[str, Any], cause: dict[str, Any], type_: str, k: int = 0) -> None:
    """Published by the warning service, keyed and stamped by subject, its id and time derived
    from the event that caused it."""
    assert ev["type"] == type_
    assert ev["source"] == "platform/warning"
    assert ev["_key"] == ev["subject"] == ev["data"]["subject"]["id"]
    assert ev["id"] == derived_id(cause["id"], "warning", type_, k)
    assert ev["causationid"] == cause["id"]
    assert datetime.fromisoformat(ev["time"]) == datetime.fromisoformat(cause["time"])


@pytest.mark.parametrize("kind", ["legal_person", "natural_person"])
async def test_listed_updated_and_cleared_as_key_fields_come_and_go(
    warning: ServiceProcess, kafka: AIOKafkaProducer, collector: Collector, http: httpx.AsyncClient, kind: str
) -> None:
    subject = company() if kind == "legal_person" else person()
    sid = subject["id"]
    tax = record(subject, "taxation")
    customs = record(subject, "customs", unit="100000-GAC")
    shop = record(subject, "e_commerce", unit="100000-SAMR")  # not a key field
    env = record(subject, "environment", unit="100000-MEE")
    for n, rec in enumerate((tax, customs, shop)):
        await publish(kafka, created(rec, at(n)))
    third_key = created(env, at(10))
    await publish(kafka, third_key)

    (listed,) = await wait_warning_events(collector, sid, 1)
    assert_platform_event(listed, third_key, "credit.warning.listed")
    ids = sorted(r["designation_id"] for r in (tax, customs, env))
    assert listed["data"] == {
        "subject": subject,
        "fields": ["customs", "environment", "taxation"],
        "designation_ids": ids,
        "since": "2026-11-20",
    }

    body = (await http.get(f"/v1/warnings/{sid.lower()}")).json()
    assert body["status"] == "listed"
    assert body["fields"] == ["customs", "environment", "taxation"]
    assert body["designation_ids"] == ids
    assert body["since"] == "2026-11-20"
    assert [e["designation_id"] for e in body["entries"]] == ids
    assert {e["designation_id"]: e for e in body["entries"]}[tax["designation_id"]] == tax
    assert [e["designation_id"] for e in body["other_key_scrutiny_entries"]] == [shop["designation_id"]]

    # A fourth key field, the next day: updated, `since` kept.
    finance = record(subject, "finance", unit="100000-PBOC")
    fourth = created(finance, at(24 * 60))
    await publish(kafka, fourth)
    _, updated = await wait_warning_events(collector, sid, 2)
    assert_platform_event(updated, fourth, "credit.warning.updated")
    assert updated["data"]["fields"] == ["customs", "environment", "finance", "taxation"]
    assert updated["data"]["designation_ids"] == sorted([*ids, finance["designation_id"]])
    assert updated["data"]["since"] == "2026-11-20"

    # An amendment changes no field and no entry: nothing. A revocation back to three: updated.
    await publish(kafka, amended({**tax, "decision": {**tax["decision"], "facts": "Corrected."}}, at(24 * 60 + 1)))
    revoked = removed(finance, "revoked", at(24 * 60 + 2))
    await publish(kafka, revoked)
    *_, back = await wait_warning_events(collector, sid, 3)
    assert_platform_event(back, revoked, "credit.warning.updated")
    assert back["data"]["designation_ids"] == ids

    # Expiry of one: below the threshold, cleared with the key fields that remain.
    expired = removed(customs, "expired", at(2 * 24 * 60))
    await publish(kafka, expired)
    *_, cleared = await wait_warning_events(collector, sid, 4)
    assert_platform_event(cleared, expired, "credit.warning.cleared")
    assert cleared["data"] == {"subject": subject, "remaining_fields": ["environment", "taxation"]}
    assert len(warning_events(collector, sid)) == 4

    body = (await http.get(f"/v1/warnings/{sid}")).json()
    assert body["status"] == "cleared"
    assert body["remaining_fields"] == ["environment", "taxation"]
    assert body["entries"] == []
    assert body["since"] == "2026-11-20"


async def test_a_key_field_ceasing_to_be_key_clears_and_becoming_key_again_lists(
    stack: Settings, warning: ServiceProcess, kafka: AIOKafkaProducer, collector: Collector
) -> None:
    fields = ScratchFields(stack.kafka_bootstrap_servers)
    codes = [new_field_code() for _ in range(3)]
    try:
        for code in codes:
            await fields.publish(code, key_field=True)
        await caught_up(stack)
        subject = company()
        sid = subject["id"]
        for n, code in enumerate(codes):
            await publish(kafka, created(record(subject, code), at(n)))
        (listed,) = await wait_warning_events(collector, sid, 1)
        assert listed["type"] == "credit.warning.listed"
        assert listed["data"]["fields"] == sorted(codes)

        await fields.publish(codes[1], key_field=False)
        _, cleared = await wait_warning_events(collector, sid, 2)
        assert cleared["type"] == "credit.warning.cleared"
        assert cleared["data"]["remaining_fields"] == sorted([codes[0], codes[2]])
        # Caused by the reference record: its time, an id derived from it.
        assert cleared["causationid"] != listed["causationid"]
        assert cleared["id"] == derived_id(cleared["causationid"], "warning", "credit.warning.cleared", 0)

        await fields.publish(codes[1], key_field=True)
        *_, again = await wait_warning_events(collector, sid, 3)
        assert again["type"] == "credit.warning.listed"
        assert again["data"]["fields"] == sorted(codes)
        assert date.fromisoformat(again["data"]["since"]) >= date(2026, 11, 25)  # relisted: a new since
    finally:
        await fields.tombstone()


async def test_warnings_are_paged_with_an_opaque_cursor(
    warning: ServiceProcess, kafka: AIOKafkaProducer, collector: Collector, http: httpx.AsyncClient
) -> None:
    mine = []
    for _ in range(3):
        subject = company()
        mine.append(subject["id"])
        for n, f in enumerate(("taxation", "customs", "environment")):
            await publish(kafka, created(record(subject, f), at(n)))
    for sid in mine:
        await wait_warning_events(collector, sid, 1)

    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 2 if pages < 3 else 1000}
        if cursor:
            params["cursor"] = cursor
        page = (await http.get("/v1/warnings", params=params)).json()
        pages += 1
        seen.extend(w["subject"]["id"] for w in page["warnings"])
        assert all(w["status"] == "listed" for w in page["warnings"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(seen)
    assert len(seen) == len(set(seen))
    assert set(mine) <= set(seen)


async def test_http_errors_are_problem_details(warning: ServiceProcess, http: httpx.AsyncClient) -> None:
    missing = await http.get(f"/v1/warnings/{company()['id']}")
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("application/problem+json")
    assert missing.json()["status"] == 404
    bad_cursor = await http.get("/v1/warnings", params={"cursor": "not-a-cursor"})
    assert bad_cursor.status_code == 400
    assert bad_cursor.headers["content-type"].startswith("application/problem+json")
    other_filters = (await http.get("/v1/warnings", params={"limit": 1})).json()["next_cursor"]
    if other_filters:
        wrong = await http.get("/v1/warnings", params={"cursor": other_filters, "status": "cleared"})
        assert wrong.status_code == 400
    for params in ({"limit": 0}, {"status": "pending"}):
        bad = await http.get("/v1/warnings", params=params)
        assert bad.status_code == 422
        assert bad.headers["content-type"].startswith("application/problem+json")
    bad_status = await http.get("/v1/transfers", params={"status": "forgotten"})
    assert bad_status.status_code == 422
    assert bad_status.headers["content-type"].startswith("application/problem+json")
