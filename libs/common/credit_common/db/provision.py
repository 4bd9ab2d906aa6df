"""A service's database, made ready by the stack before the service starts (contracts.md,
Security): its schema, its owner and runtime roles with their own generated secrets, and its
migrations applied as the owner. The caller holds the admin connection string; what it hands the
service is the runtime role's, which may only read and write rows of its own tables.

`credit-migrate` runs this for the services of a deployment (production: a release step);
`deploy/supervise.py`, the test harness and the benchmarks run it before each service they start."""

from __future__ import annotations

import importlib
import secrets
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from credit_common.db import pool as dbpool
from credit_common.db.migrations import COMMON_MIGRATIONS, migrate
from credit_common.db.roles import ensure_service_schema, owner_name, role_name
from credit_common.settings import SERVICE_PORTS

SERVICES = tuple(SERVICE_PORTS)  # the five services, as settings names them


def migration_sources(migrations: Path | None) -> list[tuple[str, Path]]:
    """The migrations of a service: the library's (inbox, outbox), then its own."""
    sources = [("common", COMMON_MIGRATIONS)]
    if migrations is not None:
        sources.append(("service", migrations))
    return sources


def service_migrations(name: str) -> Path | None:
    """The migrations directory of service `name` (its definition says where)."""
    definition = importlib.import_module(f"services.{name}.app").definition
    migrations: Path | None = definition.migrations
    return migrations


def new_secret() -> str:
    return secrets.token_urlsafe(24)


@dataclass(frozen=True)
class ServiceDatabase:
    schema: str
    url: str  # the runtime role's connection string: what the service gets
    owner_url: str  # the owner's: migrations only
    applied: tuple[str, ...]


async def prepare(
    admin_url: str,
    schema: str,
    migrations: Path | None,
    *,
    password: str | None = None,
    owner_password: str | None = None,
) -> ServiceDatabase:
    """Make `schema` ready: roles (new secrets unless given), schema, migrations applied as its
    owner. Idempotent; the runtime role's secret is set to `password` each time."""
    password, owner_password = password or new_secret(), owner_password or new_secret()
    admin = await asyncpg.connect(admin_url)
    try:
        await ensure_service_schema(admin, schema, password, owner_password)
    finally:
        await admin.close()
    owner_url = dbpool.dsn_for_role(admin_url, owner_name(schema), owner_password)
    conn = await dbpool.connect(owner_url, schema=schema, application_name=f"{schema}-migrate")
    try:
        applied = await migrate(conn, schema, migration_sources(migrations))
    finally:
        await conn.close()
    url = dbpool.dsn_for_role(admin_url, role_name(schema), password)
    return ServiceDatabase(schema, url, owner_url, tuple(applied))
