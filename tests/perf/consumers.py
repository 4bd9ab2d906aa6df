"""Each other consumer of `credit.designation.events.v1` alone (issue 21), as a real process in a
deployment of its own: N `credit.designation.created` events (as the sharing benchmark makes them:
whole records, half black and half key scrutiny, a fifth natural persons) pre-filled on the events
topic, then the service started with its groups at the fill's first offsets; events/s from its
start until its groups have read them all and its outbox is empty. Beside it, in the same run, raw
aiokafka consume of the same events and the database's floor: a raw COPY of one row per event
(its id, subject and record as jsonb), the least any consumer that keeps the record writes.
Goal: each at least the designation drain rate, and at least 0.5 of its floor.

- `warning_projection`: the warning service (key-scrutiny entries, the warning-list judgement).
- `objection_projection`: the objection service (its copy of every designation).
- `cases_projection`: the cases service (its copy and the designation tallies)."""

from __future__ import annotations

import asyncio
import os
import random
import time
from datetime import UTC, datetime

import asyncpg
import orjson
from credit_common.messaging import topics
from credit_common.settings import Settings

from tests.support.kafka_admin import end_offsets, group_lag, start_at
from tests.support.processes import ServiceProcess, consumer_groups, deployment, new_instance

from .foundation import progress, raw_consume
from .harness import CpuShare, Result, RssSampler, console
from .sharing import created_event, fill

PORTS = {"warning": 28131, "objection": 28132, "cases": 28133}
FLOOR_CHUNK = 10_000


async def db_floor(settings: Settings, n: int) -> float:
    """Rows/s of COPYing one (id, subject, record) row per event, built before the clock starts
    chunk by chunk (so a large n does not hold every document at once)."""
    rng = random.Random(20261126)
    at = datetime.now(UTC)
    conn = await asyncpg.connect(settings.database_url)
    try:
        await conn.execute("CREATE TEMP TABLE floor (id text PRIMARY KEY, subject text, record jsonb)")
        spent = 0.0
        for start in range(0, n, FLOOR_CHUNK):
            rows = []
            for i in range(start, min(n, start + FLOOR_CHUNK)):
                key, value = created_event(rng, i, at)
                record = orjson.loads(value)["data"]["record"]
                rows.append((record["designation_id"], key.decode(), orjson.dumps(record).decode()))
            t0 = time.perf_counter()
            await conn.copy_records_to_table("floor", records=rows, columns=["id", "subject", "record"])
            spent += time.perf_counter() - t0
        return n / spent
    finally:
        await conn.close()


async def project(settings: Settings, name: str, n: int) -> Result:
    bootstrap = settings.kafka_bootstrap_servers
    instance = new_instance()
    readers = {
        group: group_topics
        for group, group_topics in consumer_groups(name, deployment(instance)).items()
        if topics.DESIGNATION_EVENTS in group_topics
    }
    for group, group_topics in consumer_groups(name, deployment(instance)).items():
        offsets = await end_offsets(bootstrap, [t for t in group_topics if t != topics.REFERENCE])
        await start_at(bootstrap, group, offsets)  # this run's events and nothing before them
    await fill(bootstrap, n)
    consume_rate = await raw_consume(bootstrap, topics.DESIGNATION_EVENTS, n)
    floor = await db_floor(settings, n)
    svc = ServiceProcess(name, PORTS[name], instance=instance)
    admin = await asyncpg.connect(settings.database_url)
    cores = CpuShare({"driver": [os.getpid()]})
    cores.start()
    started = time.perf_counter()
    try:
        await svc.start()
        assert svc.proc is not None
        cores.add(name, svc.proc.pid)
        sampler = RssSampler(svc.proc.pid)
        async with sampler.active():
            with progress() as bar:
                task = bar.add_task(f"{name} behind", total=None)
                while True:
                    lag = sum([await group_lag(bootstrap, g, [topics.DESIGNATION_EVENTS]) for g in readers])
                    bar.update(task, completed=lag)
                    if lag == 0 and await admin.fetchval(f"SELECT count(*) FROM {svc.schema}.outbox") == 0:
                        seconds = time.perf_counter() - started
                        break
                    await asyncio.sleep(1.0)
        shares = cores.stop()
    finally:
        await svc.stop()
        await svc.discard()
        await admin.close()
    rate = n / seconds
    return Result(
        f"{name}_projection",
        n,
        rate,
        unit="events/s",
        baseline_case="raw_aiokafka_consume",
        baseline=consume_rate,
        peak_rss_mb=sampler.peak_mb,
        extra={
            "seconds": f"{seconds:.1f}",
            "db_floor_rows_per_s": f"{floor:.0f}",
            "of_db_floor": f"{rate / floor:.3g}",
            "cores": CpuShare.line(shares),
            "goal_of_db_floor": 0.5,
        },
    )


async def run(settings: Settings, n: int) -> list[Result]:
    console.print(f"[bold]consumers[/] of the designation events, each alone: {n:,} events ({', '.join(PORTS)})")
    return [await project(settings, name, n) for name in PORTS]
