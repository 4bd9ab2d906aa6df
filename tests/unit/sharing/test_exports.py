"""An export that fails (contracts.md, Integrity rules): before its first byte it answers a
problem; after it, the response is cut, never ended cleanly (a short download that ends cleanly is
stored by clients as a whole, empty or partial, snapshot)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from credit_common.http.app import create_http_app
from credit_common.http.health import HealthChecks
from credit_common.http.problems import PROBLEM_JSON
from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from services.sharing.exports import CHUNK_BYTES, ListExport
from services.sharing.store import Filters
from tests.support.tokens import auth_headers


class Broken(Exception):
    pass


class Conn:
    """A connection whose cursor yields `rows` and then fails (or fails first, with no rows)."""

    def __init__(self, rows: list[str]) -> None:
        self.rows = rows
        self.executed: list[str] = []

    @asynccontextmanager
    async def transaction(self, **_: Any) -> AsyncIterator[None]:
        yield

    async def execute(self, sql: str) -> None:
        self.executed.append(sql)

    async def fetchval(self, sql: str) -> int:
        return 41

    async def cursor(self, *_: Any, **__: Any) -> AsyncIterator[tuple[str]]:
        for row in self.rows:
            yield (row,)
        raise Broken("connection lost mid-export")


class Pool:
    def __init__(self, conn: Conn) -> None:
        self.conn = conn

    @asynccontextmanager
    async def acquire(self) -> AsyncIterator[Conn]:
        yield self.conn


def _app(conn: Conn) -> FastAPI:
    app = create_http_app("sharing", "Sharing", "test", HealthChecks(), CollectorRegistry())

    @app.get("/v1/export/black.jsonl")
    async def export() -> Any:
        return ListExport(Pool(conn), asyncio.Semaphore(1), "black", Filters(), "jsonl")

    return app


async def test_a_failure_before_the_first_byte_is_a_problem_not_an_empty_200() -> None:
    conn = Conn([])
    transport = httpx.ASGITransport(app=_app(conn), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t", headers=auth_headers()) as client:
        r = await client.get("/v1/export/black.jsonl")
    assert r.status_code == 503
    assert r.headers["content-type"] == PROBLEM_JSON
    assert "content-disposition" not in r.headers
    assert any("statement_timeout" in sql and "idle_in_transaction" in sql for sql in conn.executed)


async def test_a_failure_after_the_first_byte_cuts_the_download() -> None:
    conn = Conn(['{"entry_id": "' + "x" * CHUNK_BYTES + '"}'])  # one full chunk goes out, then it fails
    transport = httpx.ASGITransport(app=_app(conn))
    async with httpx.AsyncClient(transport=transport, base_url="http://t", headers=auth_headers()) as client:
        with pytest.raises(Broken):
            await client.get("/v1/export/black.jsonl")
