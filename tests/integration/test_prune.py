"""Pruning after retention, against the real database: inbox rows of topics that expire go a day
after their topic's retention (no redelivery can need them), rows of topics that never expire
stay (a replay from the beginning still needs them), and the designation service's ledger drops
answered requests once their answers have left the feedback topic, never a pending one."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import asyncpg
from credit_common.db.prune import CHUNK, RETAINED, prune_inbox, prune_ledger
from credit_common.messaging import topics
from credit_common.settings import Settings

DESIGNATION_MIGRATIONS = Path(__file__).resolve().parents[2] / "services" / "designation" / "migrations"


async def inbox_rows(pool: asyncpg.Pool, rows: list[tuple[str, str, int]]) -> None:
    """(event id, topic, age in days)."""
    await pool.executemany(
        "INSERT INTO inbox (event_id, topic, processed_at) VALUES ($1, $2, now() - make_interval(days => $3))", rows
    )


async def test_inbox_rows_go_a_day_after_their_topics_retention_and_never_expiring_ones_stay(
    stack: Settings, schema_factory: Callable
) -> None:
    pool: asyncpg.Pool = await schema_factory()
    assert RETAINED[topics.DESIGNATION_REQUESTS] == timedelta(days=30)
    assert topics.DESIGNATION_EVENTS not in RETAINED
    await inbox_rows(
        pool,
        [
            ("old-request", topics.DESIGNATION_REQUESTS, 32),
            ("recent-request", topics.DESIGNATION_REQUESTS, 30),  # inside the day of grace
            ("old-answer", topics.FEEDBACK, 40),
            ("old-notice", topics.SUBJECT_NOTICES, 40),  # kept a year
            ("ancient-event", topics.DESIGNATION_EVENTS, 4000),  # never expires: a replay needs it
        ],
    )
    assert await prune_inbox(pool) == 2
    left = {r["event_id"] for r in await pool.fetch("SELECT event_id FROM inbox")}
    assert left == {"recent-request", "old-notice", "ancient-event"}
    assert await prune_inbox(pool) == 0
    await pool.close()


async def test_a_long_history_is_pruned_in_chunks(stack: Settings, schema_factory: Callable) -> None:
    pool: asyncpg.Pool = await schema_factory()
    n = CHUNK * 2 + 5
    await pool.execute(
        "INSERT INTO inbox (event_id, topic, processed_at) "
        "SELECT 'e' || g, $1, now() - interval '60 days' FROM generate_series(1, $2) g",
        topics.CONDUCT_REPORTS,
        n,
    )
    assert await prune_inbox(pool) == n
    assert await pool.fetchval("SELECT count(*) FROM inbox") == 0
    await pool.close()


async def test_the_ledger_drops_answered_requests_after_the_feedback_retention_never_a_pending_one(
    stack: Settings, schema_factory: Callable
) -> None:
    pool: asyncpg.Pool = await schema_factory(migrations=DESIGNATION_MIGRATIONS)
    rows = [
        ("old-accepted", "accepted", 40),
        ("old-rejected", "rejected", 40),
        ("old-pending", "pending", 40),
        ("recent-accepted", "accepted", 5),
    ]
    await pool.executemany(
        "INSERT INTO requests (request_id, request_type, unit, status, received_at, answered_at) "
        "VALUES ($1, 'credit.designation.designate', '110108-SAT', $2, now() - make_interval(days => $3),"
        " CASE WHEN $2 = 'pending' THEN NULL ELSE now() - make_interval(days => $3) END)",
        rows,
    )
    assert await prune_ledger(pool, timedelta(days=30)) == 2
    left = {r["request_id"] for r in await pool.fetch("SELECT request_id FROM requests")}
    assert left == {"old-pending", "recent-accepted"}
    await pool.close()
