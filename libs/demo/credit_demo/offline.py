"""The demo without a running platform: `--dry-run` prints the messages it would send, `--offline`
sends them through the five services' own handlers over their in-memory stores (`platform.py`)
and reports what each service answered. Neither needs Kafka or PostgreSQL."""

from __future__ import annotations

import asyncio
import base64
import sys
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

from credit_common.clock import clock_from
from credit_common.contracts.envelope import CloudEvent
from credit_common.json import dumps, loads
from credit_common.reference.catalog import Catalog
from credit_common.reference.loader import load_files
from credit_common.settings import get_settings
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from credit_demo.malformed import MALFORMED
from credit_demo.options import Options
from credit_demo.platform import InMemoryPlatform
from credit_demo.traffic import Traffic


def _traffic(opts: Options) -> tuple[Catalog, Traffic]:
    catalog = Catalog.of(load_files([opts.catalog or Path("deploy/catalog")]))
    return catalog, Traffic(catalog, seed=opts.seed, malformed=opts.malformed, settle=timedelta(seconds=opts.settle))


def dry_run(opts: Options, out: Any = sys.stdout) -> None:
    """Write the messages (one JSON line each: topic, key, value) without sending them, at the
    times they would be sent."""
    _, traffic = _traffic(opts)
    start = clock_from(get_settings().credit_now).now()
    for i in range(opts.total):
        msg = traffic.next(start + timedelta(seconds=i / opts.rate))
        line: dict[str, Any] = {"topic": msg.topic, "key": msg.key.decode(errors="replace")}
        try:
            line["value"] = loads(msg.value)
        except ValueError:
            line["value_b64"] = base64.b64encode(msg.value).decode()
        out.write(dumps(line).decode() + "\n")


def offline_run(opts: Options, console: Console | None = None) -> None:
    """Send the traffic, in order and at its times, through the services' handlers in memory and
    print per request type what was accepted and what was rejected, and why."""
    console = console or Console(stderr=True)
    catalog, traffic = _traffic(opts)
    start = clock_from(get_settings().credit_now).now()
    platform = InMemoryPlatform(catalog, start)
    malformed = 0

    async def send() -> None:
        nonlocal malformed
        with Progress(console=console, transient=True) as bar:
            task = bar.add_task("through the services, in memory", total=opts.total)
            for i in range(opts.total):
                msg = traffic.next(start + timedelta(seconds=i / opts.rate))
                if msg.kind == MALFORMED:
                    malformed += 1  # the bus's parser dead-letters or refuses these before any handler
                else:
                    await platform.handle(CloudEvent.model_validate_json(msg.value))
                bar.advance(task)

    asyncio.run(send())
    table = Table(title=f"{opts.total:,} messages, seed {opts.seed}: the services' answers")
    for column in ("request type", "accepted", "rejected", "why"):
        table.add_column(column)
    codes: dict[str, Counter[str]] = {}
    for (type_, code), n in platform.rejected.items():
        codes.setdefault(type_, Counter())[code] += n
    for type_ in sorted(set(platform.accepted) | set(codes)):
        why = ", ".join(f"{c} {n}" for c, n in codes.get(type_, Counter()).most_common())
        table.add_row(type_, str(platform.accepted[type_]), str(sum(codes.get(type_, Counter()).values())), why)
    table.add_row("malformed (dead-lettered)", "", str(malformed), "")
    console.print(table)
    listed = sum(1 for w in platform.warning_store.warnings.values() if w.status == "listed")
    console.print(f"on the warning list: {listed}; list changes published: {platform.sharing_store.last_seq:,}")
