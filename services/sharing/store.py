"""The sharing service's tables (its own schema only): inputs, history, entries, changes and the
seq counter. Writes happen inside the consumer's batch transaction; reads for HTTP run in one
REPEATABLE READ read-only transaction each, so every answer is consistent with one seq."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Protocol

import asyncpg

from .csv_format import CSV_COLUMNS, CSV_SQL
from .domain import ENTRY_ADDED, ENTRY_REMOVED, Change, Input, Version

# One lock per entry (or per subject's warning entry), taken in lock-id order so two instances
# never deadlock: objection and designation events of one entry can be in different partitions
# assigned to different instances. Two-key advisory locks: a key space of their own.
LOCK = """
SELECT count(pg_advisory_xact_lock(hashtext('credit:sharing'), h))
  FROM (SELECT DISTINCT hashtext(k) AS h FROM unnest($1::text[]) AS u(k) ORDER BY 1) AS keys
"""
# Taken last in the batch: the row lock is held only while the batch writes and commits.
ALLOCATE = "UPDATE change_seq SET value = value + $1 RETURNING value"
CURRENT_SEQ = "SELECT value FROM change_seq"

LOAD_INPUTS = """
SELECT event_id, entry_id, kind, recorded_at, arrival, data, reason
  FROM inputs WHERE entry_id = ANY($1::text[])
"""
INPUT_COLUMNS = ["event_id", "entry_id", "kind", "recorded_at", "reason", "data"]

LOAD_ENTRIES = """
SELECT entry_id, list, subject_id, status, reason, public, entry, valid_from, valid_to, recorded_at, seq
  FROM entries WHERE entry_id = ANY($1::text[])
"""
OPEN_WARNINGS = """
SELECT subject_id, entry_id FROM entries
 WHERE subject_id = ANY($1::text[]) AND list = 'warning' AND status = 'active'
"""
DELETE_ENTRIES = "DELETE FROM entries WHERE entry_id = ANY($1::text[])"
ENTRY_COLUMNS = [
    "entry_id",
    "list",
    "subject_id",
    "field",
    "standard",
    "unit",
    "region",
    "public",
    "status",
    "reason",
    "under_objection",
    "entry",
    "valid_from",
    "valid_to",
    "recorded_at",
    "seq",
]
DELETE_HISTORY = "DELETE FROM history WHERE entry_id = ANY($1::text[])"
HISTORY_COLUMNS = [
    "entry_id",
    "version",
    "list",
    "subject_id",
    "public",
    "status",
    "reason",
    "entry",
    "record",
    "valid_from",
    "valid_to",
    "recorded_at",
    "superseded_at",
    "cause",
]
CHANGE_COLUMNS = [
    "seq",
    "event_id",
    "type",
    "list",
    "entry_id",
    "subject_id",
    "field",
    "unit",
    "region",
    "public",
    "at",
    "cause",
    "public_sent",
    "data",
    "decided_on",
    "published_at",
    "imported",
]

# "Was X on a list at A, as known at K" in one query: the version known at K (recorded at or before
# K, not superseded by then; with no K, the latest) whose validity overlaps [A.start, A.end). The
# documents come as JSON text, to be passed through (the public view leaves the record out).
SUBJECT_AT = """
SELECT entry_id, list, status, reason, public, entry::text AS entry,
       CASE WHEN $5::boolean THEN NULL ELSE record::text END AS record,
       valid_from, valid_to, recorded_at, superseded_at
  FROM history
 WHERE subject_id = $1
   AND CASE WHEN $2::timestamptz IS NULL THEN superseded_at IS NULL
            ELSE recorded_at <= $2 AND (superseded_at IS NULL OR superseded_at > $2) END
   AND valid_from < $4 AND (valid_to IS NULL OR valid_to > $3)
   AND (NOT $5::boolean OR public)
 ORDER BY list, valid_from, entry_id
"""

# The filters every list read takes: $2 field, $3 unit, $4 region prefix, $5 public only.
_FILTERS = """
   AND ($2::text IS NULL OR {t}.field = $2) AND ($3::text IS NULL OR {t}.unit = $3)
   AND ($4::text IS NULL OR {t}.region LIKE $4 || '%') AND (NOT $5::boolean OR {t}.public)
