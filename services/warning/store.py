"""The warning service's tables (its own schema only): active key-scrutiny entries, key fields,
the warning list, conduct reports and transfer recommendations."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Protocol

import asyncpg

# One lock per subject, taken in lock-id order: a reference change re-evaluates subjects of every
# partition, so two instances can touch one subject at once. Two-key advisory locks: our own space.
LOCK_SUBJECTS = """
SELECT count(pg_advisory_xact_lock(hashtext('credit:warning'), h))
  FROM (SELECT DISTINCT hashtext(k) AS h FROM unnest($1::text[]) AS u(k) ORDER BY 1) AS keys
"""
ENTRIES_OF_SUBJECTS = """
SELECT designation_id, subject_id, field, unit, record FROM entries WHERE subject_id = ANY($1::text[])
"""
SUBJECTS_WITH_FIELDS = "SELECT DISTINCT subject_id FROM entries WHERE field = ANY($1::text[])"
KEY_FIELDS = "SELECT code, key_field FROM key_fields"
UPSERT_KEY_FIELD = """
INSERT INTO key_fields (code, key_field, updated_at) VALUES ($1, $2, $3)
ON CONFLICT (code) DO UPDATE SET key_field = EXCLUDED.key_field, updated_at = EXCLUDED.updated_at
"""
UPSERT_ENTRY = """
INSERT INTO entries (designation_id, subject_id, field, unit, record, updated_at) VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (designation_id) DO UPDATE
   SET subject_id = EXCLUDED.subject_id, field = EXCLUDED.field, unit = EXCLUDED.unit,
       record = EXCLUDED.record, updated_at = EXCLUDED.updated_at
"""
DELETE_ENTRIES = "DELETE FROM entries WHERE designation_id = ANY($1::text[])"
WARNINGS_OF_SUBJECTS = "SELECT * FROM warnings WHERE subject_id = ANY($1::text[])"
UPSERT_WARNING = """
INSERT INTO warnings (subject_id, subject, status, fields, designation_ids, since, listed_at, cleared_at,
                      updated_at, last_event_id)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
ON CONFLICT (subject_id) DO UPDATE
   SET subject = EXCLUDED.subject, status = EXCLUDED.status, fields = EXCLUDED.fields,
       designation_ids = EXCLUDED.designation_ids, since = EXCLUDED.since, listed_at = EXCLUDED.listed_at,
       cleared_at = EXCLUDED.cleared_at, updated_at = EXCLUDED.updated_at, last_event_id = EXCLUDED.last_event_id
"""
PENDING_RECOMMENDATIONS = """
SELECT * FROM recommendations
 WHERE status <> 'closed' AND (subject_id = ANY($1::text[]) OR designation_id = ANY($2::text[]))
 ORDER BY recommendation_id
 FOR UPDATE
"""
RECOMMENDATION_COLUMNS = (
    "recommendation_id",
    "subject_id",
    "designation_id",
    "unit",
    "field",
    "conduct_report_id",
    "status",
    "due_on",
    "escalated_to",
    "record",
    "created_at",
    "overdue_at",
    "closed_at",
    "closed_reason",
    "closed_by",
)
UPSERT_RECOMMENDATION = f"""
INSERT INTO recommendations ({", ".join(RECOMMENDATION_COLUMNS)})
VALUES ({", ".join(f"${i}" for i in range(1, len(RECOMMENDATION_COLUMNS) + 1))})
ON CONFLICT (recommendation_id) DO UPDATE
   SET status = EXCLUDED.status, escalated_to = EXCLUDED.escalated_to, overdue_at = EXCLUDED.overdue_at,
       closed_at = EXCLUDED.closed_at, closed_reason = EXCLUDED.closed_reason, closed_by = EXCLUDED.closed_by
