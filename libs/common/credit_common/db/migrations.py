"""Migration runner: numbered `.sql` files, applied in order under an advisory lock, each with the
checksum of its text recorded so an edited, already-applied file is refused rather than ignored."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import asyncpg

COMMON_MIGRATIONS = Path(__file__).parent / "migrations"
_NAME = re.compile(r"^(\d{3,})_[a-z0-9_]+\.sql$")


class MigrationError(RuntimeError):
    """A migration could not be applied, or an applied file has changed since."""


@dataclass(frozen=True)
class Migration:
    source: str
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def discover(source: str, directory: Path) -> list[Migration]:
    """The numbered `.sql` files of `directory`, in order; a misnamed or repeated number is an error."""
    found: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        m = _NAME.match(path.name)
        if not m:
            raise MigrationError(f"{path}: migration files are named NNN_words.sql")
        version = int(m.group(1))
        if version in found:
            raise MigrationError(f"{path}: version {version} is used twice in {directory}")
        found[version] = Migration(source, version, path.name, path.read_text())
    return [found[v] for v in sorted(found)]


async def migrate(conn: asyncpg.Connection, schema: str, sources: list[tuple[str, Path]]) -> list[str]:
    """Apply what is new of each (source, directory) into `schema`; returns the names applied.

    `conn` is a dedicated connection logged in as the schema's owner. Safe when several instances
    start at once: a session advisory lock per schema lets one apply while the others wait."""
    applied_now: list[str] = []
    await conn.execute("SELECT pg_advisory_lock(hashtext('credit:migrate:' || $1))", schema)
    try:
        await conn.execute(f"SET search_path = {schema}")
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   source text NOT NULL, version int NOT NULL, name text NOT NULL,
                   checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(),
                   PRIMARY KEY (source, version))"""
        )
        rows = await conn.fetch("SELECT source, version, name, checksum FROM schema_migrations")
        done = {(r["source"], r["version"]): r for r in rows}
        for source, directory in sources:
            for mig in discover(source, directory):
                row = done.get((source, mig.version))
                if row is not None:
                    if row["checksum"] != mig.checksum:
                        raise MigrationError(
                            f"{schema}: {source}/{mig.name} was changed after it was applied "
                            f"(checksum {row['checksum'][:12]} applied, {mig.checksum[:12]} now); "
                            "add a new numbered file instead"
                        )
                    continue
                try:
                    async with conn.transaction():
                        await conn.execute(mig.sql)
                        await conn.execute(
                            "INSERT INTO schema_migrations (source, version, name, checksum) VALUES ($1, $2, $3, $4)",
                            source,
                            mig.version,
                            mig.name,
                            mig.checksum,
                        )
                except asyncpg.PostgresError as exc:
                    raise MigrationError(f"{schema}: {source}/{mig.name} failed: {exc}") from exc
                applied_now.append(f"{source}/{mig.name}")
    finally:
        await conn.execute("SELECT pg_advisory_unlock(hashtext('credit:migrate:' || $1))", schema)
    return applied_now


async def pending(conn: asyncpg.Connection, schema: str, sources: list[tuple[str, Path]]) -> list[str]:
    """What of `sources` is not applied in `schema` (or applied from another text): read-only, for a
    service whose runtime role may not migrate and so checks before it starts."""
    if not await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", f"{schema}.schema_migrations"):
        return [f"{source}/{m.name}" for source, directory in sources for m in discover(source, directory)]
    rows = await conn.fetch(f"SELECT source, version, checksum FROM {schema}.schema_migrations")
    done = {(r["source"], r["version"]): r["checksum"] for r in rows}
    return [
        f"{source}/{m.name}"
        for source, directory in sources
        for m in discover(source, directory)
        if done.get((source, m.version)) != m.checksum
    ]
