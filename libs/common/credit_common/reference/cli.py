"""`credit-reference`: validate the YAML catalogue, and publish it to `credit.reference.v1`.

    credit-reference validate deploy/catalog
    credit-reference publish deploy/catalog [--bootstrap-servers HOST:PORT] [--topic NAME] [--prune] [--force]

Publishing validates first and sends nothing when anything is wrong.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer
from aiokafka import AIOKafkaProducer

from credit_common.clock import SHANGHAI, Clock, clock_from
from credit_common.contracts.envelope import CONTENT_TYPE, new_event
from credit_common.contracts.reference import (
    REFERENCE_EVENT_TYPE,
    REFERENCE_SOURCE,
    ReferenceRecord,
    reference_key,
)
from credit_common.json import dumps
from credit_common.messaging.connection import kafka_options
from credit_common.messaging.topics import REFERENCE, TOPICS, TopicSpec, ensure_topics
from credit_common.reference.cache import ReferenceCache
from credit_common.reference.loader import CatalogError, load_files
from credit_common.settings import get_settings

app = typer.Typer(
    name="credit-reference",
    help="Validate the reference catalogue (YAML) and publish it to credit.reference.v1.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

Paths = Annotated[
    list[Path],
    typer.Argument(help="Catalogue files, or directories whose *.yaml files are read (e.g. deploy/catalog)."),
]


@dataclass
class PublishReport:
    sent: int = 0
    unchanged: int = 0
    deleted: int = 0


def _load_or_exit(paths: list[Path]) -> list[ReferenceRecord]:
    try:
        return load_files(paths)
    except CatalogError as exc:
        for problem in exc.problems:
            typer.echo(str(problem), err=True)
        count = len(exc.problems)
        typer.echo(f"{count} problem{'s' if count != 1 else ''}: the catalogue was refused.", err=True)
        raise typer.Exit(1) from None


def _summary(records: list[ReferenceRecord]) -> str:
    counts = Counter(r.kind for r in records)
    return ", ".join(f"{n} {kind}" for kind, n in counts.items())


@app.command()
def validate(paths: Paths) -> None:
    """Check the catalogue; print each problem as `file:line: reason` (exit status 1 if any)."""
    records = _load_or_exit(paths)
    typer.echo(f"OK: {len(records)} records ({_summary(records)}).")


@app.command()
def publish(
    paths: Paths,
    bootstrap_servers: Annotated[
        str | None,
        typer.Option("--bootstrap-servers", help="Kafka bootstrap servers (default: KAFKA_BOOTSTRAP_SERVERS)."),
    ] = None,
    topic: Annotated[
        str, typer.Option("--topic", help=f"The compacted topic to publish to (default: {REFERENCE}).")
    ] = REFERENCE,
    prune: Annotated[
        bool,
        typer.Option("--prune", help="Delete (tombstone) records on the topic that the files do not have."),
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Send every record, even those unchanged on the topic.")
    ] = False,
) -> None:
    """Validate, then send every record to credit.reference.v1 (or --topic) and wait for all
    acknowledgements.

    Each record goes under the key `<kind>:<code>`; records already on the topic with the same value
    are skipped unless --force. Nothing is sent when the catalogue has a problem.
    """
    records = _load_or_exit(paths)
    bootstrap = bootstrap_servers or get_settings().kafka_bootstrap_servers
    report = asyncio.run(publish_records(records, bootstrap, topic=topic, prune=prune, force=force))
    typer.echo(
        f"Published {report.sent} records to {topic} at {bootstrap} "
        f"({report.unchanged} unchanged, {report.deleted} deleted)."
    )


async def publish_records(
    records: list[ReferenceRecord],
    bootstrap: str,
    *,
    topic: str = REFERENCE,
    prune: bool = False,
    force: bool = False,
    clock: Clock | None = None,
) -> PublishReport:
    """Send validated records (and, with `prune`, tombstones for keys the records lack) with an
    idempotent producer; returns once the broker acknowledged every one."""
    clock = clock or clock_from(get_settings().credit_now)
    # Created compacted before anything reads or writes it (auto-creation would not compact it).
    specs = [spec for spec in TOPICS if spec.name == topic] or [TopicSpec(topic, partitions=1, compact=True)]
    await ensure_topics(bootstrap, specs)
    current = await _current(bootstrap, topic) if (prune or not force) else {}

    report = PublishReport()
    wanted = {reference_key(r): r for r in records}
    producer = AIOKafkaProducer(
        **kafka_options(bootstrap),
        client_id="credit-reference-cli",
        enable_idempotence=True,  # acks=all; a retried send is never written twice
    )
    await producer.start()
    try:
        headers = [("content-type", CONTENT_TYPE.encode())]
        pending = []
        for key, record in wanted.items():
            if not force and current.get(key) == record:
                report.unchanged += 1
                continue
            event = new_event(
                REFERENCE_EVENT_TYPE,
                REFERENCE_SOURCE,
                record.model_dump(mode="json"),  # nulls kept: the contract shows `parent: null`
                time=clock.now().astimezone(SHANGHAI),
            )
            value = dumps(event.model_dump(mode="json", exclude_none=True))
            pending.append(await producer.send(topic, value=value, key=key.encode(), headers=headers))
            report.sent += 1
        if prune:
            for key in sorted(set(current) - set(wanted)):
                pending.append(await producer.send(topic, value=None, key=key.encode()))
                report.deleted += 1
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return report


async def _current(bootstrap: str, topic: str) -> dict[str, ReferenceRecord]:
    """What the topic holds now, read the way every service reads it."""
    cache = ReferenceCache(bootstrap, topic=topic, client_id="credit-reference-cli")
    try:
        await cache.start(wait=True, timeout=60)
        return cache.catalog.records()
    finally:
        await cache.stop()


def main() -> None:
    """Console script entry point (`credit-reference`)."""
    app()


if __name__ == "__main__":
    main()