"""

# A page of list $1 as it stood at seq $6, after entry id $7, at most $8 entries: entries unchanged
# since $6 from the current view; those changed since, from their last change at or before $6.
SNAPSHOT_PAGE = f"""
WITH unchanged AS (
    SELECT e.entry_id, e.entry, e.public FROM entries e
     WHERE e.list = $1 AND e.status = 'active' AND e.seq <= $6 AND e.entry_id > $7
       {_FILTERS.format(t="e")}
     ORDER BY e.entry_id LIMIT $8
), changed AS (
    SELECT DISTINCT ON (c.entry_id) c.entry_id, c.data -> 'entry' AS entry, c.public, c.type
      FROM entries e JOIN changes c ON c.entry_id = e.entry_id AND c.seq <= $6
     WHERE e.list = $1 AND e.seq > $6 AND e.entry_id > $7
       {_FILTERS.format(t="e")}
     ORDER BY c.entry_id, c.seq DESC
)
SELECT entry_id, entry, public FROM unchanged
UNION ALL
SELECT entry_id, entry, public FROM changed WHERE type <> '{ENTRY_REMOVED}'
ORDER BY entry_id LIMIT $8
"""

# Changes after seq $6 ($1 list or null), at most $7.
CHANGES_PAGE = f"""
SELECT seq, event_id, type, public, data FROM changes c
 WHERE c.seq > $6 AND ($1::text IS NULL OR c.list = $1)
   {_FILTERS.format(t="c")}
   AND (NOT $5::boolean OR c.public_sent)
 ORDER BY c.seq LIMIT $7
"""

# The current view of list $1 for an export, in entry id order.
EXPORT = f"""
SELECT e.entry, e.public FROM entries e
 WHERE e.list = $1 AND e.status = 'active'
   {_FILTERS.format(t="e")}
 ORDER BY e.entry_id
"""
EXPORT_TEXT = f"""
SELECT e.entry::text FROM entries e
 WHERE e.list = $1 AND e.status = 'active'
   {_FILTERS.format(t="e")}
 ORDER BY e.entry_id
"""


# The internal CSV export's rows, rendered by PostgreSQL's COPY (asyncpg inlines the arguments with
# the server's quote_literal, as COPY takes no parameters).
EXPORT_CSV = f"""
SELECT {", ".join(f'{CSV_SQL[c]} AS "{c}"' for c in CSV_COLUMNS)} FROM entries e
 WHERE e.list = $1 AND e.status = 'active'
   {_FILTERS.format(t="e")}
 ORDER BY e.entry_id
"""

COUNTS = "SELECT list, status, count(*) AS n FROM entries GROUP BY list, status ORDER BY list, status"

# Dashboard reads. Each list's size is counted once (an index-only scan of entries_active) and then
# kept up to date from the changes after the seq it was counted at: an entry_added makes a list one
# longer, an entry_removed one shorter (domain.change_between), so each refresh reads only the new
# changes (the changes primary key), never the whole list.
LIST_SIZES = "SELECT list, count(*) AS n FROM entries WHERE status = 'active' GROUP BY list"
LIST_SIZE_CHANGES = f"""
SELECT list, count(*) FILTER (WHERE type = '{ENTRY_ADDED}') - count(*) FILTER (WHERE type = '{ENTRY_REMOVED}') AS n
  FROM changes WHERE seq > $1 GROUP BY list
"""
CHANGE_EVENT = "SELECT event_id FROM changes WHERE seq = $1"
RECENT_CHANGES = """
SELECT seq, type, list, entry_id, subject_id, unit, at, data ->> 'reason' AS reason, public_sent
  FROM changes ORDER BY seq DESC LIMIT $1
"""
RECENT_CHANGE_MIX = """
SELECT list, type, count(*) AS n FROM (SELECT list, type FROM changes ORDER BY seq DESC LIMIT $1) AS recent
 GROUP BY list, type
