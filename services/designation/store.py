"""The designation service's tables (its own schema only): designations and the request ledger."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Protocol

import asyncpg
import orjson
from credit_common.contracts.events import DesignationRecord
from credit_common.db.outbox import OutboxMessage, outbox_arrays

# Two statements, not one with OR: each uses its index (an OR of the two would scan the table).
LOAD_BY_ID = "SELECT record FROM designations WHERE designation_id = ANY($1::text[]) FOR UPDATE"
LOAD_ACTIVE_OF_SUBJECTS = (
    "SELECT record FROM designations WHERE subject_id = ANY($1::text[]) AND status = 'active' FOR UPDATE"
)
LOAD_ACTIVE_OF_STANDARD = "SELECT record FROM designations WHERE standard = $1 AND status = 'active' FOR UPDATE"
GET = "SELECT record FROM designations WHERE designation_id = $1"
UPDATE = """
UPDATE designations SET status = $2, effective_to = $3, record = $4, updated_at = $5
 WHERE designation_id = $1
"""
COLUMNS = [
    "designation_id",
    "subject_id",
    "list",
    "field",
    "standard",
    "unit",
    "status",
    "effective_from",
    "effective_to",
    "record",
    "created_at",
    "updated_at",
]
CLAIM_EXPIRED = """
SELECT record FROM designations
 WHERE status = 'active' AND effective_to < $1
 ORDER BY effective_to, designation_id
 LIMIT $2
 FOR UPDATE SKIP LOCKED
"""
DECISIONS_OF = "SELECT * FROM designation_decisions WHERE designation_id = $1 ORDER BY decided_at, request_id"
COUNT_BY_LIST = "SELECT list, status, count(*) AS n FROM designations GROUP BY list, status"

REQUEST_PENDING = """
INSERT INTO requests (request_id, request_type, unit, status, received_at)
VALUES ($1, $2, $3, 'pending', $4)
ON CONFLICT (unit, request_id) DO NOTHING
"""


def _answered(first: int) -> str:
    """The ledger upsert of a batch's answers (eight arrays from parameter `first` on). The first
    answer wins; a repeated answer (same request) changes nothing. One statement per batch
    (unnest), not one per answer."""
    p = [f"${first + i}" for i in range(8)]
    return f"""
INSERT INTO requests
       (request_id, request_type, unit, status, result_id, errors, answered_by, received_at, answered_at)
SELECT r, t, u, s, res, e::jsonb, b, a, a
  FROM unnest({p[0]}::text[], {p[1]}::text[], {p[2]}::text[], {p[3]}::text[], {p[4]}::text[], {p[5]}::text[],
              {p[6]}::text[], {p[7]}::timestamptz[]) AS x(r, t, u, s, res, e, b, a)
ON CONFLICT (unit, request_id) DO UPDATE
   SET status = EXCLUDED.status, result_id = EXCLUDED.result_id, errors = EXCLUDED.errors,
       answered_by = EXCLUDED.answered_by, answered_at = EXCLUDED.answered_at,
       request_type = coalesce(nullif(requests.request_type, ''), EXCLUDED.request_type)
 WHERE requests.status = 'pending'
"""


REQUEST_ANSWERED = _answered(1)
GET_REQUESTS = "SELECT * FROM requests WHERE request_id = $1 ORDER BY received_at, unit"

# What the rules of a batch read: the named designations and the active entries of the named
# subjects, each with its row version (designation_id:xmin). The locking path reads them FOR UPDATE
# (LOAD_BY_ID, LOAD_ACTIVE_OF_SUBJECTS); the optimistic path reads them without a lock, and
# WRITE_BATCH reads them again, locked, to check that nothing changed in between.
READ_FOR_BATCH = """
SELECT coalesce(array_agg(record), '{}') AS records,
       coalesce(array_agg(designation_id || ':' || xmin::text), '{}') AS versions
  FROM (SELECT designation_id, record, xmin FROM designations WHERE designation_id = ANY($2::text[])
        UNION ALL
        SELECT designation_id, record, xmin FROM designations
         WHERE subject_id = ANY($3::text[]) AND status = 'active') AS d
