"""Two login roles per service schema (contracts.md, Security): the owner, which owns the schema
and its tables and is the only one that runs migrations, and the runtime role the service works
as, which may read and write the rows of its own tables and nothing else (no DDL, no ownership,
no TRUNCATE, nothing outside its schema). The admin connection creates both and is never handed
to a service."""

from __future__ import annotations

import asyncio
import re

import asyncpg

_IDENT = re.compile(r"^[a-z_][a-z0-9_]{0,58}$")
#: The schema of the extensions the services' migrations use (pg_trgm), shared by all.
EXTENSIONS = "credit_ext"


def _ident(name: str) -> str:
    if not _IDENT.match(name):
        raise ValueError(f"not a safe SQL identifier: {name!r}")
    return name


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def role_name(schema: str) -> str:
    """The runtime login role of the service that owns `schema` (rows only)."""
    return f"svc_{schema}"


def owner_name(schema: str) -> str:
    """The role that owns `schema` and its tables, and migrates them."""
    return f"own_{schema}"


async def _login_role(admin: asyncpg.Connection, role: str, password: str) -> None:
    exists = await admin.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role)
    verb = "ALTER" if exists else "CREATE"
    await admin.execute(f"{verb} ROLE {role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD {_literal(password)}")


async def ensure_service_schema(admin: asyncpg.Connection, schema: str, password: str, owner_password: str) -> str:
    """Create (or update) the schema, its owner and its runtime role; idempotent and safe to run
    concurrently. Returns the runtime role's name. A schema made before the split (owned by the
    runtime role) is handed to the owner.

    Concurrent runs are serialised by an advisory lock, and yet PostgreSQL may still refuse a
    GRANT on the database with "tuple concurrently updated" when another session's grant on the
    same catalogue row committed a moment before (seen when two processes of a service start at
    once): the whole transaction is run again, as it is idempotent."""
    for attempt in range(5):
        try:
            return await _ensure_service_schema(admin, schema, password, owner_password)
        except asyncpg.InternalServerError as exc:
            if "tuple concurrently updated" not in str(exc) or attempt == 4:
                raise
            await asyncio.sleep(0.05 * (attempt + 1))
    raise AssertionError("unreachable")


async def _ensure_service_schema(admin: asyncpg.Connection, schema: str, password: str, owner_password: str) -> str:
    schema = _ident(schema)
    role, owner = _ident(role_name(schema)), _ident(owner_name(schema))
    async with admin.transaction():
        # Serialise concurrent starts of the same service: CREATE ROLE has no IF NOT EXISTS.
        await admin.execute("SELECT pg_advisory_xact_lock(hashtext('credit:roles'))")
        await _login_role(admin, owner, owner_password)
        await _login_role(admin, role, password)
        await admin.execute(f"CREATE SCHEMA IF NOT EXISTS {schema} AUTHORIZATION {owner}")
        # The extensions a service's migrations may use (a service's roles may create none):
        # pg_trgm, for the public search's trigram index (sharing).
        await admin.execute(f"CREATE SCHEMA IF NOT EXISTS {EXTENSIONS}")
        await admin.execute(f"CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA {EXTENSIONS}")
        if await admin.fetchval(
            "SELECT 1 FROM pg_namespace n JOIN pg_roles r ON r.oid = n.nspowner"
            " WHERE n.nspname = $1 AND r.rolname = $2",
            schema,
            role,
        ):
            await admin.execute(f"REASSIGN OWNED BY {role} TO {owner}")
        await admin.execute(f"ALTER SCHEMA {schema} OWNER TO {owner}")
        db = await admin.fetchval("SELECT current_database()")
        for r in (owner, role):
            await admin.execute(f"ALTER ROLE {r} SET search_path = {schema}")
            await admin.execute(f'GRANT CONNECT, TEMPORARY ON DATABASE "{db}" TO {r}')
            # Nothing in public for service roles (PostgreSQL 15 already withholds CREATE there).
            await admin.execute(f"REVOKE ALL ON SCHEMA public FROM {r}")
            await admin.execute(f"GRANT USAGE ON SCHEMA {EXTENSIONS} TO {r}")
        await admin.execute(f"REVOKE CREATE ON SCHEMA {schema} FROM {role}")
        await admin.execute(f"GRANT USAGE ON SCHEMA {schema} TO {role}")
        rows, seqs = "SELECT, INSERT, UPDATE, DELETE", "USAGE, SELECT, UPDATE"
        await admin.execute(f"GRANT {rows} ON ALL TABLES IN SCHEMA {schema} TO {role}")
        await admin.execute(f"GRANT {seqs} ON ALL SEQUENCES IN SCHEMA {schema} TO {role}")
        # What the owner's migrations create later is the runtime role's to use the same way.
        await admin.execute(
            f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA {schema} GRANT {rows} ON TABLES TO {role}"
        )
        await admin.execute(
            f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA {schema} GRANT {seqs} ON SEQUENCES TO {role}"
        )
    return role


async def drop_service_schema(admin: asyncpg.Connection, schema: str) -> None:
    """Drop a schema and its roles (tests and benchmarks clean up with this)."""
    schema = _ident(schema)
    async with admin.transaction():
        await admin.execute("SELECT pg_advisory_xact_lock(hashtext('credit:roles'))")
        await admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        for r in (_ident(role_name(schema)), _ident(owner_name(schema))):
            if await admin.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", r):
                await admin.execute(f"DROP OWNED BY {r}")
                await admin.execute(f"DROP ROLE {r}")


class UnsafeRole(RuntimeError):
    """A service was given a database login that may do more than its rows (admin, owner)."""


async def require_runtime_role(conn: asyncpg.Connection, schema: str) -> None:
    """Refuse to work as a role that could change the schema: a superuser, one that may create
    roles or databases, or one that may create objects in (or owns) `schema`."""
    row = await conn.fetchrow(
        """SELECT r.rolname, r.rolsuper OR r.rolcreaterole OR r.rolcreatedb AS powerful,
                  COALESCE((SELECT has_schema_privilege(r.rolname, n.oid, 'CREATE')
                              FROM pg_namespace n WHERE n.nspname = $1), false) AS creates
             FROM pg_roles r WHERE r.rolname = current_user""",
        schema,
    )
    if row is None or row["powerful"] or row["creates"]:
        who = row["rolname"] if row else "?"
        raise UnsafeRole(
            f"the database login {who!r} may change schema {schema!r} (admin or owner): a service works "
            f"as its runtime role {role_name(schema)!r}; run credit-migrate and give its DATABASE_URL"
        )