"""


@dataclass(frozen=True, slots=True)
class Filters:
    """What a list read is narrowed to (None: everything)."""

    field: str | None = None
    unit: str | None = None
    region_prefix: str | None = None
    public_only: bool = False

    def args(self) -> tuple[Any, ...]:
        return (self.field, self.unit, self.region_prefix, self.public_only)


def version_of(row: asyncpg.Record) -> tuple[Version, int | None]:
    """A current version as the entries table has it, and the seq of its last change."""
    version = Version(
        entry_id=row["entry_id"],
        list=row["list"],
        subject_id=row["subject_id"],
        status=row["status"],
        reason=row["reason"],
        public=row["public"],
        entry=row["entry"],
        record={},
        valid_from=row["valid_from"],
        valid_to=row["valid_to"],
        recorded_at=row["recorded_at"],
        cause="",
    )
    return version, row["seq"]


def _date(text: str | None) -> date | None:
    return None if text is None else date.fromisoformat(text)


@dataclass(frozen=True, slots=True)
class ChangeRow:
    """A change as it is stored and published."""

    seq: int
    event_id: str
    change: Change
    cause: str
    data: dict[str, Any]
    public_data: dict[str, Any] | None
    published_at: datetime | None = None
    imported: bool = False  # an entry of a historical import: its publication delay is not one


class Store(Protocol):
    """What the consumer's handlers read and write: `SharingStore` in PostgreSQL,
    `memory.MemoryStore` in tests and the demo."""

    async def lock(self, keys: Iterable[str]) -> None: ...
    async def load_inputs(self, entry_ids: Sequence[str]) -> dict[str, list[Input]]: ...
    async def load_entries(self, entry_ids: Sequence[str]) -> dict[str, tuple[Version, int | None]]: ...
    async def open_warnings(self, subject_ids: Sequence[str]) -> dict[str, str]: ...
    async def allocate(self, n: int) -> int: ...
    async def insert_inputs(self, inputs: Sequence[Input]) -> None: ...
    async def replace_history(self, versions: dict[str, list[Version]]) -> None: ...
    async def replace_entries(self, current: Sequence[tuple[Version, int | None]]) -> None: ...
    async def insert_changes(self, rows: Sequence[ChangeRow]) -> None: ...


class SharingStore:
    """One connection's view of the sharing tables (inside the caller's transaction)."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def lock(self, keys: Iterable[str]) -> None:
        keys = list(keys)
        if keys:
            await self.conn.fetchval(LOCK, keys)

    async def load_inputs(self, entry_ids: Sequence[str]) -> dict[str, list[Input]]:
        out: dict[str, list[Input]] = {i: [] for i in entry_ids}
        if entry_ids:
            for r in await self.conn.fetch(LOAD_INPUTS, list(entry_ids)):
                out[r["entry_id"]].append(
                    Input(
                        r["event_id"], r["entry_id"], r["kind"], r["recorded_at"], r["arrival"], r["data"], r["reason"]
                    )
                )
        return out

    async def load_entries(self, entry_ids: Sequence[str]) -> dict[str, tuple[Version, int | None]]:
        """The current version of each entry there is, with the seq of its last change."""
        if not entry_ids:
            return {}
        return {r["entry_id"]: version_of(r) for r in await self.conn.fetch(LOAD_ENTRIES, list(entry_ids))}

    async def open_warnings(self, subject_ids: Sequence[str]) -> dict[str, str]:
        """Subject id -> the entry id of its warning-list entry, for subjects on the warning list."""
        if not subject_ids:
            return {}
        return {r["subject_id"]: r["entry_id"] for r in await self.conn.fetch(OPEN_WARNINGS, list(subject_ids))}

    async def allocate(self, n: int) -> int:
        """Take `n` seqs; returns the first. Blocks while another transaction that took seqs is
        uncommitted, so seqs commit in order."""
        last = int(await self.conn.fetchval(ALLOCATE, n))
        return last - n + 1

    async def insert_inputs(self, inputs: Sequence[Input]) -> None:
        if inputs:
            await self.conn.copy_records_to_table(
                "inputs",
                records=[(i.event_id, i.entry_id, i.kind, i.recorded_at, i.reason, i.data) for i in inputs],
                columns=INPUT_COLUMNS,
            )

    async def replace_history(self, versions: dict[str, list[Version]]) -> None:
        """The whole history of each entry given, as rebuilt."""
        if not versions:
            return
        await self.conn.execute(DELETE_HISTORY, list(versions))
        rows = [
            (
                v.entry_id,
                n,
                v.list,
                v.subject_id,
                v.public,
                v.status,
                v.reason,
                v.entry,
                v.record,
                v.valid_from,
                v.valid_to,
                v.recorded_at,
                v.superseded_at,
                v.cause,
            )
            for vs in versions.values()
            for n, v in enumerate(vs, start=1)
        ]
        if rows:
            await self.conn.copy_records_to_table("history", records=rows, columns=HISTORY_COLUMNS)

    async def replace_entries(self, current: Sequence[tuple[Version, int | None]]) -> None:
        """Each entry's current version, with the seq of the last change published about it."""
        if not current:
            return
        await self.conn.execute(DELETE_ENTRIES, [v.entry_id for v, _ in current])
        await self.conn.copy_records_to_table(
            "entries",
            records=[
                (
                    v.entry_id,
                    v.list,
                    v.subject_id,
                    v.entry.get("field"),
                    v.entry.get("standard"),
                    v.entry.get("unit"),
                    v.entry.get("region"),
                    v.public,
                    v.status,
                    v.reason,
                    v.under_objection,
                    v.entry,
                    v.valid_from,
                    v.valid_to,
                    v.recorded_at,
                    seq,
                )
                for v, seq in current
            ],
            columns=ENTRY_COLUMNS,
        )

    async def insert_changes(self, rows: Sequence[ChangeRow]) -> None:
        if rows:
            await self.conn.copy_records_to_table(
                "changes",
                records=[
                    (
                        r.seq,
                        r.event_id,
                        r.change.type,
                        r.change.version.list,
                        r.change.version.entry_id,
                        r.change.version.subject_id,
                        r.change.version.entry.get("field"),
                        r.change.version.entry.get("unit"),
                        r.change.version.entry.get("region"),
                        r.change.version.public,
                        r.change.version.recorded_at,
                        r.cause,
                        r.public_data is not None,
                        r.data,
                        _date(r.change.decided_on),
                        r.published_at,
                        r.imported,
                    )
                    for r in rows
                ],
                columns=CHANGE_COLUMNS,
            )


