"""The objection service's tables (its own schema only): designations, objections, restoration
applications and their measures."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, ClassVar, Protocol

import asyncpg

from .domain import Entry

LOAD_DESIGNATIONS = """
SELECT record FROM designations WHERE designation_id = ANY($1::text[]) ORDER BY designation_id FOR UPDATE
"""
UPSERT_DESIGNATION = """
INSERT INTO designations (designation_id, subject_id, list, standard, unit, status, effective_from, effective_to,
                          record, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
ON CONFLICT (designation_id) DO UPDATE
   SET subject_id = EXCLUDED.subject_id, list = EXCLUDED.list, standard = EXCLUDED.standard,
       unit = EXCLUDED.unit, status = EXCLUDED.status, effective_from = EXCLUDED.effective_from,
       effective_to = EXCLUDED.effective_to, record = EXCLUDED.record, updated_at = EXCLUDED.updated_at
"""

OBJECTION_COLUMNS = (
    "objection_id",
    "designation_id",
    "subject_id",
    "unit",
    "objector_key",
    "objector",
    "grounds",
    "evidence",
    "status",
    "due_on",
    "escalated_to",
    "record",
    "filed_by",
    "filed_at",
    "overdue_at",
    "outcome",
    "reasoning",
    "decided_on",
    "decided_by",
    "resolved_at",
    "closed_at",
    "closed_reason",
    "closed_by",
    "escalations",
    "escalation_due_on",
)
APPLICATION_COLUMNS = (
    "application_id",
    "designation_id",
    "subject_id",
    "unit",
    "applicant",
    "measures",
    "evidence",
    "status",
    "applied_on",
    "due_on",
    "notify_by",
    "escalated_to",
    "record",
    "filed_by",
    "filed_at",
    "overdue_at",
    "outcome",
    "reasoning",
    "decided_on",
    "decided_by",
    "resolved_at",
    "closed_at",
    "closed_reason",
    "closed_by",
    "escalations",
    "escalation_due_on",
)
# What changes after filing: the life-cycle columns.
_MUTABLE = (
    "status",
    "escalated_to",
    "escalations",
    "escalation_due_on",
    "overdue_at",
    "outcome",
    "reasoning",
    "decided_on",
    "decided_by",
    "resolved_at",
    "closed_at",
    "closed_reason",
    "closed_by",
)


def _upsert(table: str, columns: Sequence[str]) -> str:
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) "
        f"VALUES ({', '.join(f'${i}' for i in range(1, len(columns) + 1))}) "
        f"ON CONFLICT ({columns[0]}) DO UPDATE SET {', '.join(f'{c} = EXCLUDED.{c}' for c in _MUTABLE)}"
    )


UPSERT_OBJECTION = _upsert("objections", OBJECTION_COLUMNS)
UPSERT_APPLICATION = _upsert("applications", APPLICATION_COLUMNS)
DESIGNATIONS_OF_ITEMS = """
SELECT designation_id FROM objections WHERE objection_id = ANY($1::text[])
UNION
SELECT designation_id FROM applications WHERE application_id = ANY($2::text[])
"""
OBJECTIONS_BY_ID = "SELECT * FROM objections WHERE objection_id = ANY($1::text[]) ORDER BY objection_id FOR UPDATE"
APPLICATIONS_BY_ID = """
SELECT * FROM applications WHERE application_id = ANY($1::text[]) ORDER BY application_id FOR UPDATE
"""
# Pending objections, and rejected ones (a new objection of the same objector needs new evidence).
PENDING_OBJECTIONS = """
SELECT * FROM objections
 WHERE designation_id = ANY($1::text[]) AND (status IN ('open', 'overdue') OR outcome = 'rejected')
 ORDER BY objection_id FOR UPDATE
"""
PENDING_APPLICATIONS = """
SELECT * FROM applications WHERE designation_id = ANY($1::text[]) AND status IN ('open', 'overdue')
 ORDER BY application_id FOR UPDATE
"""
INSERT_MEASURE = """
INSERT INTO restoration_measures (application_id, position, designation_id, subject_id, list, unit, province, kind,
                                  detail, completed_on, hours, legal_representative, legal_rep_training, recorded_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
ON CONFLICT (application_id, position) DO NOTHING
"""
# Items whose due day is over: open ones (first escalation), and overdue ones whose unit above has
# let its own time pass too (the next step up the chain).
CLAIM_OVERDUE_OBJECTIONS = """
SELECT * FROM objections
 WHERE (status = 'open' AND due_on < $1) OR (status = 'overdue' AND escalation_due_on < $1)
 ORDER BY objection_id LIMIT $2 FOR UPDATE SKIP LOCKED
"""
CLAIM_OVERDUE_APPLICATIONS = """
SELECT * FROM applications
 WHERE (status = 'open' AND due_on < $1) OR (status = 'overdue' AND escalation_due_on < $1)
 ORDER BY application_id LIMIT $2 FOR UPDATE SKIP LOCKED
"""

# ---------------------------------------------------------------------- reads for HTTP

GET_OBJECTION = "SELECT * FROM objections WHERE objection_id = $1"
GET_APPLICATION = "SELECT * FROM applications WHERE application_id = $1"
MEASURES_OF = "SELECT * FROM restoration_measures WHERE application_id = $1 ORDER BY position"
# A unit's inbox: what was routed to it and what was escalated to it, one page in id order.
INBOX = """
SELECT * FROM (
    SELECT 'objection' AS kind, objection_id AS item_id, designation_id, subject_id, unit, status, due_on,
           NULL::date AS notify_by, escalated_to, filed_at, overdue_at, outcome, decided_on, decided_by,
           resolved_at, closed_at, closed_reason, record
      FROM objections
     WHERE (unit = $1 OR escalated_to = $1) AND ($2::text IS NULL OR status = $2)
    UNION ALL
    SELECT 'restoration', application_id, designation_id, subject_id, unit, status, due_on,
           notify_by, escalated_to, filed_at, overdue_at, outcome, decided_on, decided_by,
           resolved_at, closed_at, closed_reason, record
      FROM applications
     WHERE (unit = $1 OR escalated_to = $1) AND ($2::text IS NULL OR status = $2)
) AS items
 WHERE item_id > $3
 ORDER BY item_id
 LIMIT $4
"""
MEASURE_COUNTS = """
SELECT m.province, m.unit, m.kind, count(*) AS measures,
       count(*) FILTER (WHERE m.legal_rep_training) AS legal_representative_training,
       count(*) FILTER (WHERE a.status = 'resolved' AND a.outcome = 'approved') AS in_approved_applications,
       count(DISTINCT m.application_id) AS applications
  FROM restoration_measures m JOIN applications a USING (application_id)
 WHERE ($1::text IS NULL OR m.province = $1) AND ($2::text IS NULL OR m.unit = $2)
 GROUP BY m.province, m.unit, m.kind
 ORDER BY m.province, m.unit, m.kind
"""
COUNTS = """
SELECT 'objections' AS what, status, count(*) AS n FROM objections GROUP BY status
UNION ALL
SELECT 'applications', status, count(*) FROM applications GROUP BY status
UNION ALL
SELECT 'designations', status, count(*) FROM designations GROUP BY status
"""

# Dashboard reads. Pending items are few and the pending partial indexes cover them; the tables of
# objections and applications grow with people's filings (thousands, not millions) and the
# dashboard caches what reads them whole.
PENDING_BY_UNIT = """
SELECT unit, 'objection' AS kind, status, count(*) AS n FROM objections WHERE status IN ('open', 'overdue')
 GROUP BY unit, status
UNION ALL
SELECT unit, 'restoration', status, count(*) FROM applications WHERE status IN ('open', 'overdue')
 GROUP BY unit, status
"""
ITEM_COUNTS = """
SELECT 'objection' AS kind, status, count(*) AS n FROM objections GROUP BY status
UNION ALL
SELECT 'restoration', status, count(*) FROM applications GROUP BY status
"""
RECENT_ITEMS = """
SELECT * FROM (
    (SELECT 'objection' AS kind, objection_id AS item_id, designation_id, subject_id, unit, status, due_on,
            escalated_to, filed_at, outcome
       FROM objections ORDER BY filed_at DESC LIMIT $1)
    UNION ALL
    (SELECT 'restoration', application_id, designation_id, subject_id, unit, status, due_on,
            escalated_to, filed_at, outcome
       FROM applications ORDER BY filed_at DESC LIMIT $1)
) AS items ORDER BY filed_at DESC, item_id LIMIT $1
"""
OVERDUE_ITEMS = """
SELECT * FROM (
    SELECT 'objection' AS kind, objection_id AS item_id, designation_id, unit, escalated_to, escalations, due_on,
           escalation_due_on, overdue_at
      FROM objections WHERE status = 'overdue'
    UNION ALL
    SELECT 'restoration', application_id, designation_id, unit, escalated_to, escalations, due_on,
           escalation_due_on, overdue_at
      FROM applications WHERE status = 'overdue'
) AS items ORDER BY due_on, item_id LIMIT $1
"""
OVERDUE_COUNT = """
SELECT (SELECT count(*) FROM objections WHERE status = 'overdue')
     + (SELECT count(*) FROM applications WHERE status = 'overdue')
"""


@dataclass
class Item:
    """The life-cycle columns both kinds share."""

    COLUMNS: ClassVar[tuple[str, ...]] = ()

    status: str = "open"
    escalated_to: str | None = None
    escalations: int = 0  # steps up the chain so far
    escalation_due_on: date | None = None  # by when the unit it was escalated to decides (None: the top)
    overdue_at: datetime | None = None
    outcome: str | None = None
    reasoning: str | None = None
    decided_on: date | None = None
    decided_by: str | None = None
    resolved_at: datetime | None = None
    closed_at: datetime | None = None
    closed_reason: str | None = None
    closed_by: str | None = None

    @property
    def item_id(self) -> str:
        return str(getattr(self, self.COLUMNS[0]))

    def values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, c) for c in self.COLUMNS)


@dataclass(kw_only=True)
class ObjectionRow(Item):
    COLUMNS: ClassVar[tuple[str, ...]] = OBJECTION_COLUMNS

    objection_id: str
    designation_id: str
    subject_id: str
    unit: str
    objector_key: str
    objector: dict[str, Any]
    grounds: str
    evidence: list[str]
    due_on: date
    record: dict[str, Any]
    filed_by: str
    filed_at: datetime

    @classmethod
    def of(cls, row: asyncpg.Record) -> ObjectionRow:
        return cls(**{c: row[c] for c in OBJECTION_COLUMNS})


@dataclass(kw_only=True)
class ApplicationRow(Item):
    COLUMNS: ClassVar[tuple[str, ...]] = APPLICATION_COLUMNS

    application_id: str
    designation_id: str
    subject_id: str
    unit: str
    applicant: dict[str, Any]
    measures: list[dict[str, Any]]
    evidence: list[str]
    applied_on: date
    due_on: date
    notify_by: date
    record: dict[str, Any]
    filed_by: str
    filed_at: datetime

    @classmethod
    def of(cls, row: asyncpg.Record) -> ApplicationRow:
        return cls(**{c: row[c] for c in APPLICATION_COLUMNS})


@dataclass
class Loaded:
    entries: list[Entry] = field(default_factory=list)
    objections: list[ObjectionRow] = field(default_factory=list)
    applications: list[ApplicationRow] = field(default_factory=list)


class Store(Protocol):
    """What the consumer's handlers read and write: `ObjectionStore` in PostgreSQL,
    `memory.MemoryStore` in tests and the demo."""

    async def load(
        self, designation_ids: Iterable[str], objection_ids: Iterable[str], application_ids: Iterable[str]
    ) -> Loaded: ...
    async def save_entries(self, rows: Sequence[tuple[Entry, datetime]]) -> None: ...
    async def save_objections(self, rows: Sequence[ObjectionRow]) -> None: ...
    async def save_applications(self, rows: Sequence[ApplicationRow]) -> None: ...
    async def save_measures(self, rows: Sequence[tuple[Any, ...]]) -> None: ...


class ObjectionStore:
    """One connection's view of the objection tables (inside the caller's transaction)."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def load(
        self, designation_ids: Iterable[str], objection_ids: Iterable[str], application_ids: Iterable[str]
    ) -> Loaded:
        """The named designations and those of the named items, then the named items and every item
        still pending on those designations; all locked. Designations are locked first, in id
        order, so two batches about one entry queue on it instead of deadlocking on its items."""
        out = Loaded()
        oids, aids = sorted(set(objection_ids)), sorted(set(application_ids))
        dids = set(designation_ids)
        if oids or aids:
            dids.update(r["designation_id"] for r in await self.conn.fetch(DESIGNATIONS_OF_ITEMS, oids, aids))
        ordered = sorted(dids)
        if not ordered:
            return out  # the named items do not exist
        out.entries = [Entry.of(r["record"]) for r in await self.conn.fetch(LOAD_DESIGNATIONS, ordered)]
        objections = {r["objection_id"]: ObjectionRow.of(r) for r in await self.conn.fetch(OBJECTIONS_BY_ID, oids)}
        for r in await self.conn.fetch(PENDING_OBJECTIONS, ordered):
            objections.setdefault(r["objection_id"], ObjectionRow.of(r))
        applications = {
            r["application_id"]: ApplicationRow.of(r) for r in await self.conn.fetch(APPLICATIONS_BY_ID, aids)
        }
        for r in await self.conn.fetch(PENDING_APPLICATIONS, ordered):
            applications.setdefault(r["application_id"], ApplicationRow.of(r))
        out.objections = list(objections.values())
        out.applications = list(applications.values())
        return out

    async def save_entries(self, rows: Sequence[tuple[Entry, datetime]]) -> None:
        if rows:
            await self.conn.executemany(
                UPSERT_DESIGNATION,
                [
                    (
                        e.designation_id,
                        e.subject_id,
                        e.list,
                        e.standard,
                        e.unit,
                        e.status,
                        e.effective_from,
                        e.effective_to,
                        e.record,
                        at,
                    )
                    for e, at in rows
                ],
            )

    async def save_objections(self, rows: Sequence[ObjectionRow]) -> None:
        if rows:
            await self.conn.executemany(UPSERT_OBJECTION, [r.values() for r in rows])

    async def save_applications(self, rows: Sequence[ApplicationRow]) -> None:
        if rows:
            await self.conn.executemany(UPSERT_APPLICATION, [r.values() for r in rows])

    async def save_measures(self, rows: Sequence[tuple[Any, ...]]) -> None:
        """(application_id, position, designation_id, subject_id, list, unit, province, kind, detail,
        completed_on, hours, legal_representative, legal_rep_training, recorded_at) rows."""
        if rows:
            await self.conn.executemany(INSERT_MEASURE, rows)

    async def claim_overdue_objections(self, today: date, limit: int) -> list[ObjectionRow]:
        """Open objections whose due day is over, locked (SKIP LOCKED: one instance each)."""
        return [ObjectionRow.of(r) for r in await self.conn.fetch(CLAIM_OVERDUE_OBJECTIONS, today, limit)]

    async def claim_overdue_applications(self, today: date, limit: int) -> list[ApplicationRow]:
        return [ApplicationRow.of(r) for r in await self.conn.fetch(CLAIM_OVERDUE_APPLICATIONS, today, limit)]