"""

# A batch's writes in one statement (one round trip, where a COPY, the updates, the audit, the
# outbox insert and the ledger upsert took one or more each): its new designations, the existing
# ones it changed, its decision audit, its outbox rows in the order they were emitted (identity
# values follow the ORDER BY), its answers in the ledger and, on the optimistic path, its inbox
# rows, with the check that what its rules read (without a lock) is still what the table holds.
# The check is the main query: it locks the rows (FOR UPDATE) before the writing CTEs run, which
# run after the main query; when they changed it raises serialization_failure and nothing is written.
WRITE_BATCH = f"""
WITH read_by_id AS (
  SELECT designation_id || ':' || xmin::text AS v FROM designations WHERE designation_id = ANY($39::text[]) FOR UPDATE
), read_of_subjects AS (
  SELECT designation_id || ':' || xmin::text AS v FROM designations
   WHERE subject_id = ANY($40::text[]) AND status = 'active' FOR UPDATE
), inboxed AS (
  INSERT INTO inbox (event_id, topic, digest) SELECT * FROM unnest($37::text[], $38::text[], $49::bytea[])
), new_designations AS (
  INSERT INTO designations
         (designation_id, subject_id, list, field, standard, unit, status, effective_from, effective_to,
          record, created_at, updated_at)
  SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                       $8::date[], $9::date[], $10::jsonb[], $11::timestamptz[], $12::timestamptz[])
), changed AS (
  UPDATE designations AS d SET status = u.s, effective_to = u.e, record = u.r, updated_at = u.a
    FROM unnest($25::text[], $26::text[], $27::date[], $28::jsonb[], $29::timestamptz[]) AS u(i, s, e, r, a)
   WHERE d.designation_id = u.i
), audited AS (
  INSERT INTO designation_decisions (request_id, designation_id, kind, unit, decision, reason, decided_at)
  SELECT * FROM unnest($30::text[], $31::text[], $32::text[], $33::text[], $34::jsonb[], $35::text[],
                       $36::timestamptz[])
  ON CONFLICT (unit, request_id) DO NOTHING
), signed AS (
  INSERT INTO request_signatures (request_id, designation_id, principal, signaturekid, signature, received_at, signed)
  SELECT * FROM unnest($42::text[], $43::text[], $44::text[], $45::text[], $46::text[], $47::timestamptz[],
                       $48::text[])
  ON CONFLICT (principal, request_id) DO NOTHING
), emitted AS (
  INSERT INTO outbox (topic, key, value, headers)
  SELECT t, k, v, h
    FROM unnest($13::text[], $14::bytea[], $15::bytea[], $16::jsonb[]) WITH ORDINALITY AS x(t, k, v, h, n)
   ORDER BY n
), answered AS ({_answered(17)})
SELECT CASE
  WHEN $41::text[] IS NULL THEN true
  WHEN (SELECT coalesce(array_agg(DISTINCT v ORDER BY v), '{{}}')
          FROM (SELECT v FROM read_by_id UNION ALL SELECT v FROM read_of_subjects) AS now_read)
     = (SELECT coalesce(array_agg(DISTINCT v ORDER BY v), '{{}}') FROM unnest($41::text[]) AS v) THEN true
  ELSE changed_since_read('designations')
END
"""


@dataclass
class BatchWrite:
    """Everything one batch writes, for `write_batch`."""

    new: Sequence[tuple[DesignationRecord, dict[str, Any], datetime, datetime]] = ()  # record, JSON, created, updated
    changed: Sequence[tuple[DesignationRecord, dict[str, Any], datetime]] = ()  # record, JSON, updated_at
    audit: Sequence[tuple[Any, ...]] = ()  # (request_id, designation_id, kind, unit, decision, reason, decided_at)
    # (request_id, designation_id, principal, signaturekid, signature, received_at, envelope)
    signatures: Sequence[tuple[Any, ...]] = ()
    outbox: Sequence[OutboxMessage] = ()
    answers: Sequence[tuple[Any, ...]] = ()  # as `record_answers`
    # optimistic path: (event ids, topics, digests) to record
    inbox: tuple[list[str], list[str], list[bytes | None]] | None = None
    read: tuple[list[str], list[str], list[str]] | None = None  # optimistic path: (ids, subjects, versions) read


# ---------------------------------------------------------------------- dashboard reads
# Active entries per standard: an index-only scan of designations_active_standard.
ACTIVE_BY_STANDARD = "SELECT standard, count(*) AS n FROM designations WHERE status = 'active' GROUP BY standard"
LIST_OF_STANDARD = "SELECT list FROM designations WHERE standard = $1 AND status = 'active' LIMIT 1"
# No index serves the next four (each reads its whole table): the dashboard caches their answers.
# The latest are the latest by the time of the event that wrote them (ids are not a time order: a
# department may send any unique id), up to $2: a time far ahead of the clock is a sender's error.
RECENT_DESIGNATIONS = """
SELECT designation_id, list, standard, unit, subject_id, status, record ->> 'removal_reason' AS removal_reason,
       created_at
  FROM designations WHERE created_at <= $2 ORDER BY created_at DESC, designation_id DESC LIMIT $1
