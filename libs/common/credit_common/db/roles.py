"""One schema and one login role per service: the role owns its schema and can touch nothing else."""

from __future__ import annotations

import re

import asyncpg

_IDENT = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def _ident(name: str) -> str:
    if not _IDENT.match(name):
        raise ValueError(f"not a safe SQL identifier: {name!r}")
    return name


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def role_name(schema: str) -> str:
    """The login role of the service that owns `schema`."""
    return f"svc_{schema}"


async def ensure_service_schema(admin: asyncpg.Connection, schema: str, password: str) -> str:
    """Create (or update) the service's role and schema; idempotent and safe to run concurrently.
    Returns the role name."""
    schema = _ident(schema)
    role = _ident(role_name(schema))
    async with admin.transaction():
        # Serialise concurrent starts of the same service: CREATE ROLE has no IF NOT EXISTS.
        await admin.execute("SELECT pg_advisory_xact_lock(hashtext('credit:roles'))")
        exists = await admin.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role)
        verb = "ALTER" if exists else "CREATE"
        await admin.execute(f"{verb} ROLE {role} LOGIN PASSWORD {_literal(password)}")
        await admin.execute(f"CREATE SCHEMA IF NOT EXISTS {schema} AUTHORIZATION {role}")
        await admin.execute(f"ALTER SCHEMA {schema} OWNER TO {role}")
        await admin.execute(f"ALTER ROLE {role} SET search_path = {schema}")
        db = await admin.fetchval("SELECT current_database()")
        await admin.execute(f'GRANT CONNECT, TEMPORARY ON DATABASE "{db}" TO {role}')
        # Nothing in public for service roles (PostgreSQL 15 already withholds CREATE there).
        await admin.execute(f"REVOKE ALL ON SCHEMA public FROM {role}")
    return role


async def drop_service_schema(admin: asyncpg.Connection, schema: str) -> None:
    """Drop a schema and its role (tests and benchmarks clean up with this)."""
    schema = _ident(schema)
    role = _ident(role_name(schema))
    async with admin.transaction():
        await admin.execute("SELECT pg_advisory_xact_lock(hashtext('credit:roles'))")
        await admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        if await admin.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role):
            await admin.execute(f"DROP OWNED BY {role}")
            await admin.execute(f"DROP ROLE {role}")
