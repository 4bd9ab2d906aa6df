"""Streamed exports of a list's current view (`.jsonl`, `.csv`): one REPEATABLE READ transaction
and a server-side cursor per download, sent in chunks as the rows come, so memory stays flat
however long the list is. The response carries the seq the export is consistent with
(`X-Snapshot-Seq`): a liaison follows `GET /v1/changes?after=` from it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime

import asyncpg
import orjson
from credit_common.http.problems import Problem
from credit_common.telemetry.logging import get_logger
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from . import csv_format, directory, domain
from .store import CURRENT_SEQ, EXPORT, EXPORT_CSV, EXPORT_TEXT, SNAPSHOT, Filters

CHUNK_BYTES = 256 * 1024
PREFETCH = 1000
log = get_logger(__name__)
#: The longest an export may keep its snapshot open (a million entries take well under a minute).
EXPORT_SECONDS = 600
SNAPSHOT_LIMITS = "SET LOCAL statement_timeout = '600s'; SET LOCAL idle_in_transaction_session_timeout = '60s'"

#: Sends one chunk of the body (`more`: whether others follow); the first also sends the headers.
Emit = Callable[[bytes, bool], Awaitable[None]]
MEDIA_TYPES = {"jsonl": "application/jsonl", "csv": "text/csv; charset=utf-8"}


class ListExport(Response):
    """An export as an ASGI response: it opens its snapshot only when it is sent, and releases the
    connection however the sending ends (client gone included)."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        slots: asyncio.Semaphore,
        list_: str,
        filters: Filters,
        fmt: str,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        super().__init__(status_code=200)
        self.pool = pool
        self.slots = slots  # a bound on concurrent exports, so the consumer always gets connections
        self.list = list_
        self.filters = filters
        self.fmt = fmt
        self.now = now  # the platform clock: each export is recorded (who, what, when) when given
        self.seq: int | None = None
        self.sent = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The headers go out with the first chunk, not before: an export that fails before it has
        anything to send answers a problem (503), and one that fails later raises, so the server
        aborts the chunked stream and the client sees a broken download, never a short one that
        ends cleanly (contracts.md, Integrity rules)."""
        headers: list[tuple[bytes, bytes]] = []
        started = False

        async def emit(body: bytes, more: bool) -> None:
            nonlocal started
            if not started:
                await send({"type": "http.response.start", "status": 200, "headers": headers})
                started = True
            await send({"type": "http.response.body", "body": body, "more_body": more})
            self.sent += len(body)

        complete = False
        try:
            await self._stream(headers, emit)
            complete = True
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if started:
                log.error("export_failed_midway", list=self.list, fmt=self.fmt, error=type(exc).__name__)
                raise  # the server cuts the connection: no clean end of the chunked body
            log.error("export_failed", list=self.list, fmt=self.fmt, error=type(exc).__name__)
            raise Problem(503, "Export failed", "the export could not be read; try again") from exc
        finally:
            if self.now is not None:
                await directory.record(
                    self.pool,
                    at=self.now(),
                    principal=directory.who(scope),
                    kind="export",
                    list_=self.list,
                    filters=self.filters,
                    fmt=self.fmt,
                    snapshot_seq=self.seq,
                    size=self.sent,
                    complete=complete,
                )

    async def _stream(self, headers: list[tuple[bytes, bytes]], emit: Emit) -> None:
        public = self.filters.public_only
        prefix = "public-" if public else ""
        async with (
            asyncio.timeout(EXPORT_SECONDS),
            self.slots,
            self.pool.acquire() as conn,
            conn.transaction(**SNAPSHOT),
        ):
            # A snapshot holds back vacuum for the whole database while it is open: bounded, and
            # given up by the server too if the client stops reading.
            await conn.execute(SNAPSHOT_LIMITS)
            seq = self.seq = int(await conn.fetchval(CURRENT_SEQ))
            filename = f"{prefix}{self.list}-{seq}.{self.fmt}"
            headers += [
                (b"content-type", MEDIA_TYPES[self.fmt].encode()),
                (b"x-snapshot-seq", str(seq).encode()),
                (b"content-disposition", f'attachment; filename="{filename}"'.encode()),
                (b"cache-control", b"no-store"),
            ]
            if self.fmt == "csv" and not public:
                await self._copy_csv(conn, emit)
                return
            columns = csv_format.PUBLIC_CSV_COLUMNS if public else csv_format.CSV_COLUMNS
            parts: list[bytes] = []
            size = 0
            if self.fmt == "csv":
                parts.append(csv_format.csv_text([columns]).encode())
            rows: list[list[str]] = []
            raw_jsonl = self.fmt == "jsonl" and not public
            sql = EXPORT_TEXT if raw_jsonl else EXPORT
            async for row in conn.cursor(sql, self.list, *self.filters.args(), prefetch=PREFETCH):
                if raw_jsonl:
                    line = row[0].encode() + b"\n"  # the stored entry as it is: no decode, no encode
                else:
                    entry = domain.public_view(row["entry"], public=row["public"]) if public else row["entry"]
                    if entry is None:
                        continue
                    if self.fmt == "csv":
                        rows.append(csv_format.csv_row(entry, columns))
                        if len(rows) < 500:
                            continue
                        line = csv_format.csv_text(rows).encode()
                        rows.clear()
                    else:
                        line = orjson.dumps(entry) + b"\n"
                parts.append(line)
                size += len(line)
                if size >= CHUNK_BYTES:
                    await emit(b"".join(parts), True)
                    parts.clear()
                    size = 0
            if rows:
                parts.append(csv_format.csv_text(rows).encode())
            await emit(b"".join(parts), False)

    async def _copy_csv(self, conn: asyncpg.Connection, emit: Emit) -> None:
        """The internal CSV, rendered by PostgreSQL (COPY ... CSV HEADER), passed on in chunks."""
        parts: list[bytes] = []
        size = 0

        async def forward(data: bytes) -> None:
            nonlocal size
            parts.append(data)
            size += len(data)
            if size >= CHUNK_BYTES:
                body = b"".join(parts)
                parts.clear()
                size = 0
                await emit(body, True)

        await conn.copy_from_query(
            EXPORT_CSV, self.list, *self.filters.args(), output=forward, format="csv", header=True
        )
        await emit(b"".join(parts), False)
