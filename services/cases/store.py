"""The cases service's tables (its own schema only): designations, objections, cases and the
tallies kept beside them."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Protocol

import asyncpg

from .domain import COUNTED_LISTS, Entry

LOAD_DESIGNATIONS = "SELECT record, updated_at FROM designations WHERE designation_id = ANY($1::text[])"
OPEN_OBJECTIONS = """
SELECT objection_id, designation_id FROM objections WHERE designation_id = ANY($1::text[]) AND status = 'open'
"""
UPSERT_DESIGNATIONS = """
INSERT INTO designations (designation_id, subject_id, list, field, unit, province, status, effective_from,
                          effective_to, decided_on, removed_on, removal_reason, record, updated_at)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                     $8::date[], $9::date[], $10::date[], $11::date[], $12::text[], $13::jsonb[], $14::timestamptz[])
ON CONFLICT (designation_id) DO UPDATE
   SET subject_id = EXCLUDED.subject_id, list = EXCLUDED.list, field = EXCLUDED.field, unit = EXCLUDED.unit,
       province = EXCLUDED.province, status = EXCLUDED.status, effective_from = EXCLUDED.effective_from,
       effective_to = EXCLUDED.effective_to, decided_on = EXCLUDED.decided_on, removed_on = EXCLUDED.removed_on,
       removal_reason = EXCLUDED.removal_reason, record = EXCLUDED.record, updated_at = EXCLUDED.updated_at
"""
UPSERT_OBJECTIONS = """
INSERT INTO objections (objection_id, designation_id, status, opened_at, closed_at, outcome)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::timestamptz[], $6::text[])
ON CONFLICT (objection_id) DO UPDATE
   SET status = EXCLUDED.status, opened_at = coalesce(objections.opened_at, EXCLUDED.opened_at),
       closed_at = EXCLUDED.closed_at, outcome = EXCLUDED.outcome
"""
CLOSE_OBJECTIONS_OF = """
UPDATE objections SET status = 'closed', closed_at = $2, outcome = coalesce(outcome, 'entry_removed')
 WHERE designation_id = ANY($1::text[]) AND status = 'open'
"""
ADD_CASE_TALLIES = """
INSERT INTO case_tallies AS t (year, month, province, unit, field, list, measure, measure_kind, cases, media_cases,
                               typical_cases)
