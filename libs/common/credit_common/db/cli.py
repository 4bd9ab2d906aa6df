"""`credit-migrate`: make the services' databases ready as the stack's admin (contracts.md,
Security): each service's schema, its owner and runtime roles with new secrets, its migrations
applied as the owner. Prints, per service, the runtime role's connection string to hand that
service as `DATABASE_URL` (the admin connection string never reaches a service).

    credit-migrate                       # the five services of the deployment (CREDIT_INSTANCE)
    credit-migrate designation sharing   # some of them"""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from credit_common.db.provision import SERVICES, prepare, service_migrations
from credit_common.settings import get_settings

app = typer.Typer(name="credit-migrate", add_completion=False, pretty_exceptions_enable=False)


@app.command()
def main(
    services: Annotated[list[str] | None, typer.Argument(help="Services (default: all five).")] = None,
) -> None:
    """Roles, schema and migrations of each service; prints `<service> DATABASE_URL=...`."""
    settings = get_settings()
    names = services or list(SERVICES)
    unknown = sorted(set(names) - set(SERVICES))
    if unknown:
        typer.echo(f"unknown services: {', '.join(unknown)}", err=True)
        raise typer.Exit(2)

    async def run() -> None:
        for name in names:
            db = await prepare(
                settings.database_url,
                settings.schema_of(name),
                service_migrations(name),
                password=settings.credit_db_passwords.get(name),
            )
            done = ", ".join(db.applied) or "nothing new"
            typer.echo(f"{name} DATABASE_URL={db.url}")
            typer.echo(f"  migrations applied as {db.schema}'s owner: {done}", err=True)

    asyncio.run(run())


def cli() -> None:
    """Console script entry point (`credit-migrate`)."""
    app()
