"""The database foundation against the real PostgreSQL: numbered migrations applied once (also from
concurrent connections, serialised by the advisory lock), edited or misnamed files refused, and the
per-service roles that reach their own schema and nothing else."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import asyncpg
import pytest
from credit_common.db import pool as dbpool
from credit_common.db.migrations import MigrationError, migrate
from credit_common.db.roles import UnsafeRole, drop_service_schema, owner_name, require_runtime_role, role_name
from credit_common.settings import Settings

from tests.support.database import make_schema, owner_dsn, runtime_dsn

pytestmark = pytest.mark.integration

FIRST = """\
CREATE TABLE things (id int PRIMARY KEY, name text NOT NULL);
CREATE TABLE effects (n serial PRIMARY KEY, migration text NOT NULL);
INSERT INTO effects (migration) VALUES ('001');
"""
SECOND = """\
ALTER TABLE things ADD COLUMN colour text;
INSERT INTO things (id, name, colour) VALUES (1, 'first', 'red');
INSERT INTO effects (migration) VALUES ('002');
"""

Connect = Callable[..., Awaitable[asyncpg.Connection]]


def unique_schema() -> str:
    return f"it_{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def schemas(stack: Settings, admin: asyncpg.Connection) -> AsyncIterator[list[str]]:
    """Schemas a test made itself (with `make_schema`): dropped with their roles after."""
    made: list[str] = []
    yield made
    for schema in made:
        await drop_service_schema(admin, schema)
        for role in (role_name(schema), owner_name(schema)):
            assert await admin.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role) is None
        assert await admin.fetchval("SELECT 1 FROM pg_namespace WHERE nspname = $1", schema) is None


@pytest.fixture
async def connect_as(stack: Settings) -> AsyncIterator[Connect]:
    """connect_as(schema, runtime=False) -> a dedicated connection logged in as the schema's owner
    (migrations), or as its runtime role."""
    opened: list[asyncpg.Connection] = []

    async def connect(schema: str, runtime: bool = False) -> asyncpg.Connection:
        dsn = (runtime_dsn if runtime else owner_dsn)(stack.database_url, schema)
        conn = await dbpool.connect(dsn, schema=schema, application_name=f"test-{schema}")
        opened.append(conn)
        return conn

    yield connect
    for conn in opened:
        await conn.close()


async def new_schema(stack: Settings, admin: asyncpg.Connection, schemas: list[str]) -> str:
    schema = unique_schema()
    schemas.append(schema)  # registered first: dropped even when ensuring fails half-way
    assert await make_schema(admin, schema) == role_name(schema)
    return schema


def migration_dir(root: Path, **files: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, sql in files.items():
        (root / name).write_text(sql)
    return root


async def applied(conn: asyncpg.Connection) -> list[tuple[str, int, str]]:
    rows = await conn.fetch("SELECT source, version, name FROM schema_migrations ORDER BY source, version")
    return [(r["source"], r["version"], r["name"]) for r in rows]


# --- migrations ----------------------------------------------------------------------------------


async def test_migrations_apply_once_in_order_and_refuse_edited_files(
    stack: Settings, admin: asyncpg.Connection, schemas: list[str], connect_as: Connect, tmp_path: Path
) -> None:
    schema = await new_schema(stack, admin, schemas)
    directory = migration_dir(tmp_path / "m", **{"001_things.sql": FIRST, "002_colour.sql": SECOND})
    conn = await connect_as(schema)

    assert await migrate(conn, schema, [("service", directory)]) == [
        "service/001_things.sql",
        "service/002_colour.sql",
    ]
    assert await applied(conn) == [("service", 1, "001_things.sql"), ("service", 2, "002_colour.sql")]
    # Applied into the schema, in order (002 alters what 001 created).
    assert await admin.fetchval("SELECT to_regclass($1)::text", f"{schema}.things") == f"{schema}.things"
    assert await conn.fetchrow("SELECT id, name, colour FROM things") == (1, "first", "red")

    # Re-running applies nothing and changes nothing (also from a new connection).
    assert await migrate(conn, schema, [("service", directory)]) == []
    assert await migrate(await connect_as(schema), schema, [("service", directory)]) == []
    assert await conn.fetchval("SELECT count(*) FROM effects") == 2
    assert len(await applied(conn)) == 2

    # An applied file edited afterwards is refused, naming it; what follows it is not applied.
    (directory / "001_things.sql").write_text(FIRST + "-- a harmless-looking edit\n")
    (directory / "003_more.sql").write_text("INSERT INTO effects (migration) VALUES ('003');\n")
    with pytest.raises(MigrationError, match=r"001_things\.sql was changed after it was applied"):
        await migrate(conn, schema, [("service", directory)])
    assert len(await applied(conn)) == 2
    assert await conn.fetchval("SELECT count(*) FROM effects") == 2

    # The refusal released the advisory lock: another connection migrates at once after the fix.
    (directory / "001_things.sql").write_text(FIRST)
    other = await connect_as(schema)
    assert await asyncio.wait_for(migrate(other, schema, [("service", directory)]), 10) == ["service/003_more.sql"]
    assert await conn.fetchval("SELECT count(*) FROM effects") == 3
    # ... and so can the connection that failed (its session holds no stale lock either).
    assert await asyncio.wait_for(migrate(conn, schema, [("service", directory)]), 10) == []
    locks = await admin.fetchval(
        "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid)"
        " WHERE l.locktype = 'advisory' AND a.usename = $1",
        owner_name(schema),
    )
    assert locks == 0


@pytest.mark.parametrize(
    "bad_name", ["1_things.sql", "things.sql", "001-things.sql", "001_Things.sql", "v001_things.sql"]
)
async def test_a_misnamed_migration_file_is_refused(
    stack: Settings,
    admin: asyncpg.Connection,
    schemas: list[str],
    connect_as: Connect,
    tmp_path: Path,
    bad_name: str,
) -> None:
    schema = await new_schema(stack, admin, schemas)
    directory = migration_dir(tmp_path / "m", **{"002_colour.sql": SECOND, bad_name: FIRST})
    conn = await connect_as(schema)
    with pytest.raises(MigrationError, match=rf"{bad_name.replace('.', '[.]')}: migration files are named"):
        await migrate(conn, schema, [("service", directory)])
    assert await applied(conn) == []
    assert await admin.fetchval("SELECT to_regclass($1)", f"{schema}.effects") is None


async def test_a_version_used_twice_is_refused(
    stack: Settings, admin: asyncpg.Connection, schemas: list[str], connect_as: Connect, tmp_path: Path
) -> None:
    schema = await new_schema(stack, admin, schemas)
    directory = migration_dir(tmp_path / "m", **{"001_things.sql": FIRST, "0001_again.sql": SECOND})
    conn = await connect_as(schema)
    with pytest.raises(MigrationError, match="version 1 is used twice"):
        await migrate(conn, schema, [("service", directory)])
    assert await applied(conn) == []


async def test_concurrent_migrations_apply_each_file_exactly_once(
    stack: Settings, admin: asyncpg.Connection, schemas: list[str], connect_as: Connect, tmp_path: Path
) -> None:
    schema = await new_schema(stack, admin, schemas)
    # 001 takes a while, so the other three really are waiting on the lock while it runs.
    slow_first = "SELECT pg_sleep(0.5);\n" + FIRST
    directory = migration_dir(tmp_path / "m", **{"001_things.sql": slow_first, "002_colour.sql": SECOND})
    conns = [await connect_as(schema) for _ in range(4)]

    results = await asyncio.wait_for(asyncio.gather(*(migrate(c, schema, [("service", directory)]) for c in conns)), 60)

    names = sorted(name for result in results for name in result)
    assert names == ["service/001_things.sql", "service/002_colour.sql"]  # once each, in total
    assert sorted(len(r) for r in results) == [0, 0, 0, 2]  # one instance applied both
    assert await applied(conns[0]) == [("service", 1, "001_things.sql"), ("service", 2, "002_colour.sql")]
    effects = await conns[0].fetch("SELECT migration FROM effects ORDER BY n")
    assert [r["migration"] for r in effects] == ["001", "002"]
    assert await conns[0].fetchval("SELECT count(*) FROM things") == 1
    tables = await admin.fetchval(
        "SELECT count(*) FROM pg_tables WHERE schemaname = $1 AND tablename = 'things'", schema
    )
    assert tables == 1


# --- roles ---------------------------------------------------------------------------------------


async def test_a_service_role_reaches_its_own_rows_and_nothing_else(
    stack: Settings, admin: asyncpg.Connection, schemas: list[str], connect_as: Connect
) -> None:
    """The owner makes the tables (migrations); the runtime role a service works as reads and
    writes their rows and can change nothing else: no DDL, no TRUNCATE, no other schema."""
    mine = await new_schema(stack, admin, schemas)
    theirs = await new_schema(stack, admin, schemas)
    owner, me = await connect_as(mine), await connect_as(mine, runtime=True)
    them = await connect_as(theirs)

    await owner.execute("CREATE TABLE notes (id int PRIMARY KEY, body text)")
    await owner.execute("CREATE TABLE counters (id int GENERATED ALWAYS AS IDENTITY, n int)")
    # Its own rows: write, read, update, delete (search_path is the schema); identity columns work.
    await me.execute("INSERT INTO notes VALUES (1, 'mine'), (2, 'gone')")
    await me.execute("UPDATE notes SET body = 'still mine' WHERE id = 1")
    await me.execute("DELETE FROM notes WHERE id = 2")
    await me.execute("INSERT INTO counters (n) VALUES (1)")
    assert await me.fetchval("SELECT body FROM notes WHERE id = 1") == "still mine"
    assert await me.fetchval(f"SELECT count(*) FROM {mine}.notes") == 1
    assert await me.fetchval("SELECT current_user") == role_name(mine)
    assert await admin.fetchval(
        "SELECT nspowner::regrole::text FROM pg_namespace WHERE nspname = $1", mine
    ) == owner_name(mine)

    # Nothing of the schema itself: no new table, no change, no drop, no truncate, no trigger off.
    for statement in (
        "CREATE TABLE planted (id int)",
        "ALTER TABLE notes ADD COLUMN extra text",
        "ALTER TABLE notes DISABLE TRIGGER ALL",
        "DROP TABLE notes",
        "TRUNCATE notes",
        "CREATE INDEX ON notes (body)",
    ):
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await me.execute(statement)
    assert await me.fetchval("SELECT count(*) FROM notes") == 1
    # Nor pass its rights on (PostgreSQL warns and grants nothing).
    await me.execute(f"GRANT SELECT ON notes TO {role_name(theirs)}")
    assert not await admin.fetchval("SELECT has_table_privilege($1, $2, 'SELECT')", role_name(theirs), f"{mine}.notes")

    # Another service's schema: neither its tables nor a new table there.
    await them.execute("CREATE TABLE secrets (id int PRIMARY KEY, body text)")
    await them.execute("INSERT INTO secrets VALUES (1, 'theirs')")
    for conn in (me, owner):
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.fetch(f"SELECT * FROM {theirs}.secrets")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute(f"INSERT INTO {theirs}.secrets VALUES (2, 'forged')")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute(f"CREATE TABLE {theirs}.planted (id int)")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute(f"DROP TABLE {theirs}.secrets")
    assert await them.fetchval("SELECT count(*) FROM secrets") == 1

    # Nor the public schema, nor a schema of its own making.
    name = f"planted_{uuid.uuid4().hex[:8]}"
    for conn in (me, owner):
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute(f"CREATE TABLE public.{name} (id int)")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute(f"CREATE SCHEMA {name}")
    assert await admin.fetchval("SELECT to_regclass($1)", f"public.{name}") is None
    assert await admin.fetchval("SELECT 1 FROM pg_namespace WHERE nspname = $1", name) is None

    # Logging in with the wrong password fails.
    wrong = dbpool.dsn_for_role(stack.database_url, role_name(mine), "not-the-password")
    with pytest.raises(asyncpg.InvalidPasswordError):
        await asyncpg.connect(wrong)


async def test_a_service_refuses_to_work_as_admin_or_owner(
    stack: Settings, admin: asyncpg.Connection, schemas: list[str], connect_as: Connect
) -> None:
    schema = await new_schema(stack, admin, schemas)
    for conn in (admin, await connect_as(schema)):
        with pytest.raises(UnsafeRole, match="may change schema"):
            await require_runtime_role(conn, schema)
    await require_runtime_role(await connect_as(schema, runtime=True), schema)


async def test_ensure_service_schema_is_idempotent_and_safe_concurrently(
    stack: Settings, admin: asyncpg.Connection, schemas: list[str], connect_as: Connect
) -> None:
    schema = await new_schema(stack, admin, schemas)
    conn = await connect_as(schema)
    await conn.execute("CREATE TABLE kept (id int)")
    await conn.execute("INSERT INTO kept VALUES (7)")

    # Again, sequentially: nothing is lost and the role still logs in.
    assert await make_schema(admin, schema) == role_name(schema)
    assert await conn.fetchval("SELECT id FROM kept") == 7

    # Three instances of one service starting at once, each on its own admin connection; and three
    # different services (one of them brand new) at the same time.
    fresh = unique_schema()
    schemas.append(fresh)
    others = [unique_schema(), unique_schema()]
    schemas.extend(others)
    admins = [await asyncpg.connect(stack.database_url) for _ in range(6)]
    try:
        roles = await asyncio.wait_for(
            asyncio.gather(
                *(make_schema(a, s) for a, s in zip(admins[:3], [fresh] * 3, strict=True)),
                *(make_schema(a, s) for a, s in zip(admins[3:], [schema, *others], strict=True)),
            ),
            60,
        )
    finally:
        for a in admins:
            await a.close()
    assert roles == [role_name(s) for s in [fresh, fresh, fresh, schema, *others]]

    assert await conn.fetchval("SELECT id FROM kept") == 7
    for s in [fresh, schema, *others]:
        assert await admin.fetchval("SELECT count(*) FROM pg_roles WHERE rolname = $1", role_name(s)) == 1
        assert await admin.fetchval(
            "SELECT nspowner::regrole::text FROM pg_namespace WHERE nspname = $1", s
        ) == owner_name(s)
        c = await connect_as(s)
        await c.execute("CREATE TABLE IF NOT EXISTS probe (id int)")
        assert await c.fetchval("SELECT current_schema()") == s