"""
INSERT_REPORT = """
INSERT INTO conduct_reports (report_id, subject_id, field, unit, serious, occurred_on, report, received_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT (report_id) DO NOTHING
"""
GET_CONFIG = "SELECT value FROM config WHERE name = $1 FOR UPDATE"
REPORTS_NAMED = "SELECT report_id FROM conduct_reports WHERE report_id = ANY($1::text[])"
SET_CONFIG = """
INSERT INTO config (name, value, updated_at) VALUES ($1, $2, $3)
ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value, updated_at = EXCLUDED.updated_at
"""
JUDGED_SUBJECTS = "SELECT subject_id FROM entries UNION SELECT subject_id FROM warnings WHERE status = 'listed'"
CLAIM_OVERDUE = """
SELECT * FROM recommendations
 WHERE status = 'open' AND due_on < $1
 ORDER BY due_on, recommendation_id
 LIMIT $2
 FOR UPDATE SKIP LOCKED
"""

# ---------------------------------------------------------------------- reads for HTTP

LIST_WARNINGS = """
SELECT subject_id, subject, status, fields, designation_ids, since, listed_at, cleared_at, updated_at
  FROM warnings
 WHERE status = $1 AND subject_id > $2
 ORDER BY subject_id
 LIMIT $3
"""
GET_WARNING = "SELECT * FROM warnings WHERE subject_id = $1"
ENTRIES_BY_ID = "SELECT record FROM entries WHERE designation_id = ANY($1::text[]) ORDER BY designation_id"
ENTRIES_OF_SUBJECT = "SELECT record FROM entries WHERE subject_id = $1 ORDER BY designation_id"
LIST_RECOMMENDATIONS = """
SELECT * FROM recommendations
 WHERE ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR subject_id = $2)
   AND ($3::text IS NULL OR unit = $3) AND recommendation_id > $4
 ORDER BY recommendation_id
 LIMIT $5
"""
COUNTS = """
SELECT 'warnings' AS what, status, count(*) AS n FROM warnings GROUP BY status
UNION ALL
SELECT 'recommendations', status, count(*) FROM recommendations GROUP BY status
UNION ALL
SELECT 'entries', 'active', count(*) FROM entries
"""


# Dashboard reads: the warning list and the recommendations are small (a subject is on the list
# with 3+ key-scrutiny entries; a recommendation follows a serious conduct report); the entries
# count can grow with the key-scrutiny list and is cached by the dashboard.
WARNING_COUNTS = "SELECT status, count(*) AS n FROM warnings GROUP BY status"
LISTED_BY_FIELD = """
SELECT f AS field, count(*) AS n FROM warnings, unnest(fields) AS f WHERE status = 'listed'
 GROUP BY f ORDER BY n DESC, f
"""
RECOMMENDATION_COUNTS = "SELECT status, count(*) AS n FROM recommendations GROUP BY status"
ENTRY_COUNT = "SELECT count(*) FROM entries"
RECENT_WARNINGS = """
SELECT subject_id, subject ->> 'name' AS name, status, fields, since, updated_at
  FROM warnings ORDER BY updated_at DESC, subject_id LIMIT $1
"""
PENDING_TRANSFERS = """
SELECT recommendation_id, subject_id, designation_id, unit, field, status, due_on, escalated_to, created_at
  FROM recommendations WHERE status <> 'closed' ORDER BY due_on, recommendation_id LIMIT $1
