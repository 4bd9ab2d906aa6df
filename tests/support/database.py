"""Database logins of the tests' service schemas (contracts.md, Security): every schema a test or a
service process of the suite uses has an owner (migrations) and a runtime role (rows only), made
by the admin connection with secrets generated once per test session."""

from __future__ import annotations

import asyncpg
from credit_common.db import pool as dbpool
from credit_common.db.provision import new_secret
from credit_common.db.roles import ensure_service_schema, owner_name, role_name

RUNTIME_SECRET = new_secret()
OWNER_SECRET = new_secret()


async def make_schema(admin: asyncpg.Connection, schema: str) -> str:
    """The schema and its two roles (idempotent); the runtime role's name."""
    return await ensure_service_schema(admin, schema, RUNTIME_SECRET, OWNER_SECRET)


def runtime_dsn(admin_url: str, schema: str) -> str:
    """The runtime role's login (what a service of `schema` works as)."""
    return dbpool.dsn_for_role(admin_url, role_name(schema), RUNTIME_SECRET)


def owner_dsn(admin_url: str, schema: str) -> str:
    """The owner's login (migrations)."""
    return dbpool.dsn_for_role(admin_url, owner_name(schema), OWNER_SECRET)
