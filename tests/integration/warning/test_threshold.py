"""The threshold is configuration: a start with another value judges every subject again, once.

Run against the real database in a schema of its own (with the service's migrations), calling the
start-up step directly: a whole warning process with another threshold would re-judge the shared
`warning` schema of the other tests."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import asyncpg
import orjson
import pytest
from credit_common.clock import ManualClock
from credit_common.reference.catalog import Catalog
from credit_common.reference.loader import load_files

from services.warning.handlers import WarningHandlers
from tests.support.subjects import new_uscc

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
CATALOG = Catalog.of(load_files([ROOT / "deploy" / "catalog"]))
MIGRATIONS = ROOT / "services" / "warning" / "migrations"
AT = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)


def handlers(threshold: int) -> WarningHandlers:
    runtime = SimpleNamespace(name="warning", reference=SimpleNamespace(catalog=CATALOG))
    return WarningHandlers(cast(Any, runtime), threshold=threshold, due_working_days=5)


async def add_entries(pool: asyncpg.Pool, subject_id: str, fields: list[str]) -> list[str]:
    ids = []
    for n, field in enumerate(fields):
        designation_id = f"{subject_id}-{n}"
        # The subject as a designation record carries it: the events judged from it are validated
        # against the contract on the way out.
        subject = {"kind": "legal_person", "scheme": "uscc", "id": subject_id, "name": "Co."}
        rec = {"designation_id": designation_id, "field": field, "subject": subject}
        await pool.execute(
            "INSERT INTO entries (designation_id, subject_id, field, unit, record, updated_at)"
            " VALUES ($1, $2, $3, '100000-SAT', $4, $5)",
            designation_id,
            subject_id,
            field,
            rec,
            AT,
        )
        ids.append(designation_id)
    return ids


async def drain(pool: asyncpg.Pool) -> list[dict[str, Any]]:
    rows = await pool.fetch("DELETE FROM outbox RETURNING id, topic, value")
    return [orjson.loads(r["value"]) for r in sorted(rows, key=lambda r: r["id"])]


async def test_a_new_threshold_rejudges_every_subject_once(schema_factory: Callable[..., Any]) -> None:
    pool: asyncpg.Pool = await schema_factory(migrations=MIGRATIONS)
    clock = ManualClock(AT)
    two, three = new_uscc(), new_uscc()
    await add_entries(pool, two, ["taxation", "customs", "e_commerce"])
    ids = await add_entries(pool, three, ["taxation", "customs", "environment"])
    await pool.execute(
        "INSERT INTO warnings (subject_id, subject, status, fields, designation_ids, since, listed_at,"
        " updated_at, last_event_id) VALUES ($1, $2, 'listed', $3, $4, '2026-11-01', $5, $5, 'e0')",
        three,
        {"id": three, "name": "Co."},
        ["customs", "environment", "taxation"],
        ids,
        AT,
    )

    # First start, the default threshold: recorded, nothing judged again.
    assert await handlers(3).rejudge_on_threshold_change(pool, clock, "warning") == 0
    assert await pool.fetchval("SELECT value FROM config WHERE name = 'warning_threshold'") == "3"

    # Threshold 2: the subject with two key fields is listed; the other's listing is unchanged.
    assert await handlers(2).rejudge_on_threshold_change(pool, clock, "warning") == 1
    (listed,) = await drain(pool)
    assert listed["type"] == "credit.warning.listed"
    assert listed["subject"] == two
    assert datetime.fromisoformat(listed["time"]) == AT
    assert listed["data"]["fields"] == ["customs", "taxation"]
    assert listed["data"]["since"] == "2026-11-25"
    # Started again with the same value: nothing.
    assert await handlers(2).rejudge_on_threshold_change(pool, clock, "warning") == 0

    # Back to 3: cleared again.
    assert await handlers(3).rejudge_on_threshold_change(pool, clock, "warning") == 1
    (cleared,) = await drain(pool)
    assert cleared["type"] == "credit.warning.cleared"
    assert cleared["data"]["remaining_fields"] == ["customs", "taxation"]
    assert await pool.fetchval("SELECT status FROM warnings WHERE subject_id = $1", three) == "listed"
    assert await pool.fetchval("SELECT status FROM warnings WHERE subject_id = $1", two) == "cleared"