# ---------------------------------------------------------------------- reads for HTTP


async def get_objection(pool: asyncpg.Pool, objection_id: str) -> dict[str, Any] | None:
    row = await pool.fetchrow(GET_OBJECTION, objection_id)
    return dict(row) if row else None


async def get_application(
    pool: asyncpg.Pool, application_id: str
) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        row = await conn.fetchrow(GET_APPLICATION, application_id)
        measures = [dict(r) for r in await conn.fetch(MEASURES_OF, application_id)] if row else []
    return (dict(row) if row else None), measures


async def inbox(pool: asyncpg.Pool, unit: str, status: str | None, after: str, limit: int) -> list[dict[str, Any]]:
    return [dict(r) for r in await pool.fetch(INBOX, unit, status, after, limit)]


async def measure_counts(pool: asyncpg.Pool, province: str | None, unit: str | None) -> list[dict[str, Any]]:
    return [dict(r) for r in await pool.fetch(MEASURE_COUNTS, province, unit)]


async def counts(pool: asyncpg.Pool) -> list[dict[str, Any]]:
    return [dict(r) for r in await pool.fetch(COUNTS)]


async def pending_by_unit(pool: asyncpg.Pool) -> list[dict[str, Any]]:
    """(unit, kind, status, n) of open and overdue objections and restoration applications."""
    return [dict(r) for r in await pool.fetch(PENDING_BY_UNIT)]


async def item_counts(pool: asyncpg.Pool) -> list[dict[str, Any]]:
    return [dict(r) for r in await pool.fetch(ITEM_COUNTS)]


async def recent_items(pool: asyncpg.Pool, limit: int) -> list[dict[str, Any]]:
    return [dict(r) for r in await pool.fetch(RECENT_ITEMS, limit)]


async def overdue_items(pool: asyncpg.Pool, limit: int) -> tuple[int, list[dict[str, Any]]]:
    """How many items are overdue, and the `limit` oldest."""
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        return int(await conn.fetchval(OVERDUE_COUNT)), [dict(r) for r in await conn.fetch(OVERDUE_ITEMS, limit)]
