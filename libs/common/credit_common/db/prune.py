"""Pruning what outlived its use (contracts.md, Integrity rules): an inbox row exists so that a
redelivered message changes nothing, and a message cannot be redelivered once its topic's
retention has dropped it. Inbox rows of topics with a retention are deleted a day after it (a
grace for clocks and for a consumer that was down); rows of topics that never expire stay, since
a replay from the beginning must still find them. The designation service prunes its request
ledger the same way (`prune_ledger`). The signed audit of accepted requests is never pruned.

Deletes go in chunks, so a first run over a long history holds no lock for long; without an index
on `processed_at` (it would cost every insert of the hottest table) a chunk's scan finds the old
rows first, at the heap's start."""

from __future__ import annotations

import logging
from datetime import timedelta

import asyncpg

from credit_common.messaging.topics import TOPICS

log = logging.getLogger(__name__)

GRACE = timedelta(days=1)
CHUNK = 10_000
#: Topic -> how long its messages can come back (its retention), for every topic that expires.
RETAINED: dict[str, timedelta] = {t.name: timedelta(days=t.retention_days) for t in TOPICS if t.retention_days}

PRUNE_INBOX_SQL = """
DELETE FROM inbox WHERE ctid = ANY(ARRAY(
    SELECT ctid FROM inbox WHERE topic = ANY($1::text[]) AND processed_at < now() - $2::interval LIMIT $3
))
"""
#: Answered requests of the designation service's ledger, once their answers left the feedback
#: topic; a request still pending stays (it is an anomaly an operator must see).
PRUNE_LEDGER_SQL = """
DELETE FROM requests WHERE ctid = ANY(ARRAY(
    SELECT ctid FROM requests WHERE status <> 'pending' AND answered_at < now() - $1::interval LIMIT $2
))
"""


async def _chunks(pool: asyncpg.Pool, sql: str, *args: object) -> int:
    total = 0
    while True:
        status = await pool.execute(sql, *args)
        n = int(status.split()[-1])
        total += n
        if n < CHUNK:
            return total


async def prune_inbox(pool: asyncpg.Pool, retained: dict[str, timedelta] | None = None) -> int:
    """Delete the inbox rows no redelivery can need any more; returns how many."""
    by_retention: dict[timedelta, list[str]] = {}
    for topic, retention in (retained if retained is not None else RETAINED).items():
        by_retention.setdefault(retention, []).append(topic)
    total = 0
    for retention, names in sorted(by_retention.items()):
        n = await _chunks(pool, PRUNE_INBOX_SQL, names, retention + GRACE, CHUNK)
        if n:
            log.info("pruned %d inbox rows of %s (older than their retention of %s)", n, ", ".join(names), retention)
        total += n
    return total


async def prune_ledger(pool: asyncpg.Pool, retention: timedelta) -> int:
    """Delete the answered requests of the designation service's ledger older than `retention`
    (and the grace); returns how many."""
    n = await _chunks(pool, PRUNE_LEDGER_SQL, retention + GRACE, CHUNK)
    if n:
        log.info("pruned %d answered requests from the ledger (older than %s)", n, retention)
    return n