# ---------------------------------------------------------------------------------------- reads

SNAPSHOT = {"isolation": "repeatable_read", "readonly": True}


async def subject_at(
    pool: asyncpg.Pool, subject_id: str, start: datetime, end: datetime, known_at: datetime | None, public_only: bool
) -> list[asyncpg.Record]:
    return list(await pool.fetch(SUBJECT_AT, subject_id, known_at, start, end, public_only))


async def snapshot_page(
    pool: asyncpg.Pool, list_: str, filters: Filters, snapshot_seq: int | None, after: str, limit: int
) -> tuple[int, list[asyncpg.Record]]:
    """A page of `list_` as of `snapshot_seq` (None: now, returning the seq it is as of)."""
    async with pool.acquire() as conn, conn.transaction(**SNAPSHOT):
        if snapshot_seq is None:
            snapshot_seq = int(await conn.fetchval(CURRENT_SEQ))
        rows = await conn.fetch(SNAPSHOT_PAGE, list_, *filters.args(), snapshot_seq, after, limit)
    return snapshot_seq, list(rows)


async def changes_page(
    pool: asyncpg.Pool, list_: str | None, filters: Filters, after: int, limit: int
) -> tuple[int, list[asyncpg.Record]]:
    """Changes after `after`, and the seq to ask after next: the last one returned when the page is
    full, else the last seq committed (every change up to it matching the filters was returned)."""
    async with pool.acquire() as conn, conn.transaction(**SNAPSHOT):
        rows = list(await conn.fetch(CHANGES_PAGE, list_, *filters.args(), after, limit))
        if len(rows) >= limit:
            return int(rows[-1]["seq"]), rows
        return max(after, int(await conn.fetchval(CURRENT_SEQ))), rows


async def last_seq(pool: asyncpg.Pool) -> int:
    return int(await pool.fetchval(CURRENT_SEQ))


async def counts(pool: asyncpg.Pool) -> list[dict[str, Any]]:
    return [dict(r) for r in await pool.fetch(COUNTS)]


async def list_sizes(
    pool: asyncpg.Pool, since: tuple[int, str | None] | None
) -> tuple[int, str | None, dict[str, int], bool]:
    """(seq, the event id of its change, sizes, whole) in one snapshot. With `since` = (seq, event
    id) of an earlier reading that still stands, `sizes` is each list's net change after it
    (`whole` False); otherwise each list's size (`whole` True)."""
    async with pool.acquire() as conn, conn.transaction(**SNAPSHOT):
        seq = int(await conn.fetchval(CURRENT_SEQ))
        mark = await conn.fetchval(CHANGE_EVENT, seq)
        if since is not None and since[0] <= seq and await conn.fetchval(CHANGE_EVENT, since[0]) == since[1]:
            rows = await conn.fetch(LIST_SIZE_CHANGES, since[0])
            whole = False
        else:
            rows = await conn.fetch(LIST_SIZES)
            whole = True
    return seq, mark, {r["list"]: int(r["n"]) for r in rows}, whole


async def recent_changes(pool: asyncpg.Pool, limit: int) -> list[dict[str, Any]]:
    return [dict(r) for r in await pool.fetch(RECENT_CHANGES, limit)]


async def recent_change_mix(pool: asyncpg.Pool, limit: int) -> list[dict[str, Any]]:
    """Changes by list and type among the last `limit` changes."""
    return [dict(r) for r in await pool.fetch(RECENT_CHANGE_MIX, limit)]
