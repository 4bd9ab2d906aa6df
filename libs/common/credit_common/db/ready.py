"""`python -m credit_common.db.ready DSN`: exit 0 when PostgreSQL answers `SELECT 1`."""

from __future__ import annotations

import asyncio
import sys

import asyncpg


async def database_answers(dsn: str, timeout: float = 5.0) -> bool:
    """True when a connection and `SELECT 1` succeed within `timeout` seconds."""
    try:
        conn = await asyncpg.connect(dsn, timeout=timeout)
    except Exception:
        return False
    try:
        return await conn.fetchval("SELECT 1", timeout=timeout) == 1
    finally:
        await conn.close()


if __name__ == "__main__":
    sys.exit(0 if asyncio.run(database_answers(sys.argv[1])) else 1)