"""
RECENT_REQUESTS = """
SELECT request_id, request_type, unit, status, result_id, errors, received_at, answered_at
  FROM requests WHERE received_at <= $2 ORDER BY received_at DESC, request_id DESC LIMIT $1
"""
REQUESTS_BY_STATUS = "SELECT status, count(*) AS n FROM requests GROUP BY status"
RECENT_REMOVALS = """
SELECT designation_id, list, standard, unit, subject_id, record ->> 'removal_reason' AS reason, updated_at
  FROM designations WHERE status = 'removed' AND updated_at <= $2 ORDER BY updated_at DESC LIMIT $1
"""
# Through designations_active_expiry: the entries past their last day (the timer's backlog) and
# the next last day.
EXPIRY = """
SELECT (SELECT count(*) FROM designations WHERE status = 'active' AND effective_to < $1) AS overdue,
       (SELECT min(effective_to) FROM designations WHERE status = 'active' AND effective_to >= $1) AS next_last_day
"""


def record_of(doc: dict[str, Any]) -> DesignationRecord:
    return DesignationRecord.model_validate(doc)


def doc_of(record: DesignationRecord) -> dict[str, Any]:
    return record.model_dump(mode="json", exclude_none=True)


class Store(Protocol):
    """What the request consumer's handlers read and write: `DesignationStore` in PostgreSQL,
    `memory.MemoryStore` in tests and the demo."""

    async def load_for_batch(
        self, designation_ids: Iterable[str], subject_ids: Iterable[str]
    ) -> list[DesignationRecord]: ...
    async def load_active_of_standard(self, standard: str) -> list[DesignationRecord]: ...
    async def write_batch(self, batch: BatchWrite) -> None: ...


class DesignationStore:
    """One connection's view of the designations table: inside the caller's transaction on the locking
    path; on the optimistic path `write_batch` is a statement (and transaction) of its own."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def load_for_batch(
        self, designation_ids: Iterable[str], subject_ids: Iterable[str]
    ) -> list[DesignationRecord]:
        """The named designations and every active entry of the named subjects, locked."""
        found: dict[str, DesignationRecord] = {}
        ids, subjects = list(designation_ids), list(subject_ids)
        rows = (await self.conn.fetch(LOAD_BY_ID, ids) if ids else []) + (
            await self.conn.fetch(LOAD_ACTIVE_OF_SUBJECTS, subjects) if subjects else []
        )
        for r in rows:
            rec = record_of(r["record"])
            found[rec.designation_id] = rec
        return list(found.values())

    async def load_active_of_standard(self, standard: str) -> list[DesignationRecord]:
        return [record_of(r["record"]) for r in await self.conn.fetch(LOAD_ACTIVE_OF_STANDARD, standard)]

    async def write_batch(self, batch: BatchWrite) -> None:
        """Everything a batch writes, in one statement (see WRITE_BATCH); raises
        serialization_failure, writing nothing, when `batch.read` no longer holds."""
        if not (batch.new or batch.changed or batch.audit or batch.outbox or batch.answers or batch.inbox):
            return
        keys, key_topics, digests = batch.inbox or ([], [], [])
        ids, subjects, versions = batch.read or ([], [], None)
        await self.conn.execute(
            WRITE_BATCH,
            *_columns([_row(*r) for r in batch.new], len(COLUMNS)),
            *outbox_arrays(batch.outbox),
            *_answer_columns(batch.answers),
            *_columns([(r.designation_id, str(r.status), r.effective_to, doc, at) for r, doc, at in batch.changed], 5),
            *_columns(batch.audit, 7),
            keys,
            key_topics,
            ids,
            subjects,
            versions,
            *_columns(batch.signatures, 7),
            digests,
        )

    async def update(self, rows: Sequence[tuple[DesignationRecord, dict[str, Any], datetime]]) -> None:
        """Changed designations: (record, its JSON document, updated_at)."""
        if rows:
            await self.conn.executemany(
                UPDATE, [(r.designation_id, str(r.status), r.effective_to, doc, at) for r, doc, at in rows]
            )

    async def claim_expired(self, today: date, limit: int) -> list[DesignationRecord]:
        """Active entries whose last day is before `today`, locked (SKIP LOCKED: one instance each)."""
        return [record_of(r["record"]) for r in await self.conn.fetch(CLAIM_EXPIRED, today, limit)]


async def get_designation(pool: asyncpg.Pool, designation_id: str) -> dict[str, Any] | None:
    row = await pool.fetchrow(GET, designation_id)
    return dict(row["record"]) if row else None


