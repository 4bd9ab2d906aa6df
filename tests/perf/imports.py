"""Historical import benchmark (issue 21), with the services as real processes:

- `import_drain`: N historic entries of one unit (a fifth of them ended or removed, as
  `tests.support.imports` makes them) in a JSONL file, imported with `credit-import`'s own code
  (`run_import`, signed as the unit, 1,000 entries a message), until the last of them is in
  sharing's lists and history with its outbox published (the list-change feeds); entries/s from
  the first send. Beside it, in the same run, the floor of writing those entries at all: raw
  asyncpg COPY of one row per entry (its id and record) into a scratch table. Goal: 1,000,000 in
  at most 120 s (8,333/s).

The designation and sharing services run in a deployment of their own (schemas and consumer
groups of a fresh instance, starting at the end of the topics), one process each, as `make up`
runs them; warning, objection and cases, which also read the imported entries, are left out so
the figure is the path to the feeds (each consumes the same events beside them in production)."""

from __future__ import annotations

import asyncio
import os
import random
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import orjson
from credit_common.clock import local_day
from credit_common.imports.client import run_import
from credit_common.messaging import topics
from credit_common.security import credentials
from credit_common.settings import Settings

from services.designation.imports import import_id
from tests.support.imports import UNIT, entries, write_jsonl
from tests.support.kafka_admin import group_lag
from tests.support.processes import ServiceProcess, new_instance

from .foundation import progress
from .harness import CpuShare, Result, RssSampler, console

PORTS = {"designation": 28111, "sharing": 28112}
GOAL_PER_S = 8_333


async def raw_copy(settings: Settings, path: Path, unit: str) -> float:
    """Rows/s of COPYing one (id, record) row per entry of the file: the database's floor."""
    lines = await asyncio.to_thread(path.read_bytes)
    rows = [(import_id(unit, doc["ref"]), orjson.dumps(doc).decode()) for doc in map(orjson.loads, lines.splitlines())]
    conn = await asyncpg.connect(settings.database_url)
    try:
        await conn.execute("CREATE TEMP TABLE raw_import (id text PRIMARY KEY, record jsonb NOT NULL)")
        t0 = time.perf_counter()
        for i in range(0, len(rows), 10_000):
            await conn.copy_records_to_table("raw_import", records=rows[i : i + 10_000], columns=["id", "record"])
        return len(rows) / (time.perf_counter() - t0)
    finally:
        await conn.close()


async def published(admin: asyncpg.Connection, svcs: dict[str, ServiceProcess], n: int, started: float) -> float:
    """Wait until every imported entry is in sharing with its changes published: designation's
    outbox relayed, sharing's group caught up and its outbox relayed (cheap reads, so the wait
    takes nothing from the services; the count is checked once at the end). Seconds since
    `started`."""
    sharing = svcs["sharing"]
    bootstrap = sharing.settings.kafka_bootstrap_servers
    with progress() as bar:
        task = bar.add_task("sharing behind", total=None)
        while True:
            lag = await group_lag(bootstrap, sharing.group(), [topics.DESIGNATION_EVENTS])
            bar.update(task, completed=lag)
            if (
                lag == 0
                and await admin.fetchval(f"SELECT count(*) FROM {svcs['designation'].schema}.outbox") == 0
                and await admin.fetchval(f"SELECT count(*) FROM {sharing.schema}.outbox") == 0
                and await admin.fetchval(
                    f"SELECT count(*) = 0 FROM (SELECT 1 FROM {sharing.schema}.entries OFFSET $1 LIMIT 1) e", n - 1
                )
                is False
            ):
                return time.perf_counter() - started
            await asyncio.sleep(1.0)


async def run(settings: Settings, n: int) -> list[Result]:
    console.print(f"[bold]import[/] benchmark: {n:,} historic entries of {UNIT} through designation and sharing")
    today = local_day(datetime.now(UTC))
    signer = credentials.signer(f"unit:{UNIT}")
    assert signer is not None, f"no signing key for unit:{UNIT}: the stack makes one for every unit"
    instance = new_instance()
    svcs = {name: ServiceProcess(name, port, instance=instance) for name, port in PORTS.items()}
    with tempfile.TemporaryDirectory(prefix="credit-import-bench-") as tmp:
        path = write_jsonl(
            Path(tmp) / "entries.jsonl", entries(n, today, seed=random.randrange(1 << 30), prefix=instance)
        )
        copy_rate = await raw_copy(settings, path, UNIT)
        admin = await asyncpg.connect(settings.database_url)
        try:
            await asyncio.gather(*(svc.start() for svc in svcs.values()))
            samplers = {name: RssSampler(svc.proc.pid) for name, svc in svcs.items() if svc.proc is not None}
            cores = CpuShare(
                {**{name: [svc.proc.pid] for name, svc in svcs.items() if svc.proc}, "driver": [os.getpid()]}
            )
            async with samplers["designation"].active(), samplers["sharing"].active():
                cores.start()
                started = time.perf_counter()
                summary = await run_import(
                    path,
                    UNIT,
                    settings=settings.as_principal(f"unit:{UNIT}"),
                    signer=signer,
                    state_dir=Path(tmp) / "state",
                    progress=True,
                )
                answered = time.perf_counter() - started
                assert summary.complete, "the import stopped before every message was answered"
                assert summary.imported == n, f"{len(summary.refused)} entries refused: {summary.refused[:3]}"
                seconds = await published(admin, svcs, n, started)
                shares = cores.stop()
        finally:
            await asyncio.gather(*(svc.stop() for svc in svcs.values()))
            for svc in svcs.values():
                await svc.discard()
            await admin.close()
    rss = {name: s.peak_mb for name, s in samplers.items()}
    return [
        Result(
            "import_drain",
            n,
            n / seconds,
            unit="entries/s",
            baseline_case="raw_asyncpg_copy_entries",
            baseline=copy_rate,
            peak_rss_mb=max(rss.values()),
            extra={
                "seconds": f"{seconds:.1f}",
                "answered_s": f"{answered:.1f}",
                "messages": summary.messages,
                "instances": "designation:1 sharing:1",
                "service_peak_rss_mb": " ".join(f"{k}:{v:.0f}" for k, v in rss.items()),
                "cores": CpuShare.line(shares),
                "goal_entries_per_s": GOAL_PER_S,
            },
        )
    ]