"""


@dataclass
class EntryRow:
    designation_id: str
    subject_id: str
    field: str
    unit: str
    record: dict[str, Any]


@dataclass
class WarningRow:
    subject_id: str
    subject: dict[str, Any]
    status: str  # listed | cleared
    fields: list[str]
    designation_ids: list[str]
    since: date | None
    listed_at: datetime | None
    cleared_at: datetime | None
    updated_at: datetime
    last_event_id: str

    def values(self) -> tuple[Any, ...]:
        return (
            self.subject_id,
            self.subject,
            self.status,
            self.fields,
            self.designation_ids,
            self.since,
            self.listed_at,
            self.cleared_at,
            self.updated_at,
            self.last_event_id,
        )


@dataclass
class RecommendationRow:
    recommendation_id: str
    subject_id: str
    designation_id: str
    unit: str
    field: str
    conduct_report_id: str
    status: str  # open | overdue | closed
    due_on: date
    escalated_to: str | None
    record: dict[str, Any]
    created_at: datetime
    overdue_at: datetime | None = None
    closed_at: datetime | None = None
    closed_reason: str | None = None
    closed_by: str | None = None

    def values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, c) for c in RECOMMENDATION_COLUMNS)

    @classmethod
    def of(cls, row: asyncpg.Record) -> RecommendationRow:
        return cls(**{c: row[c] for c in RECOMMENDATION_COLUMNS})


LOCK_KEY_FIELDS = "SELECT pg_advisory_xact_lock(hashtext('credit:warning:key_fields'), 0)"
SHARE_KEY_FIELDS = "SELECT pg_advisory_xact_lock_shared(hashtext('credit:warning:key_fields'), 0)"


class Store(Protocol):
    """What the consumer's handlers read and write: `WarningStore` in PostgreSQL,
    `memory.MemoryStore` in tests and the demo."""

    async def lock_key_fields(self, *, exclusive: bool) -> None: ...
    async def lock_subjects(self, subject_ids: Iterable[str]) -> None: ...
    async def subjects_with_fields(self, fields: Iterable[str]) -> list[str]: ...
    async def key_fields(self) -> dict[str, bool]: ...
    async def entries_of(self, subject_ids: Sequence[str]) -> list[EntryRow]: ...
    async def warnings_of(self, subject_ids: Sequence[str]) -> list[WarningRow]: ...
    async def pending_recommendations(
        self, subject_ids: Sequence[str], designation_ids: Sequence[str]
    ) -> list[RecommendationRow]: ...
    async def save_key_fields(self, rows: Sequence[tuple[str, bool, datetime]]) -> None: ...
    async def save_entries(
        self, upserts: Sequence[EntryRow], at: dict[str, datetime], deletes: Sequence[str]
    ) -> None: ...
    async def save_warnings(self, rows: Sequence[WarningRow]) -> None: ...
    async def save_recommendations(self, rows: Sequence[RecommendationRow]) -> None: ...
    async def save_reports(self, rows: Sequence[tuple[Any, ...]]) -> None: ...
    async def reports_named(self, report_ids: Sequence[str]) -> set[str]: ...


class WarningStore:
    """One connection's view of the warning tables (inside the caller's transaction)."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def lock_key_fields(self, *, exclusive: bool) -> None:
        """Key-field changes take this lock exclusively, every other batch shares it: a batch never
        judges a subject by key fields another instance is changing."""
        await self.conn.execute(LOCK_KEY_FIELDS if exclusive else SHARE_KEY_FIELDS)

    async def lock_subjects(self, subject_ids: Iterable[str]) -> None:
        ids = sorted(set(subject_ids))
        if ids:
            await self.conn.fetchval(LOCK_SUBJECTS, ids)

    async def subjects_with_fields(self, fields: Iterable[str]) -> list[str]:
        codes = sorted(set(fields))
        if not codes:
            return []
        return [r["subject_id"] for r in await self.conn.fetch(SUBJECTS_WITH_FIELDS, codes)]

    async def key_fields(self) -> dict[str, bool]:
        return {r["code"]: r["key_field"] for r in await self.conn.fetch(KEY_FIELDS)}

    async def entries_of(self, subject_ids: Sequence[str]) -> list[EntryRow]:
        if not subject_ids:
            return []
        return [
            EntryRow(r["designation_id"], r["subject_id"], r["field"], r["unit"], r["record"])
            for r in await self.conn.fetch(ENTRIES_OF_SUBJECTS, list(subject_ids))
        ]

    async def warnings_of(self, subject_ids: Sequence[str]) -> list[WarningRow]:
        if not subject_ids:
            return []
        return [WarningRow(**dict(r)) for r in await self.conn.fetch(WARNINGS_OF_SUBJECTS, list(subject_ids))]

    async def pending_recommendations(
        self, subject_ids: Sequence[str], designation_ids: Sequence[str]
    ) -> list[RecommendationRow]:
        if not subject_ids and not designation_ids:
            return []
        rows = await self.conn.fetch(PENDING_RECOMMENDATIONS, list(subject_ids), list(designation_ids))
        return [RecommendationRow.of(r) for r in rows]

    async def save_key_fields(self, rows: Sequence[tuple[str, bool, datetime]]) -> None:
        if rows:
            await self.conn.executemany(UPSERT_KEY_FIELD, rows)

    async def save_entries(self, upserts: Sequence[EntryRow], at: dict[str, datetime], deletes: Sequence[str]) -> None:
        if deletes:
            await self.conn.execute(DELETE_ENTRIES, list(deletes))
        if upserts:
            await self.conn.executemany(
                UPSERT_ENTRY,
                [(e.designation_id, e.subject_id, e.field, e.unit, e.record, at[e.designation_id]) for e in upserts],
            )

    async def save_warnings(self, rows: Sequence[WarningRow]) -> None:
        if rows:
            await self.conn.executemany(UPSERT_WARNING, [w.values() for w in rows])

    async def save_recommendations(self, rows: Sequence[RecommendationRow]) -> None:
        if rows:
            await self.conn.executemany(UPSERT_RECOMMENDATION, [r.values() for r in rows])

    async def reports_named(self, report_ids: Sequence[str]) -> set[str]:
        """Which of `report_ids` name a recorded conduct report already."""
        if not report_ids:
            return set()
        return {r["report_id"] for r in await self.conn.fetch(REPORTS_NAMED, list(report_ids))}

    async def save_reports(self, rows: Sequence[tuple[Any, ...]]) -> None:
        """(report_id, subject_id, field, unit, serious, occurred_on, report, received_at) rows."""
        if rows:
            await self.conn.executemany(INSERT_REPORT, rows)

    async def get_config(self, name: str) -> str | None:
        value: str | None = await self.conn.fetchval(GET_CONFIG, name)
        return value

    async def set_config(self, name: str, value: str, at: datetime) -> None:
        await self.conn.execute(SET_CONFIG, name, value, at)

    async def judged_subjects(self) -> list[str]:
        """Every subject with an active key-scrutiny entry or on the warning list, sorted."""
        return sorted(r["subject_id"] for r in await self.conn.fetch(JUDGED_SUBJECTS))

    async def claim_overdue(self, today: date, limit: int) -> list[RecommendationRow]:
        """Open recommendations whose due day is over, locked (SKIP LOCKED: one instance each)."""
        return [RecommendationRow.of(r) for r in await self.conn.fetch(CLAIM_OVERDUE, today, limit)]


