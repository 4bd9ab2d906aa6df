"""Connection pools: jsonb as Python values (orjson, binary format), search_path = the service's schema."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import asyncpg
import orjson

Pool = asyncpg.Pool
Connection = asyncpg.Connection


def _encode_jsonb(value: Any) -> bytes:
    return b"\x01" + orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)


def _decode_jsonb(data: bytes) -> Any:
    return orjson.loads(data[1:])


async def init_connection(conn: asyncpg.Connection) -> None:
    """Per-connection setup: jsonb and json as Python values."""
    await conn.set_type_codec(
        "jsonb", schema="pg_catalog", encoder=_encode_jsonb, decoder=_decode_jsonb, format="binary"
    )
    await conn.set_type_codec(
        "json",
        schema="pg_catalog",
        encoder=lambda v: orjson.dumps(v).decode(),
        decoder=orjson.loads,
        format="text",
    )


def dsn_for_role(dsn: str, user: str, password: str) -> str:
    """The same server and database as `dsn`, logged in as `user`."""
    parts = urlsplit(dsn)
    host = parts.hostname or "127.0.0.1"
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{host}"
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Release without asyncpg's default reset query (RESET ALL, CLOSE ALL, UNLISTEN *, advisory
    unlock): a round trip on every release, a third of a point read's time. asyncpg still rolls
    back a transaction left open; pooled connections never take session state (no SET, LISTEN
    or session-level advisory lock: those use a dedicated connection from `connect`)."""


#: The longest a pooled session may sit in an open transaction waiting for its client. A client
#: cut off from the server (a network partition, a process stopped mid-batch) would otherwise
#: hold its row locks for as long as the server keeps the dead session (hours, by TCP's
#: keepalive), and every other instance waiting on those rows with it. No transaction of ours
#: waits on its client for more than a batch's Python work between two statements.
IDLE_IN_TRANSACTION_MS = 30_000


async def create_pool(
    dsn: str, *, schema: str, application_name: str, min_size: int = 1, max_size: int = 10
) -> asyncpg.Pool:
    """A pool whose connections see `schema` first and decode json/jsonb."""
    pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        init=init_connection,
        reset=_keep_session,
        server_settings={
            "search_path": schema,
            "application_name": application_name,
            "idle_in_transaction_session_timeout": str(IDLE_IN_TRANSACTION_MS),
        },
        command_timeout=60,
    )
    assert pool is not None
    return pool


async def connect(
    dsn: str, *, schema: str | None = None, application_name: str = "credit", lease_s: float | None = None
) -> asyncpg.Connection:
    """One dedicated connection (for LISTEN, session advisory locks, migrations).

    With `lease_s` the session is a lease: the server ends it (and every lock it holds) once it
    has heard nothing from its client for `lease_s` (`idle_session_timeout`), and the client gives
    up on any statement after half that (`command_timeout`). A holder cut off from the server
    stops acting before its lock can pass to another, and the lock passes within `lease_s`."""
    settings = {"application_name": application_name}
    if schema:
        settings["search_path"] = schema
    if lease_s is None:
        conn = await asyncpg.connect(dsn, server_settings=settings)
    else:
        settings["idle_session_timeout"] = str(int(lease_s * 1000))
        conn = await asyncpg.connect(dsn, server_settings=settings, timeout=lease_s, command_timeout=lease_s / 2)
    await init_connection(conn)
    return conn