SELECT * FROM unnest($1::int[], $2::int[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
                     $9::bigint[], $10::bigint[], $11::bigint[])
ON CONFLICT (year, month, province, unit, field, list, measure) DO UPDATE
   SET cases = t.cases + EXCLUDED.cases, media_cases = t.media_cases + EXCLUDED.media_cases,
       typical_cases = t.typical_cases + EXCLUDED.typical_cases
"""
ADD_DESIGNATION_TALLIES = """
INSERT INTO designation_tallies AS t (year, province, list, designations)
SELECT * FROM unnest($1::int[], $2::text[], $3::text[], $4::bigint[])
ON CONFLICT (year, province, list) DO UPDATE SET designations = t.designations + EXCLUDED.designations
"""
CASE_COLUMNS = (
    "case_id",
    "designation_id",
    "subject_id",
    "subject",
    "list",
    "field",
    "standard",
    "public",
    "mou",
    "measure",
    "measure_kind",
    "unit",
    "province",
    "applied_on",
    "outcome",
    "description",
    "typical",
    "media",
    "media_reported",
    "reported_by",
    "recorded_at",
    "campaign",
)
TALLY_KEY = ("year", "month", "province", "unit", "field", "list", "measure", "measure_kind")


CASES_NAMED = "SELECT case_id FROM cases WHERE case_id = ANY($1::text[])"


@dataclass(slots=True)
class Loaded:
    entries: dict[str, Entry]
    open_objections: dict[str, set[str]]  # designation id -> ids of its open objections


ObjectionRow = tuple[str, str, str, datetime | None, datetime | None, str | None]
"""(objection_id, designation_id, status, opened_at, closed_at, outcome)"""


class Store(Protocol):
    """What the handlers read and write: `CasesStore` in PostgreSQL, `memory.MemoryStore` in tests."""

    async def load(self, designation_ids: Iterable[str]) -> Loaded: ...
    async def save_entries(self, entries: Sequence[tuple[Entry, datetime]]) -> None: ...
    async def add_designations_made(self, made: Counter[tuple[int, str, str]]) -> None: ...
    async def save_objections(self, rows: Sequence[ObjectionRow]) -> None: ...
    async def close_objections_of(self, designation_ids: Sequence[str], at: datetime) -> None: ...
    async def add_cases(self, cases: Sequence[tuple[Any, ...]]) -> None: ...
    async def cases_named(self, case_ids: Sequence[str]) -> set[str]: ...


class CasesStore:
    """The writes of one consumer transaction."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def load(self, designation_ids: Iterable[str]) -> Loaded:
        ids = sorted(set(designation_ids))
        if not ids:
            return Loaded({}, {})
        rows = await self.conn.fetch(LOAD_DESIGNATIONS, ids)
        entries = {r["record"]["designation_id"]: Entry.of(r["record"], r["updated_at"]) for r in rows}
        open_: dict[str, set[str]] = {}
        for r in await self.conn.fetch(OPEN_OBJECTIONS, ids):
            open_.setdefault(r["designation_id"], set()).add(r["objection_id"])
        return Loaded(entries, open_)

    async def save_entries(self, entries: Sequence[tuple[Entry, datetime]]) -> None:
        if not entries:
            return
        cols: list[list[Any]] = [[] for _ in range(14)]
        for e, at in entries:
            values = (
                e.designation_id,
                e.subject_id,
                e.list,
                e.field,
                e.unit,
                e.province,
                e.status,
                e.effective_from,
                e.effective_to,
                e.decided_on,
                e.removed_on,
                e.removal_reason,
                e.record,
                at,
            )
            for col, v in zip(cols, values, strict=True):
                col.append(v)
        await self.conn.execute(UPSERT_DESIGNATIONS, *cols)

    async def add_designations_made(self, made: Counter[tuple[int, str, str]]) -> None:
        if not made:
            return
        keys = sorted(made)
        await self.conn.execute(
            ADD_DESIGNATION_TALLIES,
            [k[0] for k in keys],
            [k[1] for k in keys],
            [k[2] for k in keys],
            [made[k] for k in keys],
        )

    async def save_objections(self, rows: Sequence[ObjectionRow]) -> None:
        if rows:
            await self.conn.execute(UPSERT_OBJECTIONS, *(list(c) for c in zip(*rows, strict=True)))

    async def close_objections_of(self, designation_ids: Sequence[str], at: datetime) -> None:
        if designation_ids:
            await self.conn.execute(CLOSE_OBJECTIONS_OF, list(designation_ids), at)

    async def cases_named(self, case_ids: Sequence[str]) -> set[str]:
        """Which of `case_ids` name a recorded case already."""
        if not case_ids:
            return set()
        return {r["case_id"] for r in await self.conn.fetch(CASES_NAMED, list(case_ids))}

    async def add_cases(self, cases: Sequence[tuple[Any, ...]]) -> None:
        """Insert the accepted cases (COPY: the hot path) and add them to the tallies, one
        statement for the batch (rows in key order, so concurrent instances never deadlock)."""
        if not cases:
            return
        await self.conn.copy_records_to_table("cases", records=cases, columns=CASE_COLUMNS)
        tallies: dict[tuple[Any, ...], list[int]] = {}
        for c in cases:
            applied_on: date = c[13]
            # (year, month, province, unit, field, list, measure, measure_kind)
            key = (applied_on.year, applied_on.month, c[12], c[11], c[5], c[4], c[9], c[10])
            t = tallies.setdefault(key, [0, 0, 0])
            t[0] += 1
            t[1] += 1 if provincial_media(c[17]) else 0
            t[2] += 1 if c[16] else 0
        keys = sorted(tallies)
        columns: list[list[Any]] = [[k[i] for k in keys] for i in range(len(TALLY_KEY))]
        columns += [[tallies[k][i] for k in keys] for i in range(3)]
        await self.conn.execute(ADD_CASE_TALLIES, *columns)


def provincial_media(media: Sequence[dict[str, Any]]) -> bool:
    """Whether a case counts for the media indicator: reported by a provincial media platform
    (the notice counts "typical cases reported by provincial media platforms"); national and
    local outlets are kept with the case but do not count."""
    return any(m.get("level") == "provincial" for m in media)


# ------------------------------------------------------------------------------------- reads


def _year_bounds(year: int) -> tuple[date, date]:
    return date(year, 1, 1), date(year + 1, 1, 1)


async def get_case(db: asyncpg.Pool, case_id: str) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await db.fetchrow("SELECT * FROM cases WHERE case_id = $1", case_id)
    return row


async def list_cases(
    db: asyncpg.Pool,
    *,
    year: int | None,
    province: str | None,
    measure: str | None,
    typical: bool,
    after: str,
    limit: int,
) -> list[asyncpg.Record]:
    """Cases in id order after `after`, filtered (each filter optional)."""
    start, end = _year_bounds(year) if year is not None else (None, None)
    rows: list[asyncpg.Record] = await db.fetch(
        """
        SELECT * FROM cases
         WHERE case_id > $1
           AND ($2::date IS NULL OR (applied_on >= $2 AND applied_on < $3))
           AND ($4::text IS NULL OR province = $4)
           AND ($5::text IS NULL OR measure = $5)
           AND (NOT $6 OR (typical AND public))
         ORDER BY case_id
         LIMIT $7
        """,
        after,
        start,
        end,
        province,
        measure,
        typical,
        limit,
    )
    return rows


async def indicator_counts(db: asyncpg.Pool, year: int) -> tuple[dict[str, tuple[int, int]], dict[str, int]]:
    """The year's (cases, media-reported cases) per province and red and black designations made
    per province, from the tallies."""
    cases = await db.fetch(
        "SELECT province, sum(cases)::bigint AS cases, sum(media_cases)::bigint AS media"
        "  FROM case_tallies WHERE year = $1 GROUP BY province",
        year,
    )
    made = await db.fetch(
        "SELECT province, sum(designations)::bigint AS n FROM designation_tallies"
        " WHERE year = $1 AND list = ANY($2::text[]) GROUP BY province",
        year,
        list(COUNTED_LISTS),
    )
    return {r["province"]: (r["cases"], r["media"]) for r in cases}, {r["province"]: r["n"] for r in made}


TALLY_DIMENSIONS = ("province", "unit", "field", "list", "measure", "month")


async def tallies(db: asyncpg.Pool, year: int, province: str | None) -> dict[str, list[dict[str, Any]]]:
    """The year's cases counted by each dimension (one query per dimension, over the tallies)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for dim in TALLY_DIMENSIONS:
        rows = await db.fetch(
            f"SELECT {dim} AS key, sum(cases)::bigint AS cases, sum(media_cases)::bigint AS media_reported,"
            f"       sum(typical_cases)::bigint AS typical"
            f"  FROM case_tallies WHERE year = $1 AND ($2::text IS NULL OR province = $2)"
            f" GROUP BY {dim} ORDER BY {dim}",
            year,
            province,
        )
        out[dim] = [dict(r) for r in rows]
    return out


EFFICACY = """
WITH reached AS (
    SELECT measure, subject_id, designation_id, min(applied_on) AS first_on
      FROM cases WHERE applied_on >= $1 AND applied_on < $2
     GROUP BY measure, subject_id, designation_id
), restored AS (
    SELECT r.measure, r.subject_id, min(d.removed_on - r.first_on) AS days
      FROM reached r JOIN designations d USING (designation_id)
     WHERE d.list = 'black' AND d.removal_reason = 'restored' AND d.removed_on >= r.first_on
     GROUP BY r.measure, r.subject_id
), per_measure AS (
    SELECT measure, count(*)::bigint AS cases, count(DISTINCT subject_id)::bigint AS subjects
      FROM cases WHERE applied_on >= $1 AND applied_on < $2 GROUP BY measure
)
SELECT m.measure, m.cases, m.subjects, coalesce(x.n, 0)::bigint AS restored, x.median_days
  FROM per_measure m
  LEFT JOIN (SELECT measure, count(*) AS n,
                    percentile_cont(0.5) WITHIN GROUP (ORDER BY days) AS median_days
               FROM restored GROUP BY measure) x USING (measure)
 ORDER BY m.measure
"""


async def efficacy(db: asyncpg.Pool, year: int) -> list[asyncpg.Record]:
    """Per measure: the year's cases, the subjects they reached, how many of those later left the
    black list by restoration of an entry the measure was applied on, and the median days to it."""
    rows: list[asyncpg.Record] = await db.fetch(EFFICACY, *_year_bounds(year))
    return rows


async def designated_fields(db: asyncpg.Pool) -> set[str]:
    """Every field in which a designation was ever made (a loose index scan over the field index)."""
    rows = await db.fetch(
        """
        WITH RECURSIVE f AS (
            (SELECT field FROM designations ORDER BY field LIMIT 1)
            UNION ALL
            SELECT (SELECT d.field FROM designations d WHERE d.field > f.field ORDER BY d.field LIMIT 1)
              FROM f WHERE f.field IS NOT NULL
        )
        SELECT field FROM f WHERE field IS NOT NULL
        """
    )
    return {r["field"] for r in rows}


async def measure_totals(db: asyncpg.Pool) -> dict[str, int]:
    rows = await db.fetch("SELECT measure, sum(cases)::bigint AS n FROM case_tallies GROUP BY measure")
    return {r["measure"]: r["n"] for r in rows}


async def counts(db: asyncpg.Pool) -> dict[str, Any]:
    """Small numbers for operators: designations known, open objections, cases by kind."""
    designations = await db.fetch("SELECT status, count(*)::bigint AS n FROM designations GROUP BY status")
    objections = await db.fetch("SELECT status, count(*)::bigint AS n FROM objections GROUP BY status")
    cases = await db.fetch("SELECT measure_kind, sum(cases)::bigint AS n FROM case_tallies GROUP BY measure_kind")
    return {
        "designations": {r["status"]: r["n"] for r in designations},
        "objections": {r["status"]: r["n"] for r in objections},
        "cases": {r["measure_kind"]: r["n"] for r in cases},
    }


async def recent_cases(db: asyncpg.Pool, limit: int, today: date) -> list[asyncpg.Record]:
    """The latest cases applied by `today` (a backward scan of the applied_on index; cases that
    tests recorded with a clock moved years ahead stay out)."""
    rows: list[asyncpg.Record] = await db.fetch(
        "SELECT case_id, designation_id, measure, measure_kind, unit, province, applied_on, typical, media_reported"
        "  FROM cases WHERE applied_on <= $2 ORDER BY applied_on DESC, case_id DESC LIMIT $1",
        limit,
        today,
    )
    return rows