# ---------------------------------------------------------------------- reads for HTTP


async def list_warnings(pool: asyncpg.Pool, status: str, after: str, limit: int) -> list[dict[str, Any]]:
    return [dict(r) for r in await pool.fetch(LIST_WARNINGS, status, after, limit)]


async def get_warning(pool: asyncpg.Pool, subject_id: str) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """The subject's warning row (None if it was never listed) and its active key-scrutiny entries."""
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        row = await conn.fetchrow(GET_WARNING, subject_id)
        entries = [r["record"] for r in await conn.fetch(ENTRIES_OF_SUBJECT, subject_id)]
    return (dict(row) if row else None), entries


async def list_recommendations(
    pool: asyncpg.Pool, status: str | None, subject: str | None, unit: str | None, after: str, limit: int
) -> list[dict[str, Any]]:
    return [dict(r) for r in await pool.fetch(LIST_RECOMMENDATIONS, status, subject, unit, after, limit)]


async def counts(pool: asyncpg.Pool) -> list[dict[str, Any]]:
    return [dict(r) for r in await pool.fetch(COUNTS)]


async def warning_counts(pool: asyncpg.Pool) -> dict[str, int]:
    return {r["status"]: r["n"] for r in await pool.fetch(WARNING_COUNTS)}


async def listed_by_field(pool: asyncpg.Pool) -> list[tuple[str, int]]:
    return [(r["field"], r["n"]) for r in await pool.fetch(LISTED_BY_FIELD)]


async def recommendation_counts(pool: asyncpg.Pool) -> dict[str, int]:
    return {r["status"]: r["n"] for r in await pool.fetch(RECOMMENDATION_COUNTS)}


async def entry_count(pool: asyncpg.Pool) -> int:
    return int(await pool.fetchval(ENTRY_COUNT))


async def recent_warnings(pool: asyncpg.Pool, limit: int) -> list[dict[str, Any]]:
    return [dict(r) for r in await pool.fetch(RECENT_WARNINGS, limit)]


async def pending_transfers(pool: asyncpg.Pool, limit: int) -> list[dict[str, Any]]:
    return [dict(r) for r in await pool.fetch(PENDING_TRANSFERS, limit)]
