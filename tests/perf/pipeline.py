"""The whole pipeline (issue 21), with the five services as real processes, one each as `make up`
runs them:

- `pipeline_drain`: N designate requests pre-filled on the requests topic (signed, as the
  designation bench makes them), then the five services started in a deployment of their own; the
  rate is requests/s from their start until the last designation is in sharing's lists with its
  outbox published (both list-change feeds) and every service's consumer groups have caught up.
  Beside it, raw aiokafka consume of the same requests. Extra: each service's catch-up time (when
  its groups last had anything to read), the cores each process used, each one's peak RSS.
  Goal: 3,333/s (1,000,000 in at most 300 s).

Every consumer group of the deployment is set to the topics' ends before the fill, so each service
reads exactly this run's requests and what follows from them."""

from __future__ import annotations

import asyncio
import os
import time

import asyncpg
from credit_common.messaging import topics
from credit_common.settings import Settings

from tests.support.processes import ServiceProcess, deployment, new_instance

from . import designation
from .foundation import progress, raw_consume
from .groups import begin_at_the_end, behind
from .harness import CpuShare, Result, RssSampler, console

PORTS = {"designation": 28121, "sharing": 28122, "warning": 28123, "objection": 28124, "cases": 28125}
GOAL_PER_S = 3_333


async def run(settings: Settings, n: int) -> list[Result]:
    console.print(f"[bold]pipeline[/] benchmark: {n:,} designate requests through all five services (one process each)")
    instance = new_instance()
    deployed = deployment(instance)
    groups = await begin_at_the_end(deployed, PORTS)
    await designation.fill(settings.kafka_bootstrap_servers, n)
    consume_rate = await raw_consume(settings.kafka_bootstrap_servers, topics.DESIGNATION_REQUESTS, n)
    svcs = {name: ServiceProcess(name, port, instance=instance) for name, port in PORTS.items()}
    bootstrap = settings.kafka_bootstrap_servers
    admin = await asyncpg.connect(settings.database_url)
    cores = CpuShare({"driver": [os.getpid()]})
    cores.start()
    started = time.perf_counter()
    try:
        await asyncio.gather(*(svc.start() for svc in svcs.values()))
        samplers = {name: RssSampler(svc.proc.pid) for name, svc in svcs.items() if svc.proc is not None}
        for name, svc in svcs.items():
            if svc.proc is not None:
                cores.add(name, svc.proc.pid)
        caught_up: dict[str, float] = {}
        async with (
            samplers["designation"].active(),
            samplers["sharing"].active(),
            samplers["warning"].active(),
            samplers["objection"].active(),
            samplers["cases"].active(),
        ):
            with progress() as bar:
                task = bar.add_task("on the public feed", total=n)
                last_check = 0.0
                while True:
                    # The changes sharing numbered (one per entry added): a one-row read, where a
                    # count of a growing table twice a second took PostgreSQL's CPU from the services.
                    listed = await admin.fetchval(f"SELECT value FROM {svcs['sharing'].schema}.change_seq")
                    bar.update(task, completed=listed)
                    now = time.perf_counter()
                    if now - last_check >= 2.0:  # the groups' lags: seconds apart (admin requests)
                        last_check = now
                        for name in PORTS:
                            if await behind(bootstrap, groups[name]) > 0:
                                caught_up.pop(name, None)
                            else:
                                caught_up.setdefault(name, now - started)
                    outbox = await admin.fetchval(f"SELECT count(*) FROM {svcs['sharing'].schema}.outbox")
                    if listed >= n and outbox == 0 and len(caught_up) == len(PORTS):
                        seconds = time.perf_counter() - started
                        break
                    await asyncio.sleep(0.5)
        shares = cores.stop()
    finally:
        await asyncio.gather(*(svc.stop() for svc in svcs.values()))
        for svc in svcs.values():
            await svc.discard()
        await admin.close()
    rss = {name: s.peak_mb for name, s in samplers.items()}
    return [
        Result(
            "pipeline_drain",
            n,
            n / seconds,
            unit="req/s",
            baseline_case="raw_aiokafka_consume",
            baseline=consume_rate,
            peak_rss_mb=max(rss.values()),
            extra={
                "seconds": f"{seconds:.1f}",
                "instances": " ".join(f"{name}:1" for name in PORTS),
                "caught_up_s": " ".join(f"{name}:{caught_up[name]:.0f}" for name in PORTS),
                "service_peak_rss_mb": " ".join(f"{k}:{v:.0f}" for k, v in rss.items()),
                "cores": CpuShare.line(shares),
                "goal_req_per_s": GOAL_PER_S,
            },
        )
    ]
