"""The platform under fault: the five services as real processes of one deployment, designation
twice (two instances in one group share its partitions and one of them leads its outbox relay,
as a production deployment runs it), on the throwaway stack `deploy/chaos.sh` starts."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
from credit_common.messaging import topics
from credit_common.settings import get_settings

from tests.chaos.toxiproxy import Toxiproxy
from tests.support.processes import ARTIFACTS, ServiceProcess, consumer_groups, new_instance

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("designation", "sharing", "warning", "objection", "cases")
# Every port below the kernel's ephemeral range (32768 and up): a client reconnecting to a stopped
# server on a port inside it can be handed that very port as its own and connect to itself, and
# the server cannot bind again (seen: Kafka "Address already in use" after broker_restart).
PORTS = {
    "designation": 31101,
    "designation-2": 31111,
    "sharing": 31102,
    "warning": 31103,
    "objection": 31104,
    "cases": 31105,
}
#: The chaos deployment's group liveness: a member silent for 10 s, or 15 s inside one batch, is
#: dropped from its group (the stalled-consumer fault stalls one for longer than both). Readiness
#: turns red on a loop stuck for 15 s.
ENV = {
    "CREDIT_KAFKA_SESSION_TIMEOUT_MS": "10000",
    "CREDIT_KAFKA_MAX_POLL_INTERVAL_MS": "15000",
    "CREDIT_CONSUMER_STALL_S": "15",
}
PROXY_PORT = 31433  # and 31434: the designation instances' way to PostgreSQL
_LEADER = re.compile(r"^credit_relay_leader(?:\{[^}]*\})?\s+1(?:\.0)?\s*$", re.M)


class Platform:
    def __init__(self) -> None:
        self.instance = new_instance()
        first = ServiceProcess("designation", PORTS["designation"], dict(ENV), instance=self.instance)
        self.procs: dict[str, ServiceProcess] = {
            "designation": first,
            "designation-2": first.sibling(PORTS["designation-2"], dict(ENV)),
        }
        for name in SERVICES[1:]:
            self.procs[name] = first.peer(name, PORTS[name], dict(ENV))
        self.settings = first.settings
        self.toxiproxy = Toxiproxy()

    async def start(self) -> None:
        if self.toxiproxy.available:
            # Each designation instance reaches PostgreSQL through a proxy of its own, which
            # zombie_relay cuts; the others go straight to the server.
            await self.toxiproxy.start(ARTIFACTS / "toxiproxy.log")
            server = urlsplit(get_settings().database_url)
            for n, name in enumerate(("designation", "designation-2")):
                listen = f"127.0.0.1:{PROXY_PORT + n}"
                await self.toxiproxy.proxy(f"pg-{name}", listen, f"{server.hostname}:{server.port}")
                self.procs[name].database_via = listen
        for proc in self.procs.values():
            await proc.start(timeout=120)

    async def stop(self) -> None:
        """Every process at once (SIGTERM, SIGKILL after 15 s: a service waiting for a broker that
        is gone would otherwise hold the run's end for minutes)."""

        async def one(proc: ServiceProcess) -> None:
            with contextlib.suppress(Exception):
                resume(proc)
                await proc.stop(timeout=15)

        await asyncio.gather(*(one(proc) for proc in self.procs.values()))
        await self.toxiproxy.stop()

    def groups(self) -> dict[str, tuple[str, ...]]:
        """Every consumer group of the deployment and its topics (the reference topic left out:
        it is state every instance reads whole, with no group offsets to lag behind)."""
        out: dict[str, tuple[str, ...]] = {}
        for name in SERVICES:
            for group, group_topics in consumer_groups(name, self.settings).items():
                out[group] = tuple(t for t in group_topics if t != topics.REFERENCE)
        return out

    def groups_of(self, name: str) -> dict[str, tuple[str, ...]]:
        service = name.split("-")[0]
        return {g: t for g, t in consumer_groups(service, self.settings).items() if t != (topics.REFERENCE,)}

    @property
    def schemas(self) -> dict[str, str]:
        return {name: self.procs[name].schema for name in SERVICES}

    async def outbox_pending(self) -> int:
        conn = await asyncpg.connect(get_settings().database_url, timeout=5)
        try:
            total = 0
            for schema in self.schemas.values():
                total += await conn.fetchval(f'SELECT count(*) FROM "{schema}".outbox')
            return int(total)
        finally:
            await conn.close()

    async def relay_leader(self) -> str | None:
        """The designation instance whose outbox relay leads (its `credit_relay_leader` gauge)."""
        for name in ("designation", "designation-2"):
            if await self.leads(name):
                return name
        return None

    async def leads(self, name: str) -> bool:
        with contextlib.suppress(Exception):
            async with self.procs[name].client() as client:
                return bool(_LEADER.search((await client.get("/metrics")).text))
        return False


def stack(command: str) -> None:
    """`deploy/stack.sh <command>` on the chaos stack (the settings chaos.sh exported)."""
    subprocess.run([str(ROOT / "deploy" / "stack.sh"), command], check=True, env=os.environ.copy())


def pause(proc: ServiceProcess) -> None:
    if proc.proc is not None and proc.proc.returncode is None:
        proc.proc.send_signal(signal.SIGSTOP)


def resume(proc: ServiceProcess) -> None:
    if proc.proc is not None and proc.proc.returncode is None:
        proc.proc.send_signal(signal.SIGCONT)