SIGNATURES_OF = """
SELECT request_id, principal, signaturekid, signature, received_at, signed, envelope
  FROM request_signatures WHERE designation_id = $1 ORDER BY received_at, request_id
"""


async def signatures_of(pool: asyncpg.Pool, designation_id: str) -> list[dict[str, Any]]:
    """The accepted requests about a designation, as they were signed (oldest first), each with
    its `request`: the envelope as signed, `signature` included."""
    out = []
    for r in await pool.fetch(SIGNATURES_OF, designation_id):
        row = dict(r)
        signed, envelope = row.pop("signed"), row.pop("envelope")
        request = {**orjson.loads(signed), "signature": row["signature"]} if signed is not None else envelope
        out.append({**row, "request": request})
    return out


async def decisions_of(pool: asyncpg.Pool, designation_id: str) -> list[dict[str, Any]]:
    return [dict(r) for r in await pool.fetch(DECISIONS_OF, designation_id)]


async def list_counts(pool: asyncpg.Pool) -> list[dict[str, Any]]:
    return [dict(r) for r in await pool.fetch(COUNT_BY_LIST)]


async def record_pending(pool: asyncpg.Pool, request_id: str, type_: str, unit: str | None, at: datetime) -> None:
    await pool.execute(REQUEST_PENDING, request_id, type_, unit, at)


async def record_answers(conn: asyncpg.Connection, answers: Sequence[tuple[Any, ...]]) -> None:
    """(request_id, type, unit, status, result_id, errors, answered_by, at) rows."""
    if answers:
        await conn.execute(REQUEST_ANSWERED, *_answer_columns(answers))


def _row(r: DesignationRecord, doc: dict[str, Any], created: datetime, updated: datetime) -> tuple[Any, ...]:
    """A designations row, in COLUMNS order."""
    return (
        r.designation_id,
        r.subject.id,
        str(r.list),
        r.field,
        r.standard,
        r.unit,
        str(r.status),
        r.effective_from,
        r.effective_to,
        doc,
        created,
        updated,
    )


def _columns(rows: Sequence[tuple[Any, ...]], width: int) -> list[list[Any]]:
    """Rows as `width` column arrays, for an unnest."""
    return [list(c) for c in zip(*rows, strict=True)] or [[] for _ in range(width)]


def _answer_columns(answers: Sequence[tuple[Any, ...]]) -> list[list[Any]]:
    """Ledger answers as the eight arrays REQUEST_ANSWERED (and WRITE_BATCH) unnest."""
    latest = {a[0]: a for a in answers}  # one row per request id within a statement
    cols = _columns(list(latest.values()), 8)
    # errors travel as JSON text: a list inside a jsonb[] parameter would become an array dimension
    cols[5] = [None if e is None else orjson.dumps(e).decode() for e in cols[5]]
    return cols


async def get_requests(pool: asyncpg.Pool, request_id: str) -> list[dict[str, Any]]:
    """The ledger rows under `request_id`: one per unit that used it (a request is known by its
    source and id), oldest first."""
    return [dict(row) for row in await pool.fetch(GET_REQUESTS, request_id)]


async def active_by_standard(pool: asyncpg.Pool) -> dict[str, int]:
    return {r["standard"]: r["n"] for r in await pool.fetch(ACTIVE_BY_STANDARD)}


async def list_of_standard(pool: asyncpg.Pool, standard: str) -> str | None:
    value = await pool.fetchval(LIST_OF_STANDARD, standard)
    return str(value) if value is not None else None


async def recent_designations(pool: asyncpg.Pool, limit: int, until: datetime) -> list[dict[str, Any]]:
    return [dict(r) for r in await pool.fetch(RECENT_DESIGNATIONS, limit, until)]


async def recent_requests(pool: asyncpg.Pool, limit: int, until: datetime) -> list[dict[str, Any]]:
    return [dict(r) for r in await pool.fetch(RECENT_REQUESTS, limit, until)]


async def requests_by_status(pool: asyncpg.Pool) -> dict[str, int]:
    return {r["status"]: r["n"] for r in await pool.fetch(REQUESTS_BY_STATUS)}


async def recent_removals(pool: asyncpg.Pool, limit: int, until: datetime) -> list[dict[str, Any]]:
    return [dict(r) for r in await pool.fetch(RECENT_REMOVALS, limit, until)]


async def expiry(pool: asyncpg.Pool, today: date) -> dict[str, Any]:
    """Active entries whose last day is before `today` (not expired yet), and the next last day."""
    row = await pool.fetchrow(EXPIRY, today)
    return dict(row) if row else {"overdue": 0, "next_last_day": None}
